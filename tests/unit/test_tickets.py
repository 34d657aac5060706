"""Tickets in the durable store, on SQLite and PostgreSQL: a bot's ticket event makes one
ticket however often it is replayed, priority follows the customer's tier and emotion,
deadlines come from the queue, and each SLA breach is stamped and announced once (again
on the next pass when a sink failed); agents see their own tickets and their queues."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cluster.records.outbox import outbox_event
from cluster.store import RecordStore
from cluster.store.tickets import NewTicket, SlaWatch, TicketConflict, TicketQuery, TicketStore
from cluster.store.triage import choose_queue, ticket_priority
from configs.tickets import QueueSla, TicketsSettings

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 4, 16, 0, tzinfo=timezone.utc)
CALLER = "+14155550123"


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


class Sink:
    """Keeps what it is given (or fails, while `fail`)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = False

    async def publish(self, event: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("feed down")
        self.events.append(event)


@pytest.fixture
def store(store_url: str):
    opened = RecordStore.open(store_url)
    yield opened
    opened.close()


SETTINGS = TicketsSettings(queues={"default": QueueSla(first_response_s=3600, resolution_s=7200),
                                   "vip": QueueSla(first_response_s=600, resolution_s=3600)})


def bot_ticket(tid: str = "tk-aaaa", **fields: Any) -> dict[str, Any]:
    doc = dict(id=tid, call_uuid="call-1", queue="refunds", subject="Refund A1001",
               priority="normal", fields={"order_id": "A1001"}, tier=None, vip=False,
               anger=0.0, phone=CALLER, bot="shop")
    doc.update(fields)
    return json.loads(outbox_event("ticket.create", at=T0.timestamp(), **doc))


def test_priority_follows_tier_emotion_and_what_was_asked():
    assert ticket_priority() == 3
    assert ticket_priority(requested="low") == 4
    assert ticket_priority(tier="platinum") == 1 and ticket_priority(vip=True) == 1
    assert ticket_priority(tier="gold") == 2 and ticket_priority(anger=0.7) == 2
    assert ticket_priority(emotion="angry", tier="gold") == 1
    assert ticket_priority(requested="urgent") == 1
    assert choose_queue(None, True) == "vip" and choose_queue("billing", True) == "billing"
    assert choose_queue("default", True, ("default",)) == "default"


async def test_a_bot_ticket_is_created_once_and_gets_its_queues_deadlines(store):
    event = bot_ticket(tier="gold", anger=0.8)
    store.apply([event])
    store.apply([event])  # replayed by a restarted writer
    clock = Clock()
    tickets = TicketStore(store, SETTINGS, clock=clock)
    (row,) = tickets.list()
    assert row["source"] == "bot" and row["priority"] == 1 and row["queue"] == "refunds"
    assert row["first_response_due"] is None  # the call path has no settings: the pass adds them
    watch = SlaWatch(tickets, [], keyer=lambda number: "key-of-" + number[-3:])
    assert await watch.check() == 0
    row = tickets.get("tk-aaaa")
    assert row["first_response_due"] == T0 + timedelta(hours=1)
    assert row["resolution_due"] == T0 + timedelta(hours=2)
    assert row["customer_key"] == "key-of-123"


async def test_each_breach_is_stamped_and_announced_once(store):
    clock = Clock()
    tickets = TicketStore(store, SETTINGS, clock=clock)
    vip, _ = tickets.create(NewTicket(subject="Card blocked", tier="vip", source="agent"))
    plain, _ = tickets.create(NewTicket(subject="Address change", assignee="alice"))
    assert vip["queue"] == "vip" and vip["priority"] == 1 and plain["priority"] == 3
    feed, hooks = Sink(), Sink()
    watch = SlaWatch(tickets, [feed, hooks])
    clock.now += 601  # past the vip queue's first response (600 s)
    assert await watch.check() == 1
    (event,) = feed.events
    assert event["type"] == "ticket_sla_breach" and event["breach"] == "first_response"
    assert event["ticket_id"] == vip["id"] and event["breach_id"] == f"{vip['id']}:first_response"
    assert hooks.events == feed.events
    assert await watch.check() == 0  # stamped and sent: never again
    tickets.respond(plain["id"])  # answered in time: no first-response breach
    feed.fail = True
    clock.now += 7200  # both resolution deadlines pass
    assert await watch.check() == 0  # stamped, but the feed is down
    feed.fail = False
    assert await watch.check() == 2  # announced on the next pass
    kinds = sorted((e["ticket_id"] == vip["id"], e["breach"]) for e in feed.events[1:])
    assert kinds == [(False, "resolution"), (True, "resolution")]
    assert [r["id"] for r in tickets.list(TicketQuery(breached=True))] == [vip["id"], plain["id"]]
    assert "Card blocked" not in json.dumps(feed.events)  # no subject, no number


def test_idempotency_keys_assign_respond_close(store):
    tickets = TicketStore(store, SETTINGS, clock=Clock())
    first, created = tickets.create(NewTicket(subject="Form", source="intake", idempotency_key="f-1"))
    again, created_again = tickets.create(NewTicket(subject="Form", source="intake",
                                                    idempotency_key="f-1"))
    assert created and not created_again and again["id"] == first["id"]
    assert tickets.assign(first["id"], "bob")["assignee"] == "bob"
    closed = tickets.close(first["id"], "refunded")
    assert closed["status"] == "closed" and closed["first_response_at"] is not None
    with pytest.raises(TicketConflict):
        tickets.close(first["id"])


def test_an_agent_sees_their_tickets_and_their_queues_unassigned_ones(store):
    tickets = TicketStore(store, SETTINGS, clock=Clock())
    mine, _ = tickets.create(NewTicket(subject="a", queue="sales", assignee="alice"))
    queue, _ = tickets.create(NewTicket(subject="b", queue="billing"))
    tickets.create(NewTicket(subject="c", queue="billing", assignee="bob"))
    tickets.create(NewTicket(subject="d", queue="sales"))
    scope = TicketQuery(agent="alice", agent_queues=("billing",))
    assert {r["id"] for r in tickets.list(scope)} == {mine["id"], queue["id"]}
    assert tickets.get(queue["id"], scope) is not None
