"""The record writer as a detached, named, restartable Ray actor: it hosts one
`cluster.store.RecordWriter`, which drains the records outbox (Redis) into the durable
SQL store. Started with the floor (`cluster.actors.floor.start_floor`) unless
``records.writer`` is false.

It holds nothing of its own: what is not yet in SQL is in the outbox, and a restarted
actor (``max_restarts=-1``) first writes the batch its predecessor had read but not
acknowledged. While the database is unreachable (at start or later) it keeps trying;
the outbox keeps every event meanwhile. The tickets' SLA pass runs in the same loop; its
breaches go to the agents' feed and the signed webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cluster.actors.names import NAMESPACE, RECORD_WRITER_NAME
from cluster.dialer.customers import CustomerKeyer
from cluster.dialer.phone import PhoneNumberError
from cluster.records.outbox import Outbox
from cluster.records.webhooks import WebhookSender
from cluster.routing import RedisFeedPublisher, RoutingStore, WebhookNotifier
from cluster.store import RecordStore, RecordWriter, StoreUnavailable, WriterStats
from cluster.store.tickets import SlaWatch, TicketStore
from configs.settings import Settings, settings_doc

__all__ = ["RecordWriterService", "start_record_writer"]

log = logging.getLogger("callfleet.records.actor")


class RecordWriterService:
    """What the actor runs. Plain class: `start_record_writer` applies `ray.remote`."""

    def __init__(self, settings: dict[str, Any]):
        self.cfg = Settings.model_validate(settings)
        if not self.cfg.redis_url:
            raise ValueError("the record writer needs redis_url")
        # no socket timeout: XREADGROUP blocks up to records.block_ms on purpose
        self.redis = aioredis.from_url(self.cfg.redis_url, socket_connect_timeout=5)
        self.writer: RecordWriter | None = None
        self._stop = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self._run())

    async def _open(self) -> RecordStore:
        """The store, migrated when ``records.auto_migrate``; waits for the database."""
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(RecordStore.open, self.cfg.store_url,
                                               auto_migrate=self.cfg.records.auto_migrate)
            except StoreUnavailable as exc:
                log.warning("durable store unavailable, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(self.cfg.records.retry_max_s, delay * 2)

    async def _run(self) -> None:
        store = await self._open()
        routing = RoutingStore(self.cfg.redis_url)
        webhooks = WebhookSender(self.cfg.webhooks)
        sla = SlaWatch(TicketStore(store, self.cfg.tickets, self.cfg.customers.vip_tiers),
                       [RedisFeedPublisher(routing), WebhookNotifier(webhooks)], self._keyer())
        self.writer = RecordWriter(store, Outbox(self.redis), self.cfg.records, sla=sla)
        log.info("record writer started: outbox -> %s", store.url)
        try:
            await self.writer.run(self._stop)
        finally:
            await webhooks.aclose()
            await routing.close()
            await asyncio.to_thread(store.close)

    def _keyer(self):
        """Number → customer key for bot tickets (None without customers.secret)."""
        secret = self.cfg.customers.secret
        if secret is None:
            return None
        keyer = CustomerKeyer(secret, self.cfg.customers.default_country)

        def key(number: str) -> str | None:
            try:
                return keyer.key(number)
            except PhoneNumberError:
                return None

        return key

    async def status(self) -> dict[str, Any]:
        """Backlog (events waiting, pending, dead letters) and what was written."""
        try:
            backlog = await Outbox(self.redis).backlog()
        except RedisError as exc:
            backlog = {"error": type(exc).__name__}
        writer = self.writer
        return {"running": not self._task.done(), "backlog": backlog,
                "store": writer.store.url if writer else None,
                **asdict(writer.stats if writer else WriterStats())}

    async def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError("record writer loop stopped")

    async def shutdown(self) -> None:
        self._stop.set()
        await asyncio.wait([self._task], timeout=10)
        await self.redis.aclose()


def start_record_writer(settings: Settings):
    """Start (or find) the record writer actor for `settings`."""
    import ray  # heavy: loads ray

    return ray.remote(RecordWriterService).options(
        name=RECORD_WRITER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        max_restarts=-1, num_cpus=0).remote(settings_doc(settings))
