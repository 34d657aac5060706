"""`RecordStore`: the one way into the durable store — idempotent writes of outbox
events, the reads `callfleet records` and the API show, the compliance figures, and the
retention purge.

Synchronous SQLAlchemy Core on a pooled engine: the writer and the API call it through
`asyncio.to_thread`, never on an event loop. Every database failure surfaces as
`StoreUnavailable` (connection lost, server down, database locked: try again later) or
as SQLAlchemy's own error for a statement the database refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from cluster.store.engine import make_engine, migrate, redact_url, schema_revision
from cluster.store.ingest import RowWrite, rows_for
from cluster.store.models import Call, CallTurn, DialAttempt, DncChange, WindowDecision

__all__ = ["CallQuery", "ComplianceWindow", "RecordStore", "StoreUnavailable"]

log = logging.getLogger("callfleet.store")

DAY = timedelta(days=1)


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or is busy; the same call may succeed later."""


@dataclass(frozen=True)
class CallQuery:
    """Which calls: by campaign, agent, direction, and start time in [since, until)."""

    campaign: str | None = None
    agent: str | None = None
    direction: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 100
    offset: int = 0


@dataclass(frozen=True)
class ComplianceWindow:
    """Abandonment over one period: live-answered calls, abandoned ones, their ratio."""

    period: str
    since: datetime
    answered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "since": self.since.isoformat(timespec="seconds"),
                "answered": self.answered, "abandoned": self.abandoned,
                "rate": round(self.rate, 4)}


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _merged(writes: Iterable[RowWrite]) -> list[RowWrite]:
    """The writes of a batch with one write per row: writes to the same row are combined
    here by the same rules the database applies (`cluster.store.ingest`), so a batch
    touches each row once, in one statement per shape."""
    combined: dict[tuple[str, tuple], RowWrite] = {}
    for write in writes:
        keys = tuple(write.values[c.name] for c in write.table.primary_key.columns)
        slot = (write.table.name, keys)
        before = combined.get(slot)
        if before is None:
            combined[slot] = RowWrite(write.table, dict(write.values), dict(write.merge))
            continue
        for name, value in write.values.items():
            how = before.merge.get(name) or write.merge.get(name)
            if name not in before.values or before.values[name] is None:
                before.values[name] = value
                if name in write.merge:
                    before.merge[name] = write.merge[name]
            elif value is None or how == "keep":
                continue
            elif how == "first":
                before.values[name] = min(before.values[name], value)
            elif how in ("last", "most"):
                before.values[name] = max(before.values[name], value)
            else:
                before.values[name] = value
    return list(combined.values())


def _grouped(writes: list[RowWrite]) -> dict[tuple, list[dict[str, Any]]]:
    """Writes of the same table, columns and merge rules, for one executemany each."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for write in writes:
        shape = (write.table, tuple(sorted(write.values)), tuple(sorted(write.merge.items())))
        groups.setdefault(shape, []).append(write.values)
    return groups


class RecordStore:
    """Calls, turns and the compliance ledger in SQL (see `cluster.store.models`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}: "
                             "CallFleet's store runs on SQLite or PostgreSQL")

    @classmethod
    def open(cls, url: str, *, auto_migrate: bool = True) -> RecordStore:
        """The store at `url`, its schema upgraded first when `auto_migrate`."""
        store = cls(make_engine(url))
        if auto_migrate:
            store.migrate()
        return store

    @property
    def url(self) -> str:
        """The database's URL without its password."""
        return redact_url(self.engine.url)

    def migrate(self) -> str | None:
        """Upgrade the schema to the newest migration; returns the revision."""
        return self._guard(lambda: migrate(self.engine))

    def revision(self) -> str | None:
        return self._guard(lambda: schema_revision(self.engine))

    def close(self) -> None:
        self.engine.dispose()

    def _guard(self, fn):
        try:
            return fn()
        except DBAPIError as exc:
            text = str(exc.orig).lower()
            if "no such table" in text or ("relation" in text and "does not exist" in text):
                raise StoreUnavailable(
                    f"database {self.url} has no CallFleet schema yet: run `callfleet records "
                    "migrate` (or set records.auto_migrate)") from exc
            if _retryable(exc):
                raise StoreUnavailable(f"database {self.url} unavailable: "
                                       f"{type(exc.orig).__name__}") from exc
            raise

    # ---- writes ---------------------------------------------------------------------

    def apply(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Write `events` in one transaction (all or none); returns the rows written.
        Raises `cluster.store.ingest.BadEvent` for an event that cannot become rows."""
        groups = _grouped(_merged(w for event in events for w in rows_for(event)))

        def run() -> int:
            rows = 0
            with self.engine.begin() as connection:
                for (table, _columns, merge), values in groups.items():
                    connection.execute(self._upsert(table, dict(merge)), values)
                    rows += len(values)
            return rows

        return self._guard(run)

    def _upsert(self, table, merge: dict[str, str]):
        """INSERT ... ON CONFLICT (primary key) DO UPDATE with each column's merge rule,
        executed for many rows at once (executemany)."""
        keys = [c.name for c in table.primary_key.columns]
        statement = self._insert(table)
        updates = {}
        for name, how in merge.items():
            current, new = table.c[name], statement.excluded[name]
            if how == "set":
                updates[name] = new
            elif how == "first":
                updates[name] = case((current.is_(None), new), (new < current, new),
                                     else_=current)
            elif how in ("last", "most"):
                updates[name] = case((current.is_(None), new), (new > current, new),
                                     else_=current)
        if not updates:
            return statement.on_conflict_do_nothing(index_elements=keys)
        return statement.on_conflict_do_update(index_elements=keys, set_=updates)

    # ---- calls ----------------------------------------------------------------------

    def list_calls(self, query: CallQuery = CallQuery()) -> list[dict[str, Any]]:
        """Calls, newest first."""
        statement = self._calls(query).limit(query.limit).offset(query.offset)
        return self._guard(lambda: self._rows(statement))

    def iter_calls(self, query: CallQuery = CallQuery(), chunk: int = 5000
                   ) -> Iterator[dict[str, Any]]:
        """Every call `query` selects (its limit ignored), newest first, read in chunks."""
        offset = query.offset
        while True:
            rows = self._guard(lambda o=offset: self._rows(
                self._calls(query).limit(chunk).offset(o)))
            yield from rows
            if len(rows) < chunk:
                return
            offset += chunk

    def count_calls(self, query: CallQuery = CallQuery()) -> int:
        statement = select(func.count()).select_from(
            self._calls(query).order_by(None).subquery())
        return self._guard(lambda: self._scalar(statement))

    def get_call(self, call_uuid: str) -> dict[str, Any] | None:
        """The call with its ``turns`` (in order), its dial ``attempts`` and, when it was
        to be called back, the ``callback_attempts``; None when the store has no such call."""

        def run() -> dict[str, Any] | None:
            with self.engine.connect() as connection:
                row = connection.execute(
                    select(Call.__table__).where(Call.call_uuid == call_uuid)).mappings().first()
                if row is None:
                    return None
                doc = dict(row)
                doc["turns"] = [dict(r) for r in connection.execute(
                    select(CallTurn.__table__).where(CallTurn.call_uuid == call_uuid)
                    .order_by(CallTurn.turn_index)).mappings()]
                doc["attempts"] = [dict(r) for r in connection.execute(
                    select(DialAttempt.__table__).where(DialAttempt.call_uuid == call_uuid)
                    .order_by(DialAttempt.started_at)).mappings()]
                doc["callback_attempts"] = [dict(r) for r in connection.execute(
                    select(DialAttempt.__table__).where(  # cb-<call uuid>: unique
                        DialAttempt.lead_id == doc["callback_lead_id"])
                    .order_by(DialAttempt.started_at)).mappings()] if doc[
                        "callback_lead_id"] else []
                return doc

        return self._guard(run)

    def iter_turns(self, query: CallQuery = CallQuery(), chunk: int = 5000
                   ) -> Iterator[dict[str, Any]]:
        """The turns of the calls `query` selects (its limit ignored), by call then turn."""
        calls = self._calls(query).order_by(None).with_only_columns(Call.call_uuid)
        statement = (select(CallTurn.__table__).where(CallTurn.call_uuid.in_(calls.scalar_subquery()))
                     .order_by(CallTurn.call_uuid, CallTurn.turn_index))
        offset = 0
        while True:
            rows = self._guard(lambda o=offset: self._rows(statement.limit(chunk).offset(o)))
            yield from rows
            if len(rows) < chunk:
                return
            offset += chunk

    @staticmethod
    def _calls(query: CallQuery) -> Select:
        statement = select(Call.__table__)
        if query.campaign:
            statement = statement.where(Call.campaign_id == query.campaign)
        if query.agent:
            statement = statement.where(Call.agent_id == query.agent)
        if query.direction:
            statement = statement.where(Call.direction == query.direction)
        if query.since is not None:
            statement = statement.where(Call.started_at >= query.since)
        if query.until is not None:
            statement = statement.where(Call.started_at < query.until)
        return statement.order_by(Call.started_at.desc().nulls_last(), Call.call_uuid)

    # ---- the compliance ledger --------------------------------------------------------

    def abandonment(self, campaign_id: str, now: datetime, period: timedelta,
                    name: str) -> ComplianceWindow:
        """Live-answered and abandoned attempts of a campaign whose outcome was known in
        the `period` before `now`."""
        since = now - period
        statement = select(
            func.count().filter(DialAttempt.answered.is_(True)),
            func.count().filter(DialAttempt.abandoned.is_(True)),
        ).where(DialAttempt.campaign_id == campaign_id, DialAttempt.ended_at >= since,
                DialAttempt.ended_at < now)

        def run() -> ComplianceWindow:
            with self.engine.connect() as connection:
                answered, abandoned = connection.execute(statement).one()
            return ComplianceWindow(name, since, int(answered or 0), int(abandoned or 0))

        return self._guard(run)

    def compliance(self, campaign_id: str, now: datetime | None = None) -> dict[str, Any]:
        """What a regulator asks of one campaign, from the database alone: abandonment
        over the last 24 hours and the rolling 30 days, every dial's place in the lead's
        calling window (dials outside it: should be none), deferrals, and do-not-call
        changes over the 30 days."""
        now = now or datetime.now(timezone.utc)
        month = now - 30 * DAY
        windows = [self.abandonment(campaign_id, now, DAY, "24h").to_dict(),
                   self.abandonment(campaign_id, now, 30 * DAY, "30d").to_dict()]
        attempts = select(
            func.count(),
            func.count().filter(DialAttempt.inside_window.is_(False)),
            func.count().filter(DialAttempt.inside_window.is_(None)),
        ).where(DialAttempt.campaign_id == campaign_id, DialAttempt.ended_at >= month)
        deferred = select(func.count()).where(WindowDecision.campaign_id == campaign_id,
                                               WindowDecision.at >= month)
        dnc = (select(DncChange.op, func.count()).where(
            or_(DncChange.scope == campaign_id, DncChange.scope == "global"),
            DncChange.at >= month).group_by(DncChange.op))

        def run() -> dict[str, Any]:
            with self.engine.connect() as connection:
                total, outside, unknown = connection.execute(attempts).one()
                deferrals = connection.execute(deferred).scalar_one()
                changes = dict(connection.execute(dnc).all())
            return {
                "campaign": campaign_id, "at": now.isoformat(timespec="seconds"),
                "abandonment": windows,
                "attempts_30d": int(total or 0),
                "dialled_outside_window_30d": int(outside or 0),
                "window_not_recorded_30d": int(unknown or 0),
                "deferred_for_window_30d": int(deferrals or 0),
                "dnc_changes_30d": {"add": int(changes.get("add", 0)),
                                    "remove": int(changes.get("remove", 0))},
            }

        return self._guard(run)

    def attempts(self, campaign_id: str, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        statement = select(DialAttempt.__table__).where(DialAttempt.campaign_id == campaign_id)
        if since is not None:
            statement = statement.where(DialAttempt.ended_at >= since)
        if until is not None:
            statement = statement.where(DialAttempt.ended_at < until)
        statement = statement.order_by(DialAttempt.ended_at, DialAttempt.attempt_id).limit(limit)
        return self._guard(lambda: self._rows(statement))

    def dnc_changes(self, phone: str | None = None, scope: str | None = None,
                    since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Do-not-call changes, newest first: who, when, why."""
        statement = select(DncChange.__table__)
        if phone:
            statement = statement.where(DncChange.phone == phone)
        if scope:
            statement = statement.where(DncChange.scope == scope)
        if since is not None:
            statement = statement.where(DncChange.at >= since)
        statement = statement.order_by(DncChange.at.desc(), DncChange.id).limit(limit)
        return self._guard(lambda: self._rows(statement))

    def window_decisions(self, campaign_id: str, since: datetime | None = None,
                         limit: int = 1000) -> list[dict[str, Any]]:
        statement = select(WindowDecision.__table__).where(
            WindowDecision.campaign_id == campaign_id)
        if since is not None:
            statement = statement.where(WindowDecision.at >= since)
        statement = statement.order_by(WindowDecision.at.desc()).limit(limit)
        return self._guard(lambda: self._rows(statement))

    # ---- retention ------------------------------------------------------------------

    def purge(self, now: datetime, retention_days: int | None,
              compliance_retention_days: int | None, dry_run: bool = False) -> dict[str, int]:
        """Delete calls (and their turns) that started more than `retention_days` ago,
        and compliance rows older than `compliance_retention_days`; None keeps them.
        Returns the rows deleted (or that would be, with `dry_run`), per table."""
        plans: list[tuple[str, Any]] = []
        if retention_days is not None:
            cutoff = now - retention_days * DAY
            old = or_(Call.started_at < cutoff,
                      and_(Call.started_at.is_(None), Call.updated_at < cutoff))
            old_calls = select(Call.call_uuid).where(old).scalar_subquery()
            plans.append(("call_turns", CallTurn.__table__, or_(
                CallTurn.call_uuid.in_(old_calls), CallTurn.at < cutoff)))
            plans.append(("calls", Call.__table__, old))
        if compliance_retention_days is not None:
            cutoff = now - compliance_retention_days * DAY
            plans.append(("dial_attempts", DialAttempt.__table__, DialAttempt.ended_at < cutoff))
            plans.append(("dnc_changes", DncChange.__table__, DncChange.at < cutoff))
            plans.append(("window_decisions", WindowDecision.__table__,
                          WindowDecision.at < cutoff))

        def run() -> dict[str, int]:
            counts: dict[str, int] = {}
            with self.engine.begin() as connection:
                for name, table, where in plans:
                    if dry_run:
                        counts[name] = int(connection.execute(
                            select(func.count()).select_from(table).where(where)).scalar_one())
                    else:
                        counts[name] = int(connection.execute(delete(table).where(where)).rowcount)
            return counts

        return self._guard(run)

    # ---- helpers --------------------------------------------------------------------

    def _rows(self, statement) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(statement).mappings()]

    def _scalar(self, statement) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(statement).scalar_one()

    def connection(self) -> Connection:
        """A connection for ad-hoc reads (tests, audits)."""
        return self.engine.connect()
