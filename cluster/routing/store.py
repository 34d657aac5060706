"""Routing state in Redis: agents, escalations, offers and the waiting queue.

Everything the skill router knows lives here, so a restarted router (or a second
process such as the CLI) sees the same floor. Keys (prefix ``cf``):

* ``cf:agents`` set of agent ids; ``cf:agent:<id>`` hash — ``profile`` (JSON), ``token``
  (SHA-256 of the agent's API token, never the token), ``state``, ``state_since``,
  ``idle_since``, ``wrap_up_until`` and the counters ``offers``, ``handled``,
  ``converted``, ``no_answers``, ``rejects``; ``cf:agents:credit`` hash — each agent's
  weighted round-robin credit (one write per routing decision)
* ``cf:agent:<id>:hb`` — present while the agent's heartbeat is fresh (expires)
* ``cf:agent:<id>:calls`` set of call uuids; ``cf:agent:<id>:offers`` set of pending offers
* ``cf:esc:<call_uuid>`` — `EscalationRecord` JSON; ``cf:esc:queue`` zset of waiting
  calls (score = enqueue time); ``cf:esc:active`` set of calls not finished
* ``cf:offer:<offer_id>`` hash — ``doc`` (`Offer` JSON) and ``state``;
  ``cf:offers:pending`` zset (score = expiry)
* ``cf:esc:daily`` hash — ``<UTC date>|<outcome>`` counters of escalated calls:
  ``answered`` (an agent took it), ``abandoned`` (the caller hung up waiting),
  ``overflow``; ``cf:routing:weights`` hash — routing weights a supervisor set live
  (override `RoutingSettings`)
* pub/sub channel ``cf:routing:feed`` — events for agent UIs (see `feed.py`)

Offer state changes go through one Lua script (compare-and-set), so two accepts of the
same offer, or an accept racing the no-answer timeout, cannot both win.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import redis.asyncio as aioredis

from cluster.routing.models import (
    AgentProfile,
    AgentSnapshot,
    AgentState,
    EscalationRecord,
    Offer,
    OfferState,
)

__all__ = ["AgentExistsError", "RoutingStore"]

_COUNTERS = ("offers", "handled", "converted", "no_answers", "rejects")
_FLOATS = ("state_since", "idle_since", "wrap_up_until")

# KEYS[1] offer hash, KEYS[2] pending zset; ARGV[1] new state, ARGV[2] offer id,
# ARGV[3..] states it may move from. Returns {moved (0/1), state before}.
_TRANSITION = """
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return {0, ''} end
for i = 3, #ARGV do
  if ARGV[i] == s then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    if ARGV[1] ~= 'pending' then redis.call('ZREM', KEYS[2], ARGV[2]) end
    return {1, s}
  end
end
return {0, s}
"""

# KEYS[1]: the round-robin credit hash; then per agent its hash, calls set, offers set
# and heartbeat key (4 keys each); ARGV: the agent ids. Returns JSON
# [[hash as object, calls, offer count, heartbeat 0/1, credit or false], ...]; cjson writes
# an empty Lua table as {} (so an empty calls set or missing hash comes back as an object).
_SNAPSHOT = """
local out = {}
for n = 1, #ARGV do
  local i = 2 + (n - 1) * 4
  local flat = redis.call('HGETALL', KEYS[i])
  local doc = {}
  for j = 1, #flat, 2 do doc[flat[j]] = flat[j + 1] end
  out[n] = {doc, redis.call('SMEMBERS', KEYS[i + 1]), redis.call('SCARD', KEYS[i + 2]),
            redis.call('EXISTS', KEYS[i + 3]), redis.call('HGET', KEYS[1], ARGV[n])}
end
return cjson.encode(out)
"""


class AgentExistsError(ValueError):
    """`add_agent` for an id that is already registered."""


class RoutingStore:
    """Async access to the routing keys. One instance per event loop."""

    def __init__(self, redis_url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "cf"):
        if client is None:
            if not redis_url:
                raise ValueError("RoutingStore needs a redis_url or a client")
            client = aioredis.from_url(redis_url, decode_responses=True,
                                       socket_timeout=5, socket_connect_timeout=5)
        self.redis = client
        self.prefix = prefix
        self._transition = self.redis.register_script(_TRANSITION)
        self._snapshot = self.redis.register_script(_SNAPSHOT)

    async def close(self) -> None:
        await self.redis.aclose()

    # ---- keys --------------------------------------------------------------------------

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def feed_channel(self) -> str:
        return self.k("routing", "feed")

    # ---- agents ------------------------------------------------------------------------

    async def add_agent(self, profile: AgentProfile, token_sha256: str, now: float) -> None:
        added = await self.redis.sadd(self.k("agents"), profile.agent_id)
        if not added:
            raise AgentExistsError(f"agent {profile.agent_id!r} already exists")
        await self.redis.hset(self.k("agent", profile.agent_id), mapping={
            "profile": profile.model_dump_json(),
            "token": token_sha256,
            "state": AgentState.LOGGED_OUT.value,
            "state_since": now,
            "idle_since": now,
            **{name: 0 for name in _COUNTERS},
        })

    async def update_profile(self, profile: AgentProfile) -> None:
        await self.redis.hset(self.k("agent", profile.agent_id), "profile", profile.model_dump_json())

    async def remove_agent(self, agent_id: str) -> bool:
        removed = await self.redis.srem(self.k("agents"), agent_id)
        await self.redis.hdel(self.k("agents", "credit"), agent_id)
        await self.redis.delete(self.k("agent", agent_id), self.k("agent", agent_id, "hb"),
                                self.k("agent", agent_id, "calls"),
                                self.k("agent", agent_id, "offers"))
        return bool(removed)

    async def agent_ids(self) -> list[str]:
        return sorted(await self.redis.smembers(self.k("agents")))

    async def token_hash(self, agent_id: str) -> str | None:
        return await self.redis.hget(self.k("agent", agent_id), "token")

    async def set_token_hash(self, agent_id: str, token_sha256: str) -> None:
        await self.redis.hset(self.k("agent", agent_id), "token", token_sha256)

    async def get_agent(self, agent_id: str) -> AgentSnapshot | None:
        found = await self._snapshots([agent_id])
        return found[0] if found else None

    async def agents(self) -> list[AgentSnapshot]:
        return await self._snapshots(await self.agent_ids())

    async def _snapshots(self, ids: list[str]) -> list[AgentSnapshot]:
        if not ids:
            return []
        keys = [self.k("agents", "credit")]
        for agent_id in ids:
            keys += [self.k("agent", agent_id), self.k("agent", agent_id, "calls"),
                     self.k("agent", agent_id, "offers"), self.k("agent", agent_id, "hb")]
        # one script call and one JSON reply: with a pipeline, redis-py's pure-Python reply
        # parser took ~15 ms per 100 agents
        raw = json.loads(await self._snapshot(keys=keys, args=ids))
        out = []
        for doc, calls, offers, hb, credit in raw:
            if not isinstance(doc, dict) or "profile" not in doc:
                continue  # removed meanwhile
            out.append(AgentSnapshot(
                profile=AgentProfile.model_validate_json(doc["profile"]),
                state=AgentState(doc.get("state", AgentState.LOGGED_OUT.value)),
                online=bool(hb), calls=sorted(calls) if isinstance(calls, list) else [],
                pending_offers=int(offers), rr_credit=float(credit or 0),
                **{name: float(doc.get(name) or 0) for name in _FLOATS},
                **{name: int(doc.get(name) or 0) for name in _COUNTERS},
            ))
        return out

    async def set_agent_fields(self, agent_id: str, **fields: Any) -> None:
        if fields:
            values = {name: (value.value if isinstance(value, AgentState) else value)
                      for name, value in fields.items()}
            await self.redis.hset(self.k("agent", agent_id), mapping=values)

    async def incr_agent(self, agent_id: str, counter: str, by: int = 1) -> None:
        if counter not in _COUNTERS:
            raise ValueError(f"unknown agent counter {counter!r}")
        await self.redis.hincrby(self.k("agent", agent_id), counter, by)

    async def set_credits(self, credits: dict[str, float]) -> None:
        if credits:
            await self.redis.hset(self.k("agents", "credit"),
                                  mapping={a: repr(float(c)) for a, c in credits.items()})

    async def heartbeat(self, agent_id: str, ttl_s: float) -> None:
        await self.redis.set(self.k("agent", agent_id, "hb"), "1", px=int(ttl_s * 1000))

    async def clear_heartbeat(self, agent_id: str) -> None:
        await self.redis.delete(self.k("agent", agent_id, "hb"))

    async def add_call(self, agent_id: str, call_uuid: str) -> bool:
        return bool(await self.redis.sadd(self.k("agent", agent_id, "calls"), call_uuid))

    async def remove_call(self, agent_id: str, call_uuid: str) -> bool:
        return bool(await self.redis.srem(self.k("agent", agent_id, "calls"), call_uuid))

    async def add_agent_offer(self, agent_id: str, offer_id: str) -> None:
        await self.redis.sadd(self.k("agent", agent_id, "offers"), offer_id)

    async def remove_agent_offer(self, agent_id: str, offer_id: str) -> None:
        await self.redis.srem(self.k("agent", agent_id, "offers"), offer_id)

    async def agent_offer_ids(self, agent_id: str) -> list[str]:
        return sorted(await self.redis.smembers(self.k("agent", agent_id, "offers")))

    # ---- escalations and the queue -----------------------------------------------------

    async def get_escalation(self, call_uuid: str) -> EscalationRecord | None:
        raw = await self.redis.get(self.k("esc", call_uuid))
        return EscalationRecord.model_validate_json(raw) if raw else None

    async def put_escalation(self, record: EscalationRecord, *, active: bool,
                             ttl_s: int | None = None) -> None:
        call_uuid = record.request.call_uuid
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.k("esc", call_uuid), record.model_dump_json(), ex=ttl_s)
        if active:
            pipe.sadd(self.k("esc", "active"), call_uuid)
        else:
            pipe.srem(self.k("esc", "active"), call_uuid)
            pipe.zrem(self.k("esc", "queue"), call_uuid)
        await pipe.execute()

    async def active_calls(self) -> list[str]:
        return sorted(await self.redis.smembers(self.k("esc", "active")))

    async def enqueue(self, call_uuid: str, enqueued_at: float) -> None:
        await self.redis.zadd(self.k("esc", "queue"), {call_uuid: enqueued_at})

    async def claim(self, call_uuid: str) -> bool:
        """Take a call off the queue; only one caller gets True."""
        return bool(await self.redis.zrem(self.k("esc", "queue"), call_uuid))

    async def queue_length(self) -> int:
        return int(await self.redis.zcard(self.k("esc", "queue")))

    async def queued(self) -> list[EscalationRecord]:
        ids = await self.redis.zrange(self.k("esc", "queue"), 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([self.k("esc", call_uuid) for call_uuid in ids])
        return [EscalationRecord.model_validate_json(raw) for raw in raws if raw]

    # ---- offers ------------------------------------------------------------------------

    async def put_offer(self, offer: Offer, ttl_s: int) -> None:
        key = self.k("offer", offer.offer_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"doc": offer.model_dump_json(exclude={"state"}),
                                "state": offer.state.value})
        pipe.expire(key, ttl_s)
        if offer.state is OfferState.PENDING:
            pipe.zadd(self.k("offers", "pending"), {offer.offer_id: offer.expires_at})
        await pipe.execute()

    async def update_offer_doc(self, offer: Offer) -> None:
        """Rewrite an offer's fields other than its state (which only `transition_offer`
        changes)."""
        await self.redis.hset(self.k("offer", offer.offer_id), "doc",
                              offer.model_dump_json(exclude={"state"}))

    async def get_offer(self, offer_id: str) -> Offer | None:
        doc = await self.redis.hgetall(self.k("offer", offer_id))
        if not doc or "doc" not in doc:
            return None
        return Offer(**json.loads(doc["doc"]), state=OfferState(doc["state"]))

    async def transition_offer(self, offer_id: str, to: OfferState,
                               allowed_from: tuple[OfferState, ...] = (OfferState.PENDING,)
                               ) -> tuple[bool, OfferState | None]:
        """Move an offer to `to` if it is in one of `allowed_from`. Returns (moved, the
        state it was in; None when the offer does not exist)."""
        moved, before = await self._transition(
            keys=[self.k("offer", offer_id), self.k("offers", "pending")],
            args=[to.value, offer_id, *(s.value for s in allowed_from)],
        )
        return bool(moved), (OfferState(before) if before else None)

    async def due_offers(self, now: float) -> list[str]:
        return list(await self.redis.zrangebyscore(self.k("offers", "pending"), "-inf", now))

    async def pending_offers(self) -> list[str]:
        return list(await self.redis.zrange(self.k("offers", "pending"), 0, -1))

    # ---- floor figures and live settings ------------------------------------------------

    async def count_outcome(self, outcome: str, now: float) -> None:
        day = datetime.fromtimestamp(now, timezone.utc).date().isoformat()
        await self.redis.hincrby(self.k("esc", "daily"), f"{day}|{outcome}", 1)

    async def daily_outcomes(self, now: float, days: int) -> list[dict[str, Any]]:
        """Per UTC day, oldest first: ``{"day", "answered", "abandoned", "overflow"}``."""
        today = datetime.fromtimestamp(now, timezone.utc).date()
        names = [(today - timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
        kinds = ("answered", "abandoned", "overflow")
        values = await self.redis.hmget(self.k("esc", "daily"),
                                        [f"{d}|{k}" for d in names for k in kinds])
        out = []
        for i, day in enumerate(names):
            row: dict[str, Any] = {"day": day}
            for j, kind in enumerate(kinds):
                row[kind] = int(values[i * len(kinds) + j] or 0)
            out.append(row)
        return out

    async def weights(self) -> dict[str, float]:
        raw = await self.redis.hgetall(self.k("routing", "weights"))
        return {name: float(value) for name, value in raw.items()}

    async def set_weights(self, weights: dict[str, float]) -> None:
        if weights:
            await self.redis.hset(self.k("routing", "weights"),
                                  mapping={n: repr(float(v)) for n, v in weights.items()})

    async def active_escalations(self) -> list[EscalationRecord]:
        ids = await self.active_calls()
        if not ids:
            return []
        raws = await self.redis.mget([self.k("esc", call_uuid) for call_uuid in ids])
        return [EscalationRecord.model_validate_json(raw) for raw in raws if raw]

    # ---- feed --------------------------------------------------------------------------

    async def publish(self, doc: dict[str, Any]) -> None:
        await self.redis.publish(self.feed_channel, json.dumps(doc, default=str))
