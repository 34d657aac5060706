"""Live call context in Redis, so the media gateway replicas stay stateless.

Keys (all expire `ttl_s` after the last write):

* ``cf:call:<uuid>`` hash — metadata (``call_uuid``, ...), status, outcome (JSON); a hash
  written before the rename names the id ``call_id``, and `get_call` still reads it
* ``cf:call:<uuid>:turns`` list — one JSON document per turn (`turn_to_json`), the
  latest `max_turns` (LTRIM)
* ``cf:dialog:<uuid>`` — the bot's dialog state, written with each turn through the
  sequence-guarded `RedisConversationStore` (in the same transaction as the turn), so a
  replica still finishing an old turn cannot overwrite the state a newer one wrote
* ``cf:calls:active`` set — calls in progress; ``cf:calls:recent`` list — last 1000 ended
* ``cf:fork:<uuid>`` string — the lease of the gateway connection serving the call's
  media fork (`RedisCallDirectory.attach`), ``<fork generation>.<owner>``: a second fork
  of a live call is refused, but a fork the controller started after the leaseholder's
  dropped (a higher generation, ``CallRecord.forks``) takes the lease over
* ``cf:outbox`` stream — each start, turn and end also becomes an outbox event in the
  same transaction (`cluster.records.outbox`), for the durable SQL records

It also reads what the ESL controller records of each channel, ``cf:esl:<uuid>`` (the
`telephony.call_fsm.CallRecord` JSON, written by `cluster.actors.esl.RedisCallRecordSink`):
`RedisCallDirectory` tells the gateway whether a call is live, and what CallFleet itself
knows of it (direction, numbers, the ``callfleet_*`` channel variables the dialer or the
dialplan set: bot, campaign, lead), the only source of those facts; the fork's metadata
never is.

This module is the serializer of that wire: the call data types (`telephony.call_data`)
become JSON here and nowhere else on the way to Redis.

When Redis is unreachable the call goes on: writes are kept in a bounded in-memory
backlog and replayed, in order, once Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bots.script.state import DialogState
from bots.script.turns import action_from_dict, action_to_dict
from cluster.records.conversations import RedisConversationStore
from cluster.records.outbox import add_to, outbox_event
from telephony.call_data import (
    STAGES,
    CallOutcome,
    ResumedCall,
    TurnProsody,
    TurnRecord,
    TurnTiming,
)
from telephony.call_fsm import CallPhase, CallRecord
from telephony.media_fork import ForkMetadata
from training.models.outputs import (
    emotion_from_json,
    emotion_to_json,
    intent_from_json,
    intent_to_json,
)

log = logging.getLogger("callfleet.state")

PREFIX = "cf"
# what the call hash named its ``call_uuid`` field before the rename; read, never written
LEGACY_CALL_UUID_FIELD = "call_id"


def call_key(call_uuid: str) -> str:
    return f"{PREFIX}:call:{call_uuid}"


def esl_record_key(call_uuid: str) -> str:
    """The ESL controller's record of a channel (`CallRecord` JSON)."""
    return f"{PREFIX}:esl:{call_uuid}"


def fork_lease_key(call_uuid: str) -> str:
    return f"{PREFIX}:fork:{call_uuid}"


class RedisCallRecorder:
    """`telephony.call_session.CallRecorder` over Redis."""

    def __init__(self, url: str, ttl_s: int = 86_400, backlog: int = 10_000,
                 max_turns: int = 500):
        self.redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl_s = ttl_s
        self.max_turns = max_turns  # turns kept per call (the latest)
        self.dialogs = RedisConversationStore(self.redis, ttl_s)
        self._backlog: deque[tuple[str, tuple]] = deque(maxlen=backlog)
        self._lock = asyncio.Lock()

    async def call_started(self, meta: ForkMetadata) -> ResumedCall | None:
        """Register the call; what is stored of it when it is resuming (its fork moved to
        another replica mid-call), else None."""
        known, resumed = await self._try(self._resume, meta.call_uuid) or (False, None)
        doc = {
            "call_uuid": meta.call_uuid,
            "status": "bot",
            "sample_rate": meta.sample_rate,
            "direction": meta.direction or "",
            "campaign": meta.campaign or "",
            "caller": meta.caller or "",
            "callee": meta.callee or "",
            "customer": json.dumps(meta.customer),
        }
        if not known:
            doc["started_at"] = time.time()
        extra = meta.extra or {}
        event = outbox_event(
            "call.start", call_uuid=meta.call_uuid, direction=meta.direction,
            campaign=meta.campaign, caller=meta.caller, callee=meta.callee,
            lead=extra.get("lead"), bot=extra.get("bot"), variant=extra.get("variant"),
            started_at=doc.get("started_at"))
        await self._write("start", meta.call_uuid, doc, event)
        return resumed

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        # serialized now: a write kept in the backlog must not see later changes to state
        doc = turn_to_json(turn)
        event = outbox_event("call.turn", call_uuid=call_uuid, turn=doc, bot=state.script,
                             variant=state.variant, disposition=state.outcome)
        await self._write("turn", call_uuid, json.dumps(doc),
                          DialogState.from_json(state.to_json()), event)

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None:
        doc = outcome_to_json(outcome)
        rule = outcome.handover.rule if outcome.handover else None
        event = outbox_event("call.end", call_uuid=call_uuid, outcome=doc, escalation_rule=rule)
        await self._write("end", call_uuid, doc, event)

    async def get_call(self, call_uuid: str) -> dict[str, Any] | None:
        """The call's stored JSON document, for people and tools: the hash's fields, its
        ``turns`` and its dialog ``state``."""
        doc = await self._load(call_uuid, with_turns=True)
        if doc is not None:
            state = await self.dialogs.load(call_uuid)
            if state is not None:
                doc["state"] = state.to_dict()
        return doc

    async def close(self) -> None:
        await self.redis.aclose()

    # ---- internals --------------------------------------------------------------------

    async def _resume(self, call_uuid: str) -> tuple[bool, ResumedCall | None]:
        """Whether the call is known, and its dialog state and turns when it has any."""
        raw = await self.redis.hgetall(call_key(call_uuid))
        if not raw:
            return False, None
        state = await self.dialogs.load(call_uuid)
        if state is None and b"state" in raw:  # written by a gateway before the guarded store
            try:
                state = DialogState.from_json(raw[b"state"])
            except (ValueError, TypeError):
                state = None
        if state is None:
            return True, None
        turns = await self.redis.lrange(call_key(call_uuid) + ":turns", 0, -1)
        return True, ResumedCall(state, tuple(turn_from_json(json.loads(t)) for t in turns))

    async def _load(self, call_uuid: str, with_turns: bool = False) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(call_key(call_uuid))
        if not raw:
            return None
        doc: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        legacy = doc.pop(LEGACY_CALL_UUID_FIELD, None)  # written before the rename
        if legacy is not None:
            doc.setdefault("call_uuid", legacy)
        for key in ("state", "outcome", "customer"):
            if key in doc:
                doc[key] = json.loads(doc[key])
        if with_turns:
            turns = await self.redis.lrange(call_key(call_uuid) + ":turns", 0, -1)
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
            pipe.hdel(key, LEGACY_CALL_UUID_FIELD)  # a call resumed from an older gateway
            pipe.sadd(f"{PREFIX}:calls:active", args[0])
        elif op == "turn":
            pipe.rpush(key + ":turns", args[1])
            await self.dialogs.save_in(pipe, args[0], args[2])
            pipe.ltrim(key + ":turns", -self.max_turns, -1)
        elif op == "end":
            pipe.hset(key, mapping={
                "status": "ended", "ended_at": time.time(), "outcome": json.dumps(args[1])
            })
            pipe.srem(f"{PREFIX}:calls:active", args[0])
            pipe.lpush(f"{PREFIX}:calls:recent", args[0])
            pipe.ltrim(f"{PREFIX}:calls:recent", 0, 999)
        event = args[-1]
        if isinstance(event, str) and event.startswith("{"):  # the outbox copy (SQL records)
            add_to(pipe, event)
        pipe.expire(key, self.ttl_s)
        pipe.expire(key + ":turns", self.ttl_s)
        results = await pipe.execute()
        if op == "turn" and not results[1]:
            log.warning("dialog state of a call not saved: a newer one (seq > %d) is stored",
                        args[2].seq)


# ---- what CallFleet knows of a live call (for the media gateway) --------------------------

# the phases in which a call may have a bot fork: just answered, with the bot, or waiting
# for a person (an escalation nobody takes goes back to the bot)
FORK_PHASES = frozenset({CallPhase.ANSWERED.value, CallPhase.BOT.value, CallPhase.ESCALATED.value})

# KEYS[1] = lease; ARGV = owner ("<generation>.<token>"), ttl, generation. Taken when
# free, or when held by an older fork generation (the controller started this fork after
# FreeSWITCH reported the older one's websocket gone: its replica may have died holding it)
_LEASE_ATTACH = """
local held = redis.call('get', KEYS[1])
if held then
  local generation = tonumber(string.match(held, '^(%d+)%.')) or 0
  if generation >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('set', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return 1
"""
_LEASE_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
_LEASE_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class DirectoryUnavailable(RuntimeError):
    """The call records could not be read (Redis unreachable): try again later."""


@dataclass(frozen=True)
class LiveCall:
    """What the ESL controller recorded of a call when it originated or adopted it (its
    ``cf:esl:<uuid>`` record): the phase, direction, numbers and the ``callfleet_*``
    channel variables the dialer or the dialplan set. The caller's number is never logged."""

    call_uuid: str
    phase: str
    direction: str = "inbound"
    caller: str = ""
    callee: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    answered_at: float | None = None
    forks: int = 0  # media forks the controller has started for the call (the newest's number)

    @property
    def ended(self) -> bool:
        return self.phase == CallPhase.ENDED.value

    @property
    def forkable(self) -> bool:
        """A bot fork may (still) serve this call."""
        return self.phase in FORK_PHASES

    def variable(self, name: str) -> str | None:
        """The ``callfleet_<name>`` channel variable, None when unset or empty."""
        value = self.variables.get(f"callfleet_{name}")
        return value if isinstance(value, str) and value else None

    @classmethod
    def from_record(cls, record: CallRecord) -> LiveCall:
        return cls(record.call_uuid, record.phase.value, record.direction, record.caller_id,
                   record.destination, dict(record.variables), record.answered_at,
                   record.forks)


class RedisCallDirectory:
    """The gateway's view of which calls are live, and the lease that keeps one media
    fork per call (``cf:fork:<uuid>``, renewed while the fork is open, deleted when it
    closes, expiring on its own when a replica dies). Every failure to reach Redis is a
    `DirectoryUnavailable`."""

    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._attach = redis.register_script(_LEASE_ATTACH)
        self._refresh = redis.register_script(_LEASE_REFRESH)
        self._release = redis.register_script(_LEASE_RELEASE)

    async def lookup(self, call_uuid: str) -> LiveCall | None:
        """The controller's record of the call; None when it has none. A record that
        cannot be read is a call in no forkable phase."""
        raw = await self._call(self.redis.get(esl_record_key(call_uuid)))
        if not raw:
            return None
        try:
            return LiveCall.from_record(CallRecord.from_dict(json.loads(raw)))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("unreadable controller record for a call; treated as not live")
            return LiveCall(call_uuid, "unreadable")

    async def fork_seen(self, call_uuid: str) -> bool:
        """Whether a gateway has served this call id before (its context is stored)."""
        return bool(await self._call(self.redis.exists(call_key(call_uuid))))

    async def attach(self, call_uuid: str, owner: str, ttl_s: int, generation: int = 0) -> bool:
        """Take the call's fork lease for `owner` (``<generation>.<token>``), the fork the
        controller numbered `generation`; False when a fork of the same or a newer
        generation holds it."""
        return bool(await self._call(self._attach(keys=[fork_lease_key(call_uuid)],
                                                  args=[owner, ttl_s, generation])))

    async def refresh(self, call_uuid: str, owner: str, ttl_s: int) -> bool:
        """Renew the lease; False when it is no longer `owner`'s."""
        return bool(await self._call(
            self._refresh(keys=[fork_lease_key(call_uuid)], args=[owner, ttl_s])))

    async def detach(self, call_uuid: str, owner: str) -> None:
        """Give the lease back (only `owner`'s own)."""
        await self._call(self._release(keys=[fork_lease_key(call_uuid)], args=[owner]))

    @staticmethod
    async def _call(awaitable) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise DirectoryUnavailable(f"call records unavailable ({type(exc).__name__})") from None


# ---- the JSON of the records ---------------------------------------------------------------


def turn_to_json(turn: TurnRecord) -> dict[str, Any]:
    """A turn as stored in ``cf:call:<uuid>:turns``: ``n``, then ``caller`` (with
    ``intent``, ``emotion``, ``prosody``), ``dtmf`` or ``no_input``, then ``bot``,
    ``bot_state``, ``actions`` and ``timing`` (ms per stage)."""
    doc: dict[str, Any] = {"n": turn.n}
    if turn.kind == "no_input":
        doc["no_input"] = True
    elif turn.kind == "dtmf":
        doc["dtmf"] = turn.dtmf
    else:
        doc["caller"] = turn.caller
    if turn.intent is not None:
        doc["intent"] = intent_to_json(turn.intent)
    if turn.emotion is not None:
        doc["emotion"] = emotion_to_json(turn.emotion)
    if turn.prosody is not None:
        p = turn.prosody
        doc["prosody"] = {"loudness_db": p.loudness_db, "pitch_hz": p.pitch_hz,
                          "loudness_z": p.loudness_z, "pitch_z": p.pitch_z}
    doc["bot"] = turn.bot
    doc["bot_state"] = turn.bot_state
    if turn.kind != "no_input" or turn.actions:
        doc["actions"] = [action_to_dict(a) for a in turn.actions]
    if turn.timing is not None:
        doc["timing"] = {stage: getattr(turn.timing, stage) for stage in STAGES}
    return doc


def turn_from_json(doc: Mapping[str, Any]) -> TurnRecord:
    """Inverse of `turn_to_json`; keys an older gateway did not write take defaults."""
    intent, emotion = doc.get("intent"), doc.get("emotion")
    prosody, timing = doc.get("prosody"), doc.get("timing")
    dtmf = doc.get("dtmf")
    return TurnRecord(
        n=int(doc.get("n") or 0),
        bot=str(doc.get("bot") or ""),
        bot_state=str(doc.get("bot_state") or ""),
        caller=doc.get("caller") if isinstance(doc.get("caller"), str) else None,
        dtmf=dtmf if isinstance(dtmf, str) else None,
        no_input=bool(doc.get("no_input")),
        intent=intent_from_json(intent) if isinstance(intent, Mapping) else None,
        emotion=emotion_from_json(emotion) if isinstance(emotion, Mapping) else None,
        prosody=TurnProsody(float(prosody.get("loudness_db") or 0.0), prosody.get("pitch_hz"),
                            prosody.get("loudness_z"), prosody.get("pitch_z"))
        if isinstance(prosody, Mapping) else None,
        actions=tuple(_actions(doc.get("actions"))),
        timing=TurnTiming(**{stage: timing.get(stage) for stage in STAGES})
        if isinstance(timing, Mapping) else None,
    )


def _actions(docs: Any) -> Iterator[Any]:
    for doc in docs if isinstance(docs, list) else ():
        try:
            yield action_from_dict(doc)
        except (ValueError, AttributeError):
            log.warning("a stored turn names an action this version does not know; left out")


def outcome_to_json(outcome: CallOutcome) -> dict[str, Any]:
    """How the call ended, as stored in the call's ``outcome`` field (``dropped`` only
    when some caller input was over a bound)."""
    doc = {"reason": outcome.reason, "escalation": outcome.escalation, "turns": outcome.turns,
           "barge_ins": outcome.barge_ins, "heard": list(outcome.heard), "cut": list(outcome.cut)}
    if outcome.dropped:  # caller input over a bound (gateway.limits), by kind
        doc["dropped"] = dict(outcome.dropped)
    return doc


def call_record_event(record: CallRecord) -> str:
    """The outbox event (``call.telephony``) of a channel the ESL controller saw end:
    when it was dialled or arrived, answered and hung up, why, and where it went."""
    variables = record.variables or {}
    phases = [phase for phase, _ in record.history]
    return outbox_event(
        "call.telephony", at=record.ended_at, call_uuid=record.call_uuid,
        direction=record.direction, caller=record.caller_id, callee=record.destination,
        campaign=variables.get("callfleet_campaign"), lead=variables.get("callfleet_lead"),
        bot=variables.get("callfleet_bot"), created_at=record.created_at,
        answered_at=record.answered_at, ended_at=record.ended_at,
        hangup_cause=record.hangup_cause, gateway=record.gateway,
        escalation=record.escalation.reason if record.escalation else None,
        escalation_rule=record.escalation.rule if record.escalation else None,
        reached_agent="agent" in phases, phases=phases)
