"""Live call context in Redis, so the media gateway replicas stay stateless.

Keys (all expire `ttl_s` after the last write):

* ``cf:call:<uuid>`` hash — metadata, status, bot state (JSON), outcome (JSON)
* ``cf:call:<uuid>:turns`` list — one JSON document per turn
* ``cf:calls:active`` set — calls in progress; ``cf:calls:recent`` list — last 1000 ended

When Redis is unreachable the call goes on: writes are kept in a bounded in-memory
backlog and replayed, in order, once Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from telephony.media_fork import ForkMetadata

log = logging.getLogger("callfleet.state")

PREFIX = "cf"


def call_key(call_id: str) -> str:
    return f"{PREFIX}:call:{call_id}"


class RedisCallRecorder:
    def __init__(self, url: str, ttl_s: int = 86_400, backlog: int = 10_000):
        self.redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl_s = ttl_s
        self._backlog: deque[tuple[str, tuple]] = deque(maxlen=backlog)
        self._lock = asyncio.Lock()

    async def call_started(self, meta: ForkMetadata) -> dict[str, Any]:
        """Register the call; return its stored context (non-empty when resuming)."""
        context = await self._try(self._load, meta.call_id) or {}
        doc = {
            "call_id": meta.call_id,
            "status": "bot",
            "sample_rate": meta.sample_rate,
            "direction": meta.direction or "",
            "campaign": meta.campaign or "",
            "caller": meta.caller or "",
            "callee": meta.callee or "",
            "customer": json.dumps(meta.customer),
        }
        if not context:
            doc["started_at"] = time.time()
        await self._write("start", meta.call_id, doc)
        return context

    async def turn(self, call_id: str, turn: dict[str, Any], context: dict[str, Any]) -> None:
        await self._write("turn", call_id, turn, context)

    async def call_ended(self, call_id: str, outcome: dict[str, Any]) -> None:
        await self._write("end", call_id, outcome)

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        return await self._load(call_id, with_turns=True)

    async def close(self) -> None:
        await self.redis.aclose()

    # ---- internals --------------------------------------------------------------------

    async def _load(self, call_id: str, with_turns: bool = False) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(call_key(call_id))
        if not raw:
            return None
        doc: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        for key in ("state", "outcome", "customer"):
            if key in doc:
                doc[key] = json.loads(doc[key])
        if with_turns:
            turns = await self.redis.lrange(call_key(call_id) + ":turns", 0, -1)
            doc["turns"] = [json.loads(t) for t in turns]
        return doc

    async def _write(self, op: str, *args: Any) -> None:
        item = (op, args)
        self._backlog.append(item)
        # one flusher at a time: every call on the replica shares this recorder, and two
        # flushers would apply the same write twice and drop another
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        try:
            while self._backlog:
                head = self._backlog[0]
                await self._apply(*head)
                if self._backlog and self._backlog[0] is head:
                    self._backlog.popleft()
        except (RedisError, OSError) as exc:
            log.warning(
                "redis unavailable; %d state write(s) kept for replay (%s)",
                len(self._backlog), type(exc).__name__,
            )

    async def _try(self, fn, *args):
        try:
            return await fn(*args)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable (%s); starting call without stored context",
                        type(exc).__name__)
            return None

    async def _apply(self, op: str, args: tuple) -> None:
        key = call_key(args[0])
        pipe = self.redis.pipeline(transaction=True)
        if op == "start":
            pipe.hset(key, mapping=args[1])
            pipe.sadd(f"{PREFIX}:calls:active", args[0])
        elif op == "turn":
            pipe.rpush(key + ":turns", json.dumps(args[1]))
            pipe.hset(key, mapping={"state": json.dumps(args[2]["state"])})
        elif op == "end":
            pipe.hset(key, mapping={
                "status": "ended", "ended_at": time.time(), "outcome": json.dumps(args[1])
            })
            pipe.srem(f"{PREFIX}:calls:active", args[0])
            pipe.lpush(f"{PREFIX}:calls:recent", args[0])
            pipe.ltrim(f"{PREFIX}:calls:recent", 0, 999)
        pipe.expire(key, self.ttl_s)
        pipe.expire(key + ":turns", self.ttl_s)
        await pipe.execute()
