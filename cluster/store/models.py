"""The durable store's tables (SQLAlchemy 2): calls and their turns, and the compliance
ledger (dial attempts, do-not-call changes, calling-window decisions).

Every row is written by the record writer from outbox events (`cluster.store.ingest`),
keyed so that writing the same event twice changes nothing: a call by its FreeSWITCH
uuid, a turn by (call, turn number), an attempt by (campaign, attempt id), a do-not-call
change or window decision by the id its event was given. The schema itself is created
and changed only by the Alembic migrations next to this file (`migrations/versions`);
`tests/unit/test_store_repository.py` checks that they agree with these classes.

Times are UTC (`UTCDateTime`: timestamptz on PostgreSQL, ISO text on SQLite). Phone
numbers are stored in full (the ledger must prove which number was blocked or dialled)
and masked wherever they are shown (`cluster.store.masking`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from telephony.call_data import STAGES

__all__ = ["Base", "Call", "CallTurn", "Customer", "DialAttempt", "DncChange", "Ticket",
           "UTCDateTime", "WindowDecision", "STAGE_COLUMNS"]

#: turn latency columns, one per stage of `telephony.call_data.STAGES`
STAGE_COLUMNS: tuple[str, ...] = STAGES


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime in, an aware UTC datetime out, on every backend (SQLite keeps
    no zone: values are stored as UTC wall time and read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Call(Base):
    """One call: who, what bot and variant, when it started, was answered and ended, how
    it ended (the bot's reason, the script's disposition, the dial result, the switch's
    hang-up cause), whether and why it went to a person and who took it."""

    __tablename__ = "calls"

    call_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str | None] = mapped_column(String(16))
    campaign_id: Mapped[str | None] = mapped_column(String(128))
    lead_id: Mapped[str | None] = mapped_column(String(128))
    bot: Mapped[str | None] = mapped_column(String(128))
    variant: Mapped[str | None] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(40))
    callee: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bot_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(200))
    disposition: Mapped[str | None] = mapped_column(String(128))
    dial_result: Mapped[str | None] = mapped_column(String(32))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    escalation_reason: Mapped[str | None] = mapped_column(String(500))
    escalation_rule: Mapped[str | None] = mapped_column(String(128))
    escalation_status: Mapped[str | None] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(128))
    abandoned: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    turn_count: Mapped[int | None] = mapped_column(Integer)
    barge_ins: Mapped[int | None] = mapped_column(Integer)
    recording_url: Mapped[str | None] = mapped_column(String(1000))
    callback_lead_id: Mapped[str | None] = mapped_column(String(128))  # the callback's lead
    callback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_campaign_started", "campaign_id", "started_at"),
        Index("ix_calls_agent", "agent_id"),
    )


class CallTurn(Base):
    """One turn: what the caller said (or keyed, or silence), the intent and emotion the
    models heard, the bot's reply and state, its actions, and each stage's latency (ms
    from the end of the caller's speech)."""

    __tablename__ = "call_turns"

    call_uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    turn_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    caller_text: Mapped[str | None] = mapped_column(Text)
    dtmf: Mapped[str | None] = mapped_column(String(64))
    intent: Mapped[str | None] = mapped_column(String(128))
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    out_of_scope: Mapped[bool | None] = mapped_column(Boolean)
    emotion: Mapped[str | None] = mapped_column(String(64))
    emotion_score: Mapped[float | None] = mapped_column(Float)
    bot_reply: Mapped[str | None] = mapped_column(Text)
    bot_state: Mapped[str | None] = mapped_column(String(128))
    actions: Mapped[Any] = mapped_column(JSON, nullable=True)
    endpoint_ms: Mapped[float | None] = mapped_column(Float)
    prep_ms: Mapped[float | None] = mapped_column(Float)
    asr_ms: Mapped[float | None] = mapped_column(Float)
    asr_engine_ms: Mapped[float | None] = mapped_column(Float)
    nlu_ms: Mapped[float | None] = mapped_column(Float)
    bot_ms: Mapped[float | None] = mapped_column(Float)
    first_audio_ms: Mapped[float | None] = mapped_column(Float)


class DialAttempt(Base):
    """One dial attempt as the dialer recorded it (`cluster.dialer.compliance.AttemptRecord`)
    plus where the dial stood in the lead's calling window: the abandonment rate over any
    period, and every dial's legality, follow from these rows alone."""

    __tablename__ = "dial_attempts"

    campaign_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    attempt_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    lead_id: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int | None] = mapped_column(Integer)
    call_uuid: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(String(32))
    cause: Mapped[str | None] = mapped_column(String(64))
    answered: Mapped[bool | None] = mapped_column(Boolean)
    abandoned: Mapped[bool | None] = mapped_column(Boolean)
    ring_s: Mapped[float | None] = mapped_column(Float)
    gateway: Mapped[str | None] = mapped_column(String(128))
    handle_s: Mapped[float | None] = mapped_column(Float)
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    escalated: Mapped[bool | None] = mapped_column(Boolean)
    lead_timezone: Mapped[str | None] = mapped_column(String(64))
    local_time: Mapped[str | None] = mapped_column(String(40))
    window_start: Mapped[str | None] = mapped_column(String(5))
    window_end: Mapped[str | None] = mapped_column(String(5))
    inside_window: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_dial_attempts_campaign_ended", "campaign_id", "ended_at"),
        Index("ix_dial_attempts_call", "call_uuid"),
    )


class DncChange(Base):
    """One number added to or removed from a do-not-call list: who, when, why, how."""

    __tablename__ = "dnc_changes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    op: Mapped[str] = mapped_column(String(8), nullable=False)  # add | remove
    phone: Mapped[str] = mapped_column(String(40), nullable=False)
    scope: Mapped[str] = mapped_column(String(128), nullable=False)  # global | campaign id
    actor: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str | None] = mapped_column(String(32))  # api | cli | bot
    call_uuid: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_dnc_changes_phone", "phone"), Index("ix_dnc_changes_at", "at"))


class WindowDecision(Base):
    """A lead not dialled because its calling window was closed, and when it reopens."""

    __tablename__ = "window_decisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    campaign_id: Mapped[str] = mapped_column(String(128), nullable=False)
    lead_id: Mapped[str] = mapped_column(String(128), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    lead_timezone: Mapped[str | None] = mapped_column(String(64))
    local_time: Mapped[str | None] = mapped_column(String(40))
    window_start: Mapped[str | None] = mapped_column(String(5))
    window_end: Mapped[str | None] = mapped_column(String(5))
    next_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_window_decisions_campaign_at", "campaign_id", "at"),)


class Ticket(Base):
    """A ticket: from a bot's action (written by the record writer from its outbox
    event), an agent, or another channel (the intake API). Its queue sets its deadlines
    (``tickets.queues``); a breach is stamped once (``*_breached_at``) and announced once
    (``*_breach_sent_at``), see `cluster.store.tickets`."""

    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # bot | agent | intake | api
    channel: Mapped[str | None] = mapped_column(String(32))  # call, web, email, ...
    queue: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # open | closed
    priority: Mapped[int] = mapped_column(Integer, nullable=False)  # 1 (most urgent) .. 4
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[Any] = mapped_column(JSON, nullable=True)
    call_uuid: Mapped[str | None] = mapped_column(String(64))
    customer_key: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(40))  # E.164, masked where shown
    email: Mapped[str | None] = mapped_column(String(320))
    tier: Mapped[str | None] = mapped_column(String(32))
    emotion: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(Text)
    first_response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_breach_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_breach_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_tickets_status_queue", "status", "queue"),
        Index("ix_tickets_assignee", "assignee"),
        Index("ix_tickets_customer", "customer_key"),
        Index("ix_tickets_call", "call_uuid"),
        Index("ix_tickets_created_at", "created_at"),
    )


class Customer(Base):
    """A customer profile, filed under HMAC-SHA256(secret, E.164 number) (`key`); the
    number itself is kept only masked (`phone_masked`). Calls and tickets are counted
    from their own tables when the profile is read; `attributes` may carry ``orders``."""

    __tablename__ = "customers"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_masked: Mapped[str | None] = mapped_column(String(40))
    tier: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[Any] = mapped_column(JSON, nullable=True)
    source: Mapped[str | None] = mapped_column(String(16))  # csv | api
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
