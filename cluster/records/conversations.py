"""Conversation state and A/B conversion counts in Redis, shared by every replica.

* `RedisConversationStore`: the `DialogState` of each call (``cf:dialog:<call id>``, a hash
  with ``seq``, ``state`` JSON and ``bot``), so a call whose media connection moves to
  another replica resumes where it was. Writes are compare-and-set on ``seq`` (in one Lua
  script): a replica still finishing an old turn cannot overwrite the newer state another
  replica wrote. Keys expire `ttl_s` after the last write. The call records
  (`cluster.records.call_state.RedisCallRecorder`) write it with each turn, in the same
  transaction as the turn (`save_in`), and read it back when a call resumes.
* `RedisConversionCounter`: calls and conversions per campaign and variant
  (``cf:ab:<campaign>`` hash, fields ``<variant>:calls`` / ``<variant>:conversions``),
  each call counted once (``cf:ab:<campaign>:<kind>:seen`` sets), so a retried or resumed
  call does not inflate a variant.

Plain `redis.asyncio`; no call data other than the bot's own state is stored here, and
nothing from it is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bots.script.state import DialogState
from bots.script.variants import VariantStats

__all__ = ["RedisConversationStore", "RedisConversionCounter", "dialog_key"]

log = logging.getLogger("callfleet.cluster.conversation_store")

PREFIX = "cf"

# KEYS[1] = dialog key; ARGV = seq, state JSON, bot name, ttl seconds.
# Returns 1 when written, 0 when the stored state is newer (stale writer).
_SAVE_IF_NEWER = """
local stored = redis.call('HGET', KEYS[1], 'seq')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'state', ARGV[2], 'bot', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""

# KEYS[1] = seen set, KEYS[2] = counts hash; ARGV = call id, field, ttl seconds.
# Counts the call once; returns 1 when counted now, 0 when it was counted before.
_COUNT_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
end
return 1
"""


def dialog_key(call_uuid: str) -> str:
    return f"{PREFIX}:dialog:{call_uuid}"


def _client(redis_or_url: aioredis.Redis | str) -> aioredis.Redis:
    if isinstance(redis_or_url, str):
        return aioredis.from_url(redis_or_url, socket_timeout=2, socket_connect_timeout=2)
    return redis_or_url


class RedisConversationStore:
    """Dialog state per call. Redis errors propagate (`redis.RedisError`): the caller
    decides whether a call goes on without persistence (the call session does)."""

    def __init__(self, redis_or_url: aioredis.Redis | str, ttl_s: int = 86_400) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.redis = _client(redis_or_url)
        self.ttl_s = ttl_s
        self._save = self.redis.register_script(_SAVE_IF_NEWER)

    async def save(self, call_uuid: str, state: DialogState) -> bool:
        """Store `state` unless Redis holds a newer one (higher ``seq``); True if written."""
        written = await self._save(keys=[dialog_key(call_uuid)],
                                   args=[state.seq, state.to_json(), state.script, self.ttl_s])
        if not written:
            log.warning("dialog state of a call not saved: a newer one (seq > %d) is stored",
                        state.seq)
        return bool(written)

    async def save_in(self, pipe: Pipeline, call_uuid: str, state: DialogState) -> None:
        """Queue the same guarded write on `pipe`, a transaction pipeline of this store's
        client, so it commits together with the caller's other writes; its result in
        ``pipe.execute()`` is 1 when written, 0 when a newer state was stored."""
        await self._save(keys=[dialog_key(call_uuid)],
                         args=[state.seq, state.to_json(), state.script, self.ttl_s], client=pipe)

    async def load(self, call_uuid: str) -> DialogState | None:
        """The stored state, or None when there is none (a new call, or expired)."""
        raw = await self.redis.hget(dialog_key(call_uuid), "state")
        if raw is None:
            return None
        try:
            return DialogState.from_json(raw)
        except (ValueError, TypeError):
            log.error("stored dialog state is not valid JSON; starting the call afresh")
            return None

    async def delete(self, call_uuid: str) -> None:
        await self.redis.delete(dialog_key(call_uuid))

    async def close(self) -> None:
        await self.redis.aclose()


class RedisConversionCounter:
    """`bots.script.variants.ConversionCounter` over Redis, shared by all replicas.
    `ttl_s` 0 keeps campaign counts until deleted."""

    def __init__(self, redis_or_url: aioredis.Redis | str, ttl_s: int = 0) -> None:
        self.redis = _client(redis_or_url)
        self.ttl_s = ttl_s
        self._count = self.redis.register_script(_COUNT_ONCE)

    @staticmethod
    def _check(campaign: str, variant: str) -> None:
        for name, value in (("campaign", campaign), ("variant", variant)):
            if not value or ":" in value:
                raise ValueError(f"{name} must be a non-empty name without ':', got {value!r}")

    async def _record(self, kind: str, campaign: str, variant: str, call_uuid: str) -> bool:
        self._check(campaign, variant)
        base = f"{PREFIX}:ab:{campaign}"
        counted = await self._count(keys=[f"{base}:{kind}:seen", base],
                                    args=[call_uuid, f"{variant}:{kind}", self.ttl_s])
        return bool(counted)

    async def record_call(self, campaign: str, variant: str, call_uuid: str) -> bool:
        return await self._record("calls", campaign, variant, call_uuid)

    async def record_conversion(self, campaign: str, variant: str, call_uuid: str) -> bool:
        return await self._record("conversions", campaign, variant, call_uuid)

    async def report(self, campaign: str) -> dict[str, VariantStats]:
        raw: dict[Any, Any] = await self.redis.hgetall(f"{PREFIX}:ab:{campaign}")
        counts: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            variant, _, kind = name.rpartition(":")
            counts.setdefault(variant, {})[kind] = int(value)
        return {v: VariantStats(c.get("calls", 0), c.get("conversions", 0))
                for v, c in sorted(counts.items())}

    async def pin_winner(self, campaign: str, variant: str, report: Mapping[str, Any]) -> bool:
        """Record the variant an A/B test settled on (``cf:ab:<campaign>:winner``), once:
        False when one was already pinned (the first decision stands)."""
        self._check(campaign, variant)
        doc = json.dumps({"variant": variant, "at": time.time(), "report": report}, default=str)
        return bool(await self.redis.set(f"{PREFIX}:ab:{campaign}:winner", doc, nx=True))

    async def winner(self, campaign: str) -> dict[str, Any] | None:
        """The pinned winner (``variant``, ``at``, the ``report`` it rested on), or None."""
        raw = await self.redis.get(f"{PREFIX}:ab:{campaign}:winner")
        return json.loads(raw) if raw else None

    async def unpin(self, campaign: str) -> bool:
        """Forget the winner (the test runs again, e.g. with a new variant)."""
        return bool(await self.redis.delete(f"{PREFIX}:ab:{campaign}:winner"))

    async def close(self) -> None:
        await self.redis.aclose()
