"""Where router events go: the websocket feed of agent UIs (through Redis pub/sub, so
the router and the API replicas may be different processes) and signed webhooks.

Events are plain dicts with a ``type``:

* ``offer`` — ``agent_id``, ``offer`` (the context brief: reason, transcript, customer,
  intent and emotion traces, expiry)
* ``offer_closed`` — ``agent_id``, ``offer_id``, ``call_uuid``, ``state`` (accepted,
  rejected, expired, withdrawn, failed)
* ``agent_state`` — ``agent_id``, ``state``
* ``overflow`` — ``call_uuid``, ``action`` (callback / voicemail), ``reason``, ``vip``,
  ``campaign_id`` (``agent_id`` is None: for supervisors)

Pub/sub does not store messages: a UI that connects (or reconnects) first gets the
agent's pending offers from the router, then the live events; it should drop duplicates
by ``offer_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cluster.records.webhooks import WebhookSender
from cluster.routing.store import RoutingStore

__all__ = ["EventSink", "FeedHub", "FeedSubscription", "RedisFeedPublisher", "WebhookNotifier"]

log = logging.getLogger("callfleet.routing.feed")


class EventSink(Protocol):
    """Receives every router event. Must not block; failures are logged by the router."""

    async def publish(self, event: dict[str, Any]) -> None: ...


class RedisFeedPublisher:
    """Router side of the feed: publishes each event on the feed channel."""

    def __init__(self, store: RoutingStore):
        self.store = store

    async def publish(self, event: dict[str, Any]) -> None:
        await self.store.publish(event)


class WebhookNotifier:
    """Sends each event as a signed webhook in the background (`WebhookSender.submit`)."""

    def __init__(self, sender: WebhookSender):
        self.sender = sender

    async def publish(self, event: dict[str, Any]) -> None:
        self.sender.submit(str(event.get("type", "event")), event)


class FeedSubscription:
    """One websocket's view of the feed: events for `agent_id` (all when None)."""

    def __init__(self, agent_id: str | None, max_queue: int):
        self.agent_id = agent_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queue)
        self.overflowed = False

    def wants(self, event: dict[str, Any]) -> bool:
        return self.agent_id is None or event.get("agent_id") == self.agent_id

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # the reader is too slow; it closes the connection

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class FeedHub:
    """API side of the feed: one Redis subscription per process, fanned out to every
    websocket of that process. Started by the first subscriber, stopped by `close`."""

    def __init__(self, redis_url: str, channel: str = "cf:routing:feed", *,
                 max_queue: int = 256, retry_s: float = 1.0):
        self.redis_url = redis_url
        self.channel = channel
        self.max_queue = max_queue
        self.retry_s = retry_s
        self._subs: set[FeedSubscription] = set()
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, agent_id: str | None,
                        ready_timeout_s: float = 5.0) -> AsyncIterator[FeedSubscription]:
        """Register a subscriber; returns once the Redis subscription is live, so events
        published after this point reach it."""
        sub = FeedSubscription(agent_id, self.max_queue)
        self._subs.add(sub)
        try:
            if self._task is None or self._task.done():
                self._ready = asyncio.Event()
                self._task = asyncio.get_running_loop().create_task(self._listen())
            assert self._ready is not None
            await asyncio.wait_for(self._ready.wait(), ready_timeout_s)
            yield sub
        finally:
            self._subs.discard(sub)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _fan_out(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            log.warning("feed: dropped a message that is not JSON")
            return
        if not isinstance(event, dict):
            return
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)

    async def _listen(self) -> None:
        while True:
            client = aioredis.from_url(self.redis_url, decode_responses=True,
                                       socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                assert self._ready is not None
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._fan_out(message.get("data"))
            except (RedisError, OSError) as exc:
                log.warning("feed: Redis subscription lost (%s); retrying in %.1fs",
                            type(exc).__name__, self.retry_s)
            except Exception as exc:  # keep the feed alive for every websocket of this process
                log.warning("feed: listener failed (%s); restarting in %.1fs",
                            type(exc).__name__, self.retry_s)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(self.retry_s)
