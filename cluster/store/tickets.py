"""Tickets and their service levels (docs/records.md, "Tickets").

`TicketStore` creates tickets idempotently (an id derived from an idempotency key, or
the id a bot's outbox event carried), lists, assigns, answers and closes them. Each
queue's deadlines come from ``tickets.queues``: first response (an agent answered or
closed it) and resolution (closed). `SlaWatch` runs in the record writer's loop: it
gives new tickets their deadlines (bot tickets arrive without: the outbox event is
written on the call path, which has no settings to spare) and their customer key, stamps
each breach once in SQL (``UPDATE … WHERE <kind>_breached_at IS NULL``: of two writers
one wins), and announces it to its sinks (the agents' feed, signed webhooks), then stamps
it sent. A breach stamped but not yet sent (the writer died in between, or a sink
failed) is sent on the next pass: at least once, with a stable ``breach_id`` a receiver
drops repeats by.

Synchronous SQLAlchemy Core like `RecordStore` (call it in a thread); `SlaWatch.check`
is async and does its database work in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, select, update

from cluster.store.masking import mask_number
from cluster.store.models import Ticket
from cluster.store.repository import RecordStore
from cluster.store.triage import choose_queue, is_vip, ticket_id, ticket_priority
from configs.tickets import TicketsSettings

__all__ = ["BREACH_KINDS", "NewTicket", "SlaWatch", "TicketConflict", "TicketNotFound",
           "TicketQuery", "TicketStore", "public_ticket"]

log = logging.getLogger("callfleet.store.tickets")

BREACH_KINDS = ("first_response", "resolution")
STATUSES = ("open", "closed")
T = Ticket.__table__


class TicketNotFound(LookupError):
    """No ticket with this id (or none this agent may see)."""


class TicketConflict(ValueError):
    """The change does not fit the ticket's state (closing a closed ticket …)."""


@dataclass(frozen=True)
class NewTicket:
    """A ticket to create. `idempotency_key` (scoped by `source`): the same key gives the
    same ticket, however often it is sent."""

    subject: str
    source: str = "api"  # bot | agent | intake | api
    body: str | None = None
    queue: str | None = None
    priority: str | None = None  # what was asked: low | normal | high | urgent
    channel: str | None = None
    call_uuid: str | None = None
    phone: str | None = None  # normalised E.164
    customer_key: str | None = None
    email: str | None = None
    tier: str | None = None
    vip: bool = False
    emotion: str | None = None
    created_by: str | None = None
    assignee: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets. `agent`+`agent_queues`: only those an agent may see (assigned to
    them, or unassigned in one of their queues)."""

    status: str | None = None
    queue: str | None = None
    assignee: str | None = None
    breached: bool | None = None
    customer_key: str | None = None
    agent: str | None = None
    agent_queues: tuple[str, ...] = ()
    limit: int | None = 100
    offset: int = 0


def public_ticket(row: dict[str, Any]) -> dict[str, Any]:
    """A ticket as people see it: the number masked, times as ISO text."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name == "phone":
            value = mask_number(value)
        elif isinstance(value, datetime):
            value = value.isoformat(timespec="seconds")
        out[name] = value
    out["breached"] = bool(row.get("first_response_breached_at")
                           or row.get("resolution_breached_at"))
    return out


class TicketStore:
    """Tickets in the durable store (the `tickets` table)."""

    def __init__(self, store: RecordStore, settings: TicketsSettings | None = None,
                 vip_tiers: Iterable[str] = ("vip", "platinum"),
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.settings = settings or TicketsSettings()
        self.vip_tiers = tuple(t.lower() for t in vip_tiers)
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _deadlines(self, queue: str, created: datetime) -> dict[str, datetime]:
        sla = self.settings.sla_for(queue)
        return {"first_response_due": created + timedelta(seconds=sla.first_response_s),
                "resolution_due": created + timedelta(seconds=sla.resolution_s)}

    # ---- writes ---------------------------------------------------------------------

    def create(self, new: NewTicket) -> tuple[dict[str, Any], bool]:
        """Create the ticket (or find the one its idempotency key made); returns it and
        whether it is new."""
        seed = f"{new.source}:{new.idempotency_key}" if new.idempotency_key else None
        tid = ticket_id(seed)
        now = self._now()
        vip = is_vip(new.tier, new.vip, self.vip_tiers)
        queue = choose_queue(new.queue, vip, tuple(self.settings.queues))
        values = {
            "id": tid, "source": new.source, "channel": new.channel, "queue": queue,
            "status": "open",
            "priority": ticket_priority(tier=new.tier, vip=vip, emotion=new.emotion,
                                        requested=new.priority, vip_tiers=self.vip_tiers),
            "subject": new.subject[:300], "body": new.body, "fields": new.fields or None,
            "call_uuid": new.call_uuid, "customer_key": new.customer_key, "phone": new.phone,
            "email": new.email, "tier": new.tier, "emotion": new.emotion,
            "created_by": new.created_by, "assignee": new.assignee,
            "created_at": now, "updated_at": now, **self._deadlines(queue, now),
        }
        statement = self.store._insert(T).values(values).on_conflict_do_nothing(
            index_elements=["id"]).returning(T.c.id)

        def run() -> tuple[dict[str, Any], bool]:
            with self.store.engine.begin() as connection:
                created = connection.execute(statement).first() is not None
                row = connection.execute(select(T).where(T.c.id == tid)).mappings().one()
            return dict(row), created

        return self.store._guard(run)

    def _change(self, tid: str, values_for: Callable[[dict[str, Any]], dict[str, Any]],
                query: TicketQuery | None = None) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            with self.store.engine.begin() as connection:
                statement = select(T).where(T.c.id == tid)
                if query is not None:
                    statement = _filtered(statement, query)
                row = connection.execute(statement).mappings().first()
                if row is None:
                    raise TicketNotFound(f"no ticket {tid!r}")
                values = values_for(dict(row))
                values["updated_at"] = self._now()
                connection.execute(update(T).where(T.c.id == tid).values(values))
                return dict(connection.execute(select(T).where(T.c.id == tid)).mappings().one())

        return self.store._guard(run)

    def assign(self, tid: str, agent: str | None, scope: TicketQuery | None = None
               ) -> dict[str, Any]:
        """Give the ticket to `agent` (None: back to its queue)."""
        def values(row: dict[str, Any]) -> dict[str, Any]:
            if row["status"] == "closed":
                raise TicketConflict(f"ticket {tid} is closed")
            return {"assignee": agent}

        return self._change(tid, values, scope)

    def respond(self, tid: str, scope: TicketQuery | None = None) -> dict[str, Any]:
        """A person answered the customer: the first response deadline is met (once)."""
        def values(row: dict[str, Any]) -> dict[str, Any]:
            if row["status"] == "closed":
                raise TicketConflict(f"ticket {tid} is closed")
            return {} if row["first_response_at"] else {"first_response_at": self._now()}

        return self._change(tid, values, scope)

    def close(self, tid: str, resolution: str | None = None,
              scope: TicketQuery | None = None) -> dict[str, Any]:
        """Resolve the ticket (closing also counts as the first response)."""
        def values(row: dict[str, Any]) -> dict[str, Any]:
            if row["status"] == "closed":
                raise TicketConflict(f"ticket {tid} is already closed")
            now = self._now()
            return {"status": "closed", "closed_at": now, "resolution": resolution,
                    "first_response_at": row["first_response_at"] or now}

        return self._change(tid, values, scope)

    # ---- reads ----------------------------------------------------------------------

    def get(self, tid: str, scope: TicketQuery | None = None) -> dict[str, Any] | None:
        statement = select(T).where(T.c.id == tid)
        if scope is not None:
            statement = _filtered(statement, scope)
        rows = self.store._guard(lambda: self.store._rows(statement))
        return rows[0] if rows else None

    def list(self, query: TicketQuery = TicketQuery()) -> list[dict[str, Any]]:
        """Tickets, most urgent first, then oldest first."""
        statement = (_filtered(select(T), query)
                     .order_by(T.c.status.desc(), T.c.priority, T.c.created_at, T.c.id)
                     .limit(query.limit).offset(query.offset))
        return self.store._guard(lambda: self.store._rows(statement))

    def counts(self, customer_key: str) -> dict[str, Any]:
        """A customer's tickets: total, open, the newest's time."""
        statement = select(func.count(), func.count().filter(T.c.status == "open"),
                           func.max(T.c.created_at)).where(T.c.customer_key == customer_key)

        def run() -> dict[str, Any]:
            with self.store.engine.connect() as connection:
                total, open_, last = connection.execute(statement).one()
            return {"tickets": int(total or 0), "open_tickets": int(open_ or 0),
                    "last_ticket_at": last}

        return self.store._guard(run)

    # ---- the SLA pass ---------------------------------------------------------------

    def plan(self, keyer: Callable[[str], str | None] | None = None, limit: int = 500) -> int:
        """Give tickets without deadlines theirs (from their queue and creation time),
        and a customer key from their number when `keyer` is given. Returns how many."""
        statement = select(T.c.id, T.c.queue, T.c.created_at, T.c.phone, T.c.customer_key).where(
            or_(T.c.first_response_due.is_(None),
                and_(T.c.customer_key.is_(None), T.c.phone.is_not(None)))).limit(limit)

        def run() -> int:
            changed = 0
            with self.store.engine.begin() as connection:
                for row in connection.execute(statement).mappings().all():
                    values: dict[str, Any] = self._deadlines(row["queue"], row["created_at"])
                    if keyer is not None and row["phone"] and not row["customer_key"]:
                        values["customer_key"] = keyer(row["phone"])
                    connection.execute(update(T).where(T.c.id == row["id"]).values(values))
                    changed += 1
            return changed

        return self.store._guard(run)

    def stamp_breaches(self, now: datetime) -> list[tuple[str, str]]:
        """Stamp every deadline passed and not yet stamped; returns (ticket, kind) of
        those this call stamped (a concurrent pass stamps each at most once overall)."""
        due = {
            "first_response": and_(T.c.first_response_due < now, T.c.first_response_at.is_(None),
                                   T.c.status == "open", T.c.first_response_breached_at.is_(None)),
            "resolution": and_(T.c.resolution_due < now, T.c.status == "open",
                               T.c.resolution_breached_at.is_(None)),
        }

        def run() -> list[tuple[str, str]]:
            stamped: list[tuple[str, str]] = []
            with self.store.engine.begin() as connection:
                for kind, where in due.items():
                    column = T.c[f"{kind}_breached_at"]
                    for (tid,) in connection.execute(select(T.c.id).where(where)).all():
                        result = connection.execute(update(T).where(
                            T.c.id == tid, column.is_(None)).values({column.name: now}))
                        if result.rowcount == 1:
                            stamped.append((tid, kind))
            return stamped

        return self.store._guard(run)

    def unsent_breaches(self, limit: int = 200) -> list[tuple[str, dict[str, Any]]]:
        """(kind, ticket) for every breach stamped but not yet announced."""
        def run() -> list[tuple[str, dict[str, Any]]]:
            out: list[tuple[str, dict[str, Any]]] = []
            with self.store.engine.connect() as connection:
                for kind in BREACH_KINDS:
                    stamped, sent = T.c[f"{kind}_breached_at"], T.c[f"{kind}_breach_sent_at"]
                    rows = connection.execute(select(T).where(
                        stamped.is_not(None), sent.is_(None)).order_by(stamped).limit(limit))
                    out.extend((kind, dict(r)) for r in rows.mappings())
            return out

        return self.store._guard(run)

    def mark_sent(self, tid: str, kind: str) -> None:
        column = T.c[f"{kind}_breach_sent_at"]

        def run() -> None:
            with self.store.engine.begin() as connection:
                connection.execute(update(T).where(T.c.id == tid, column.is_(None))
                                   .values({column.name: self._now()}))

        self.store._guard(run)


def _filtered(statement, query: TicketQuery):
    if query.status:
        statement = statement.where(T.c.status == query.status)
    if query.queue:
        statement = statement.where(T.c.queue == query.queue)
    if query.assignee:
        statement = statement.where(T.c.assignee == query.assignee)
    if query.customer_key:
        statement = statement.where(T.c.customer_key == query.customer_key)
    if query.breached is not None:
        breached = or_(T.c.first_response_breached_at.is_not(None),
                       T.c.resolution_breached_at.is_not(None))
        statement = statement.where(breached if query.breached else ~breached)
    if query.agent:
        mine = T.c.assignee == query.agent
        if query.agent_queues:
            mine = or_(mine, and_(T.c.assignee.is_(None), T.c.queue.in_(query.agent_queues)))
        statement = statement.where(mine)
    return statement


class BreachSink(Protocol):
    """Where breaches are announced (`cluster.routing.feed.RedisFeedPublisher`,
    `WebhookNotifier`): ``publish(event)``."""

    async def publish(self, event: dict[str, Any]) -> None: ...


def breach_event(kind: str, ticket: dict[str, Any]) -> dict[str, Any]:
    """The feed / webhook event of one breach: ids, queue, priority, deadline, assignee —
    no subject, body or number (they may hold personal data)."""
    due = ticket.get(f"{kind}_due")
    stamped = ticket.get(f"{kind}_breached_at")
    return {"type": "ticket_sla_breach", "breach": kind, "breach_id": f"{ticket['id']}:{kind}",
            "ticket_id": ticket["id"], "queue": ticket["queue"], "priority": ticket["priority"],
            "agent_id": ticket.get("assignee"), "call_uuid": ticket.get("call_uuid"),
            "due_at": due.isoformat(timespec="seconds") if due else None,
            "breached_at": stamped.isoformat(timespec="seconds") if stamped else None}


class SlaWatch:
    """One SLA pass every ``tickets.sla_check_interval_s`` (`check_if_due`), run by the
    record writer."""

    def __init__(self, tickets: TicketStore, sinks: Iterable[BreachSink] = (),
                 keyer: Callable[[str], str | None] | None = None):
        self.tickets = tickets
        self.sinks = list(sinks)
        self.keyer = keyer
        self._next = 0.0
        self.announced = 0

    async def check_if_due(self) -> int | None:
        now = self.tickets.clock()
        if now < self._next:
            return None
        self._next = now + self.tickets.settings.sla_check_interval_s
        return await self.check()

    async def check(self) -> int:
        """Plan, stamp, announce; returns the breaches announced by this pass."""
        await asyncio.to_thread(self.tickets.plan, self.keyer)
        stamped = await asyncio.to_thread(self.tickets.stamp_breaches, self.tickets._now())
        if stamped:
            log.info("%d ticket deadline(s) breached", len(stamped))
        sent = 0
        for kind, ticket in await asyncio.to_thread(self.tickets.unsent_breaches):
            event = breach_event(kind, ticket)
            try:
                for sink in self.sinks:
                    await sink.publish(event)
            except Exception as exc:  # announced on a later pass
                log.warning("SLA breach of %s not announced yet: %s", ticket["id"],
                            type(exc).__name__)
                continue
            await asyncio.to_thread(self.tickets.mark_sent, ticket["id"], kind)
            sent += 1
        self.announced += sent
        return sent
