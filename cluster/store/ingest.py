"""Outbox events (`cluster.records.outbox`) as row writes: each event becomes one or more
`RowWrite`s, and each column of a write says how it merges with what the row already
holds, so that events may arrive twice, and from different producers in any order,
and the row still ends up the same:

* ``set`` — the event's value replaces the stored one (a value the event does not carry
  is not written at all, so producers fill in their own columns without erasing others');
* ``first`` / ``last`` — the earlier / later of the two times (a call's start is the
  dial or the fork, whichever came first; its end the hang-up, after the bot's part);
* ``most`` — the larger (turn counts; `abandoned` stays true once true);
* ``keep`` — written only when the row is new (facts with an id of their own).

A malformed event raises `BadEvent` (the writer parks it in the dead letters).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import Table

from cluster.store.models import (
    STAGE_COLUMNS,
    Call,
    CallTurn,
    DialAttempt,
    DncChange,
    Ticket,
    WindowDecision,
)
from cluster.store.triage import choose_queue, is_vip, ticket_priority

__all__ = ["BadEvent", "Merge", "RowWrite", "rows_for"]

Merge = Literal["set", "first", "last", "most", "keep"]


class BadEvent(ValueError):
    """An outbox event that cannot become rows (missing ids, wrong types)."""


@dataclass(frozen=True)
class RowWrite:
    """An upsert of one row: `values` (primary key included) and each column's merge."""

    table: Table
    values: dict[str, Any]
    merge: dict[str, Merge]


def rows_for(event: Mapping[str, Any]) -> list[RowWrite]:
    """The row writes of one event (see the module docstring)."""
    kind = event.get("kind")
    handler = _HANDLERS.get(str(kind))
    if handler is None:
        raise BadEvent(f"unknown event kind {kind!r}")
    try:
        return [w for w in handler(event) if w is not None]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        if isinstance(exc, BadEvent):
            raise
        raise BadEvent(f"{kind}: {type(exc).__name__}: {exc}") from None


# ---- helpers -------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadEvent("a time cannot be a boolean")
    return datetime.fromtimestamp(float(value), timezone.utc)


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit] if text else None


def _float(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def _int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _id(event: Mapping[str, Any], key: str, limit: int = 64) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadEvent(f"{event.get('kind')}: no {key}")
    return value[:limit]


def _call(call_uuid: str, at: datetime | None, **columns: tuple[Any, Merge]) -> RowWrite:
    """A write to the calls table of the columns whose value is not None."""
    values: dict[str, Any] = {"call_uuid": call_uuid}
    merge: dict[str, Merge] = {}
    for name, (value, how) in columns.items():
        if value is not None:
            values[name], merge[name] = value, how
    if at is not None:
        values["updated_at"], merge["updated_at"] = at, "last"
    values.setdefault("abandoned", False)
    merge.setdefault("abandoned", "most")
    return RowWrite(Call.__table__, values, merge)


def _write(table: Table, values: dict[str, Any], keys: tuple[str, ...],
           how: Merge = "set") -> RowWrite:
    values = {k: v for k, v in values.items() if v is not None or k in keys}
    return RowWrite(table, values, {k: how for k in values if k not in keys})


# ---- events --------------------------------------------------------------------------


def _call_start(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    at = _when(e.get("at"))
    yield _call(
        _id(e, "call_uuid"), at,
        direction=(_text(e.get("direction"), 16), "set"),
        campaign_id=(_text(e.get("campaign"), 128), "set"),
        lead_id=(_text(e.get("lead"), 128), "set"),
        bot=(_text(e.get("bot"), 128), "set"),
        variant=(_text(e.get("variant"), 64), "set"),
        caller=(_text(e.get("caller"), 40), "set"),
        callee=(_text(e.get("callee"), 40), "set"),
        started_at=(_when(e.get("started_at")), "first"))


def _call_turn(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    call_uuid = _id(e, "call_uuid")
    turn = e.get("turn")
    if not isinstance(turn, Mapping):
        raise BadEvent("call.turn: no turn")
    index = _int(turn.get("n"))
    if index is None:
        raise BadEvent("call.turn: the turn has no number")
    at = _when(e.get("at"))
    intent = turn.get("intent") if isinstance(turn.get("intent"), Mapping) else {}
    emotion = turn.get("emotion") if isinstance(turn.get("emotion"), Mapping) else {}
    timing = turn.get("timing") if isinstance(turn.get("timing"), Mapping) else {}
    scores = emotion.get("scores") if isinstance(emotion.get("scores"), Mapping) else {}
    label = _text(emotion.get("label"), 64)
    kind = "no_input" if turn.get("no_input") else "dtmf" if "dtmf" in turn else "speech"
    values = {
        "call_uuid": call_uuid, "turn_index": index, "at": at, "kind": kind,
        "caller_text": _text(turn.get("caller"), 100_000), "dtmf": _text(turn.get("dtmf"), 64),
        "intent": _text(intent.get("label"), 128),
        "intent_confidence": _float(intent.get("confidence")),
        "out_of_scope": _bool(intent.get("out_of_scope")) if intent else None,
        "emotion": label, "emotion_score": _float(scores.get(label)) if label else None,
        "bot_reply": _text(turn.get("bot"), 100_000), "bot_state": _text(turn.get("bot_state"), 128),
        "actions": turn.get("actions") if isinstance(turn.get("actions"), list) else None,
    }
    for stage in STAGE_COLUMNS:
        values[stage] = _float(timing.get(stage))
    yield _write(CallTurn.__table__, values, keys=("call_uuid", "turn_index"))
    yield _call(call_uuid, at,
                bot=(_text(e.get("bot"), 128), "set"),
                variant=(_text(e.get("variant"), 64), "set"),
                disposition=(_text(e.get("disposition"), 128), "set"),
                turn_count=(index, "most"))


def _call_end(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    outcome = e.get("outcome") if isinstance(e.get("outcome"), Mapping) else {}
    at = _when(e.get("at"))
    yield _call(
        _id(e, "call_uuid"), at,
        outcome=(_text(outcome.get("reason"), 200), "set"),
        escalation_reason=(_text(outcome.get("escalation"), 500), "set"),
        escalation_rule=(_text(e.get("escalation_rule"), 128), "set"),
        turn_count=(_int(outcome.get("turns")), "most"),
        barge_ins=(_int(outcome.get("barge_ins")), "most"),
        bot_ended_at=(at, "last"), ended_at=(at, "last"))


def _call_telephony(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    yield _call(
        _id(e, "call_uuid"), _when(e.get("at")),
        direction=(_text(e.get("direction"), 16), "set"),
        campaign_id=(_text(e.get("campaign"), 128), "set"),
        lead_id=(_text(e.get("lead"), 128), "set"),
        bot=(_text(e.get("bot"), 128), "set"),
        caller=(_text(e.get("caller"), 40), "set"),
        callee=(_text(e.get("callee"), 40), "set"),
        started_at=(_when(e.get("created_at")), "first"),
        answered_at=(_when(e.get("answered_at")), "first"),
        ended_at=(_when(e.get("ended_at")), "last"),
        hangup_cause=(_text(e.get("hangup_cause"), 64), "set"),
        escalation_reason=(_text(e.get("escalation"), 500), "set"),
        escalation_rule=(_text(e.get("escalation_rule"), 128), "set"))


def _call_handled(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    yield _call(_id(e, "call_uuid"), _when(e.get("at")),
                agent_id=(_text(e.get("agent_id"), 128), "set"),
                escalation_status=(_text(e.get("escalation_status"), 32), "set"))


def _call_callback(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    yield _call(_id(e, "call_uuid"), _when(e.get("at")),
                callback_lead_id=(_text(e.get("lead_id"), 128), "set"),
                callback_due_at=(_when(e.get("due_at")), "set"))


def _dial_attempt(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    record = e.get("record")
    if not isinstance(record, Mapping):
        raise BadEvent("dial.attempt: no record")
    window = e.get("window") if isinstance(e.get("window"), Mapping) else {}
    campaign_id = _id(record, "campaign_id", 128)
    attempt_id = _id(record, "attempt_id", 160)
    call_uuid = _text(record.get("call_uuid"), 64)
    started, ended = _when(record.get("started_at")), _when(record.get("ended_at"))
    yield _write(DialAttempt.__table__, {
        "campaign_id": campaign_id, "attempt_id": attempt_id,
        "lead_id": _text(record.get("lead_id"), 128), "attempt": _int(record.get("attempt")),
        "call_uuid": call_uuid, "started_at": started, "ended_at": ended,
        "result": _text(record.get("result"), 32), "cause": _text(record.get("cause"), 64),
        "answered": _bool(record.get("answered")), "abandoned": _bool(record.get("abandoned")),
        "ring_s": _float(record.get("ring_s")), "gateway": _text(record.get("gateway"), 128),
        "handle_s": _float(record.get("handle_s")),
        "hangup_cause": _text(record.get("hangup_cause"), 64),
        "escalated": _bool(record.get("escalated")),
        "lead_timezone": _text(window.get("timezone") or record.get("timezone"), 64),
        "local_time": _text(window.get("local_time"), 40),
        "window_start": _text(window.get("window_start"), 5),
        "window_end": _text(window.get("window_end"), 5),
        "inside_window": _bool(window.get("inside")),
    }, keys=("campaign_id", "attempt_id"))
    if call_uuid:
        yield _call(call_uuid, ended,
                    direction=("outbound", "set"), campaign_id=(campaign_id, "set"),
                    lead_id=(_text(record.get("lead_id"), 128), "set"),
                    started_at=(started, "first"),
                    dial_result=(_text(record.get("result"), 32), "set"),
                    abandoned=(bool(record.get("abandoned")), "most"))


def _dial_call_end(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    end = e.get("end") if isinstance(e.get("end"), Mapping) else {}
    yield _write(DialAttempt.__table__, {
        "campaign_id": _id(e, "campaign_id", 128), "attempt_id": _id(e, "attempt_id", 160),
        "call_uuid": _text(e.get("call_uuid"), 64),
        "handle_s": _float(end.get("handle_s")), "hangup_cause": _text(end.get("cause"), 64),
        "escalated": _bool(end.get("escalated")),
    }, keys=("campaign_id", "attempt_id"))


def _dnc_change(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    base = _id(e, "id", 40)
    op = e.get("op")
    if op not in ("add", "remove"):
        raise BadEvent(f"dnc.change: op {op!r}")
    phones = e.get("phones")
    if not isinstance(phones, list):
        raise BadEvent("dnc.change: no phones")
    at = _when(e.get("at"))
    for index, phone in enumerate(phones):
        yield _write(DncChange.__table__, {
            "id": f"{base}:{index}", "at": at, "op": op, "phone": _text(phone, 40),
            "scope": _text(e.get("scope"), 128) or "global", "actor": _text(e.get("actor"), 200),
            "reason": _text(e.get("reason"), 500), "source": _text(e.get("source"), 32),
            "call_uuid": _text(e.get("call_uuid"), 64),
        }, keys=("id",), how="keep")


def _window_decision(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    yield _write(WindowDecision.__table__, {
        "id": _id(e, "id"), "at": _when(e.get("at")),
        "campaign_id": _id(e, "campaign_id", 128), "lead_id": _id(e, "lead_id", 128),
        "verdict": _text(e.get("verdict"), 16) or "deferred",
        "lead_timezone": _text(e.get("timezone"), 64), "local_time": _text(e.get("local_time"), 40),
        "window_start": _text(e.get("window_start"), 5),
        "window_end": _text(e.get("window_end"), 5),
        "next_open_at": _when(e.get("next_open_at")),
    }, keys=("id",), how="keep")


def _ticket_create(e: Mapping[str, Any]) -> Iterator[RowWrite]:
    """A bot's ticket: inserted once (its id came with the event); its deadlines and
    customer key are filled in by the SLA pass (`cluster.store.tickets`)."""
    tier = _text(e.get("tier"), 32)
    vip = is_vip(tier, bool(e.get("vip")))
    fields = e.get("fields") if isinstance(e.get("fields"), Mapping) else None
    yield _write(Ticket.__table__, {
        "id": _id(e, "id"), "source": "bot", "channel": "call",
        "queue": choose_queue(_text(e.get("queue"), 64), vip), "status": "open",
        "priority": ticket_priority(tier=tier, vip=vip, anger=_float(e.get("anger")),
                                    emotion=_text(e.get("emotion"), 64),
                                    requested=_text(e.get("priority"), 16)),
        "subject": _text(e.get("subject"), 300) or "(no subject)",
        "fields": dict(fields) if fields else None,
        "call_uuid": _text(e.get("call_uuid"), 64), "phone": _text(e.get("phone"), 40),
        "tier": tier, "emotion": _text(e.get("emotion"), 64),
        "created_by": _text(e.get("bot"), 200), "created_at": _when(e.get("at")),
        "updated_at": _when(e.get("at")),
    }, keys=("id",), how="keep")


_HANDLERS = {
    "call.start": _call_start,
    "call.turn": _call_turn,
    "call.end": _call_end,
    "call.telephony": _call_telephony,
    "call.handled": _call_handled,
    "call.callback": _call_callback,
    "dial.attempt": _dial_attempt,
    "dial.call_end": _dial_call_end,
    "dnc.change": _dnc_change,
    "window.decision": _window_decision,
    "ticket.create": _ticket_create,
}
