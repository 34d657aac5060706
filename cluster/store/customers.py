"""Customer profiles in the durable store (the `customers` table), filed under the keyed
hash of the number (`cluster.records.customers.customer_key`); the number is kept only
masked. History is counted when a profile is read: calls from the `calls` table (the
number as caller or callee — the caller of a read knows the number), tickets by key,
orders from the ``orders`` attribute. `cache_doc` is what the call path reads from Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, or_, select

from cluster.store.models import Call, Customer, Ticket
from cluster.store.repository import RecordStore

__all__ = ["CustomerStore", "cache_doc"]

C = Customer.__table__


def _iso(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value


def cache_doc(profile: Mapping[str, Any], history: Mapping[str, Any]) -> dict[str, Any]:
    """The profile as the Redis cache (and so the bot) holds it: no key, no number."""
    return {"tier": profile.get("tier"), "name": profile.get("name"),
            "language": profile.get("language"),
            "attributes": dict(profile.get("attributes") or {}),
            "history": {k: _iso(v) for k, v in history.items()}}


class CustomerStore:
    def __init__(self, store: RecordStore):
        self.store = store

    def put_many(self, profiles: Mapping[str, Mapping[str, Any]], source: str) -> int:
        """Create or replace profiles: key → {phone_masked, tier, name, language,
        attributes}. One transaction; returns how many."""
        now = datetime.now(timezone.utc)
        rows = [{"key": key, "phone_masked": p.get("phone_masked"), "tier": p.get("tier"),
                 "name": p.get("name"), "language": p.get("language"),
                 "attributes": dict(p.get("attributes") or {}), "source": source,
                 "created_at": now, "updated_at": now} for key, p in profiles.items()]
        if not rows:
            return 0
        insert = self.store._insert(C)
        statement = insert.on_conflict_do_update(index_elements=["key"], set_={
            name: insert.excluded[name] for name in ("phone_masked", "tier", "name",
                                                     "language", "attributes", "source",
                                                     "updated_at")})

        def run() -> int:
            with self.store.engine.begin() as connection:
                for start in range(0, len(rows), 1000):
                    connection.execute(statement, rows[start:start + 1000])
            return len(rows)

        return self.store._guard(run)

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self.store._guard(lambda: self.store._rows(select(C).where(C.c.key == key)))
        return rows[0] if rows else None

    def history(self, key: str, number: str | None,
                profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Calls (with `number`), tickets (by key), orders, and the last contact."""
        calls = select(func.count(), func.max(Call.started_at)).where(
            or_(Call.caller == number, Call.callee == number)) if number else None
        tickets = select(func.count(), func.count().filter(Ticket.status == "open"),
                         func.max(Ticket.created_at)).where(Ticket.customer_key == key)

        def run() -> dict[str, Any]:
            with self.store.engine.connect() as connection:
                n_calls, last_call = connection.execute(calls).one() if calls is not None \
                    else (0, None)
                n_tickets, n_open, last_ticket = connection.execute(tickets).one()
            last = max((t for t in (last_call, last_ticket) if t is not None), default=None)
            return {"calls": int(n_calls or 0), "last_call_at": last_call,
                    "tickets": int(n_tickets or 0), "open_tickets": int(n_open or 0),
                    "last_contact": last}

        out = self.store._guard(run)
        orders = (profile or {}).get("attributes", {}) or {}
        try:
            out["orders"] = int(orders.get("orders")) if "orders" in orders else None
        except (TypeError, ValueError):
            out["orders"] = None
        return out
