"""The records outbox: events on their way from the call path to the durable SQL store.

A producer adds one compact JSON event to the Redis stream ``cf:outbox`` in the same
transaction (MULTI, or the Lua script) as the Redis write it mirrors, so the event exists
exactly when the Redis record does and costs the call path no extra round trip: the
gateway's call recorder (`call_state.RedisCallRecorder`: call start, each turn, the bot's
end), the ESL controller's record sink (answer, hang-up, cause), the skill router (which
agent took the call), the dialer's compliance scripts (each attempt, abandonment, the
call's length, calling-window deferrals) and every do-not-call change (who, when, why).

The record writer (`cluster.store.writer.RecordWriter`) reads the stream through the
consumer group ``records``, writes a batch with idempotent upserts, and only then
acknowledges and deletes it (`Outbox.ack`). A writer killed mid-batch reads the batch
again from its pending list when it restarts; a database that is down leaves every event
in the stream. The stream is never trimmed by length (no MAXLEN): an event leaves it only
once it is in SQL, or in the dead-letter stream ``cf:outbox:dead`` when it cannot be read.

Each event: ``{"v": 1, "kind": <kind>, "at": <unix s>, ...fields}`` (`KINDS`). Phone
numbers travel in full (the compliance ledger needs them); they are masked where shown.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

__all__ = [
    "DEAD_LETTERS",
    "GROUP",
    "KINDS",
    "OUTBOX",
    "Outbox",
    "OutboxEntry",
    "OutboxPublisher",
    "event_id",
    "outbox_event",
]

OUTBOX = "cf:outbox"
DEAD_LETTERS = "cf:outbox:dead"
GROUP = "records"
VERSION = 1

#: event kinds and who adds them
KINDS = frozenset({
    "call.start",  # gateway: a bot fork started (direction, numbers, campaign, lead, bot)
    "call.turn",  # gateway: one turn (turn_to_json) + the bot, variant and disposition
    "call.end",  # gateway: the bot's part ended (outcome_to_json)
    "call.telephony",  # ESL controller: the channel ended (answer/end times, cause, history)
    "call.handled",  # skill router: the call ended with (or without) an agent
    "call.callback",  # skill router: an overflowing caller will be called back (lead, due)
    "dial.attempt",  # dialer: one attempt's compliance record, with the calling window
    "dial.call_end",  # dialer: a connected call's length and final cause
    "dnc.change",  # do-not-call add/remove: who, when, why
    "window.decision",  # dialer: a lead deferred because its calling window was closed
    "ticket.create",  # gateway: a bot's ticket action (the writer creates it idempotently)
})


def event_id() -> str:
    """A fresh id for events that are facts of their own (a do-not-call change, a window
    decision): the store's primary key, so a replayed event is written once."""
    return uuid.uuid4().hex


def outbox_event(kind: str, at: float | None = None, **fields: Any) -> str:
    """One outbox event as the compact JSON the stream carries."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox event kind {kind!r}")
    doc = {"v": VERSION, "kind": kind, "at": time.time() if at is None else at, **fields}
    return json.dumps(doc, separators=(",", ":"), default=str)


def add_to(pipe: Any, event: str) -> None:
    """Queue the XADD of `event` on a Redis pipeline (the producer's own transaction)."""
    pipe.xadd(OUTBOX, {"e": event})


@dataclass(frozen=True)
class OutboxEntry:
    """One stream entry: its id and the decoded event (None when it cannot be read:
    `error` says why, and the writer moves it to the dead letters)."""

    id: str
    event: Mapping[str, Any] | None
    raw: str = ""
    error: str = ""


def _decode(entry_id: Any, fields: Mapping[Any, Any] | None) -> OutboxEntry:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    if not fields:  # deleted while pending (by hand): nothing left to write, just ack it
        return OutboxEntry(eid, None, error="entry deleted")
    raw = fields.get(b"e", fields.get("e"))
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    try:
        doc = json.loads(text)
    except ValueError:
        return OutboxEntry(eid, None, text, "not JSON")
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
        return OutboxEntry(eid, None, text, "unknown event kind")
    return OutboxEntry(eid, doc, text)


class OutboxPublisher:
    """Adds events on their own (producers that have no transaction to join)."""

    def __init__(self, redis: aioredis.Redis):
        self.redis = redis

    async def publish(self, event: str) -> None:
        await self.redis.xadd(OUTBOX, {"e": event})


class Outbox:
    """The writer's side of the stream: read a batch (its own unacknowledged entries
    first), acknowledge and delete what is in SQL, park what cannot be read."""

    def __init__(self, redis: aioredis.Redis, consumer: str = "writer", stream: str = OUTBOX):
        self.redis = redis
        self.consumer = consumer
        self.stream = stream
        self._group_ready = False

    async def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (events added before the
        first writer ran are read too)."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read(self, count: int, block_ms: int | None = None) -> list[OutboxEntry]:
        """Entries delivered to this consumer but not acknowledged (a batch a killed or
        failed writer did not finish) first; else new ones, waiting up to `block_ms`."""
        await self.ensure_group()
        pending = await self._read("0", count, None)
        if pending:
            return pending
        return await self._read(">", count, block_ms)

    async def _read(self, start: str, count: int, block_ms: int | None) -> list[OutboxEntry]:
        reply = await self.redis.xreadgroup(GROUP, self.consumer, {self.stream: start},
                                            count=count, block=block_ms)
        entries: list[OutboxEntry] = []
        for _stream, items in reply or ():
            entries.extend(_decode(eid, fields) for eid, fields in items)
        return entries

    async def ack(self, ids: list[str]) -> None:
        """The entries are in SQL: acknowledge and delete them (one transaction)."""
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        await pipe.execute()

    async def dead_letter(self, entries: list[OutboxEntry], why: Mapping[str, str]) -> None:
        """Move unreadable (or unwritable) entries to ``cf:outbox:dead`` with the reason,
        so one bad event cannot stop the writer; `callfleet records outbox` shows them."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for entry in entries:
            pipe.xadd(DEAD_LETTERS, {"id": entry.id, "e": entry.raw or "",
                                     "error": why.get(entry.id) or entry.error or "unknown"})
        pipe.xack(self.stream, GROUP, *[e.id for e in entries])
        pipe.xdel(self.stream, *[e.id for e in entries])
        await pipe.execute()

    async def backlog(self) -> dict[str, int]:
        """Events waiting (in the stream), delivered but unacknowledged, and dead letters."""
        await self.ensure_group()
        pipe = self.redis.pipeline(transaction=False)
        pipe.xlen(self.stream).xpending(self.stream, GROUP).xlen(DEAD_LETTERS)
        length, pending, dead = await pipe.execute()
        count = pending.get("pending", 0) if isinstance(pending, dict) else pending[0]
        return {"waiting": int(length), "pending": int(count or 0), "dead": int(dead)}
