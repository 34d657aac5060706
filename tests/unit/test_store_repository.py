"""The durable store on both backends it supports (a SQLite file and a real PostgreSQL
server): the migrations build the schema the models describe, outbox events from every
producer merge into one call row whatever their order and however often they arrive,
turns keep what the caller said and how long each stage took, the compliance figures
come from the database alone, retention purges, exports mask numbers."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cluster.records.call_state import turn_to_json
from cluster.records.outbox import event_id, outbox_event
from cluster.store import BadEvent, CallQuery, RecordStore, head_revision, make_engine, migrate
from cluster.store.export import CALL_COLUMNS, TURN_COLUMNS, write_csv, write_parquet
from cluster.store.models import STAGE_COLUMNS, Base, Call, CallTurn
from telephony.call_data import STAGES, TurnRecord, TurnTiming
from training.models.outputs import EmotionResult, IntentResult

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 4, 16, 0, tzinfo=timezone.utc)
CALL = "9f0c2a44-1111-4c3e-9a55-000000000001"


def at(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def ev(kind: str, when: float, **fields) -> dict:
    return json.loads(outbox_event(kind, at=when, **fields))


@pytest.fixture
def store(store_url: str):
    opened = RecordStore.open(store_url)
    yield opened
    opened.close()


def call_events(call_uuid: str = CALL) -> list[dict]:
    """One outbound call as its producers report it: dialer, gateway, switch, router."""
    turn = TurnRecord(
        n=1, bot="Your order ships tomorrow.", bot_state="order_status",
        caller="where is my order", intent=IntentResult("order_status", 0.93),
        emotion=EmotionResult("neutral", {"neutral": 0.8, "angry": 0.2}),
        timing=TurnTiming(endpoint_ms=410.0, asr_ms=620.5, nlu_ms=700.0, bot_ms=705.0,
                          first_audio_ms=990.0))
    record = {"campaign_id": "spring", "attempt_id": "L7#1", "lead_id": "L7", "attempt": 1,
              "call_uuid": call_uuid, "started_at": at(0), "ended_at": at(6),
              "result": "connected", "cause": "SUCCESS", "answered": True, "abandoned": False,
              "ring_s": 5.2, "gateway": "carrier-a", "timezone": "America/New_York"}
    window = {"timezone": "America/New_York", "local_time": "2026-03-04T11:00:00-05:00",
              "window_start": "09:00", "window_end": "21:00", "inside": True}
    return [
        ev("dial.attempt", at(6), record=record, window=window),
        ev("call.start", at(6.5), call_uuid=call_uuid, direction="outbound", campaign="spring",
           caller="+12125550100", callee="+14155550123", lead="L7", bot="shop",
           variant="b", started_at=at(6.5)),
        ev("call.turn", at(12), call_uuid=call_uuid, turn=turn_to_json(turn), bot="shop",
           variant="b", disposition=None),
        ev("call.end", at(20), call_uuid=call_uuid, escalation_rule="anger",
           outcome={"reason": "transferred", "escalation": "customer is angry", "turns": 1,
                    "barge_ins": 0, "heard": [], "cut": []}),
        ev("call.handled", at(80), call_uuid=call_uuid, agent_id="alice",
           escalation_status="ended"),
        ev("call.telephony", at(90), call_uuid=call_uuid, direction="outbound",
           caller="+12125550100", callee="+14155550123", campaign="spring", lead="L7",
           bot="shop", created_at=at(0), answered_at=at(5.2), ended_at=at(90),
           hangup_cause="NORMAL_CLEARING", escalation="customer is angry",
           escalation_rule="anger", reached_agent=True, phases=["ringing", "answered"]),
        ev("dial.call_end", at(90), campaign_id="spring", call_uuid=call_uuid,
           attempt_id="L7#1", end={"handle_s": 84.0, "cause": "NORMAL_CLEARING",
                                   "escalated": True, "ended_at": at(90)}),
    ]


def test_the_migrations_build_the_schema_the_models_describe(store):
    with store.connection() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == []
    assert store.migrate() == store.revision() == head_revision()  # again: a no-op
    assert set(STAGES) == set(STAGE_COLUMNS) <= {c.name for c in CallTurn.__table__.columns}


def test_a_call_reads_the_same_whatever_order_its_events_arrive_in(store):
    events = call_events()
    store.apply(events)
    expected = store.get_call(CALL)
    assert expected["direction"] == "outbound" and expected["campaign_id"] == "spring"
    assert expected["started_at"] == T0  # the dial, before the fork
    assert expected["answered_at"] == T0 + timedelta(seconds=5.2)
    assert expected["ended_at"] == T0 + timedelta(seconds=90)  # the hang-up, after the bot
    assert expected["bot_ended_at"] == T0 + timedelta(seconds=20)
    assert (expected["bot"], expected["variant"], expected["agent_id"]) == ("shop", "b", "alice")
    assert expected["escalation_reason"] == "customer is angry"
    assert expected["escalation_rule"] == "anger"
    assert expected["outcome"] == "transferred" and expected["dial_result"] == "connected"
    assert expected["hangup_cause"] == "NORMAL_CLEARING" and expected["abandoned"] is False
    assert expected["attempts"][0]["handle_s"] == 84.0
    assert expected["attempts"][0]["inside_window"] is True

    ignore = {"updated_at", "turns", "attempts"}
    for n in range(8):
        order = list(reversed(events)) if n == 0 else random.Random(n).sample(events, len(events))
        other = f"shuffled-{n}"
        for event in order:  # one batch per event: each lands on what the others left
            store.apply([_retarget(event, other)])
        got = store.get_call(other)
        assert {k: v for k, v in got.items() if k not in ignore | {"call_uuid"}} == \
            {k: v for k, v in expected.items() if k not in ignore | {"call_uuid"}}


def _retarget(event: dict, call_uuid: str) -> dict:
    event = json.loads(json.dumps(event))
    if "call_uuid" in event:
        event["call_uuid"] = call_uuid
    if "record" in event:
        event["record"]["call_uuid"] = call_uuid
        event["record"]["attempt_id"] = f"{call_uuid}#1"
    if "attempt_id" in event:
        event["attempt_id"] = f"{call_uuid}#1"
    return event


def test_replayed_events_change_nothing(store):
    events = call_events()
    store.apply(events)
    first = store.get_call(CALL)
    store.apply(events)  # a writer killed before it acknowledged writes the batch again
    store.apply(list(reversed(events)))
    again = store.get_call(CALL)
    assert again == first
    assert len(again["turns"]) == 1 and len(again["attempts"]) == 1
    assert store.count_calls() == 1


def test_a_turn_keeps_what_was_said_and_each_stage_latency(store):
    store.apply(call_events())
    (turn,) = store.get_call(CALL)["turns"]
    assert turn["turn_index"] == 1 and turn["kind"] == "speech"
    assert turn["caller_text"] == "where is my order"
    assert (turn["intent"], turn["intent_confidence"]) == ("order_status", pytest.approx(0.93))
    assert (turn["emotion"], turn["emotion_score"]) == ("neutral", pytest.approx(0.8))
    assert turn["bot_reply"] == "Your order ships tomorrow."
    assert turn["asr_ms"] == pytest.approx(620.5) and turn["first_audio_ms"] == 990.0
    assert turn["prep_ms"] is None  # not measured stays unknown, not zero


def test_abandonment_over_24_hours_and_30_days_from_the_database_alone(store):
    now = T0
    events = []
    # 40 answered in the last 30 days, 2 of them abandoned today and 1 ten days ago
    for i in range(40):
        days_ago = 0.1 if i < 10 else 10 + i % 15
        ended = (now - timedelta(days=days_ago)).timestamp()
        abandoned = i in (1, 2) or i == 11
        record = {"campaign_id": "spring", "attempt_id": f"L{i}#1", "lead_id": f"L{i}",
                  "attempt": 1, "call_uuid": f"c{i}", "started_at": ended - 20,
                  "ended_at": ended, "result": "abandoned" if abandoned else "connected",
                  "cause": "SUCCESS", "answered": True, "abandoned": abandoned}
        window = {"timezone": "America/New_York", "local_time": "x", "window_start": "09:00",
                  "window_end": "21:00", "inside": True}
        events.append(ev("dial.attempt", ended, record=record, window=window))
    old = {"campaign_id": "spring", "attempt_id": "old#1", "call_uuid": "old",
           "started_at": at(-40 * 86400), "ended_at": at(-40 * 86400), "result": "abandoned",
           "answered": True, "abandoned": True}
    events.append(ev("dial.attempt", at(-40 * 86400), record=old))
    events.append(ev("window.decision", at(-3600), id=event_id(), campaign_id="spring",
                     lead_id="L99", verdict="deferred", next_open_at=at(3600),
                     timezone="America/Los_Angeles", local_time="2026-03-04T07:00:00-08:00",
                     window_start="09:00", window_end="21:00", inside=False))
    events.append(ev("dnc.change", at(-60), id=event_id(), op="add", scope="global",
                     actor="cli:ops", reason="asked by letter", source="cli",
                     phones=["+14155550123", "+14155550124"]))
    store.apply(events)

    report = store.compliance("spring", now)
    day, month = report["abandonment"]
    assert (day["answered"], day["abandoned"]) == (10, 2)
    assert (month["answered"], month["abandoned"]) == (40, 3)
    assert month["rate"] == pytest.approx(3 / 40)
    assert report["dialled_outside_window_30d"] == 0
    assert report["deferred_for_window_30d"] == 1
    assert report["dnc_changes_30d"] == {"add": 2, "remove": 0}

    (change, *_) = store.dnc_changes(phone="+14155550123")
    assert (change["actor"], change["reason"], change["source"]) == ("cli:ops", "asked by letter",
                                                                     "cli")
    assert change["at"] == T0 - timedelta(seconds=60)
    (decision,) = store.window_decisions("spring")
    assert decision["verdict"] == "deferred" and decision["lead_timezone"] == "America/Los_Angeles"


def test_retention_purges_old_calls_and_keeps_the_ledger_longer(store):
    store.apply(call_events())
    store.apply([_retarget(e, "recent") for e in call_events()])
    now = T0 + timedelta(days=400)
    recent = {"call_uuid": "recent2", "started_at": (now - timedelta(days=2)).timestamp()}
    store.apply([ev("call.start", recent["started_at"], **recent)])
    plan = store.purge(now, 365, 1825, dry_run=True)
    assert plan == {"call_turns": 2, "calls": 2, "dial_attempts": 0, "dnc_changes": 0,
                    "window_decisions": 0}
    assert store.count_calls() == 3  # a dry run deletes nothing
    assert store.purge(now, 365, 1825)["calls"] == 2
    assert [c["call_uuid"] for c in store.list_calls()] == ["recent2"]
    assert len(store.attempts("spring")) == 2  # the compliance ledger stays 5 years
    assert store.purge(now + timedelta(days=1500), None, 1825)["dial_attempts"] == 2


def test_listing_filters_and_orders_newest_first(store):
    for i in range(5):
        store.apply([ev("call.start", at(i * 60), call_uuid=f"call-{i}", started_at=at(i * 60),
                        campaign="spring" if i % 2 else "autumn", direction="inbound")])
    assert [c["call_uuid"] for c in store.list_calls()] == [f"call-{i}" for i in (4, 3, 2, 1, 0)]
    spring = store.list_calls(CallQuery(campaign="spring"))
    assert [c["call_uuid"] for c in spring] == ["call-3", "call-1"]
    window = CallQuery(since=T0 + timedelta(seconds=60), until=T0 + timedelta(seconds=180))
    assert [c["call_uuid"] for c in store.list_calls(window)] == ["call-2", "call-1"]
    assert store.count_calls(CallQuery(campaign="autumn")) == 3
    assert len(list(store.iter_calls(CallQuery(), chunk=2))) == 5


def test_exports_mask_numbers_unless_asked(store, tmp_path):
    store.apply(call_events())
    out = io.StringIO()
    assert write_csv(store.iter_calls(), CALL_COLUMNS, out) == 1
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["callee"] == "+14******123" and "5550" not in out.getvalue()
    assert row["started_at"] == T0.isoformat()
    full = io.StringIO()
    write_csv(store.iter_calls(), CALL_COLUMNS, full, mask=False)
    assert "+14155550123" in full.getvalue()

    import pyarrow.parquet as pq

    path = tmp_path / "turns.parquet"
    assert write_parquet(store.iter_turns(), CallTurn.__table__, TURN_COLUMNS, path) == 1
    table = pq.read_table(path)
    assert table.column("caller_text").to_pylist() == ["where is my order"]
    assert str(table.schema.field("at").type) == "timestamp[us, tz=UTC]"
    calls = tmp_path / "calls.parquet"
    write_parquet(store.iter_calls(), Call.__table__, CALL_COLUMNS, calls)
    assert pq.read_table(calls).column("caller").to_pylist() == ["+12******100"]
    empty = tmp_path / "none.parquet"
    assert write_parquet(iter(()), Call.__table__, CALL_COLUMNS, empty) == 0
    assert pq.read_table(empty).num_rows == 0


def test_an_event_that_cannot_become_rows_is_refused_whole(store):
    with pytest.raises(BadEvent, match="no call_uuid"):
        store.apply([ev("call.start", at(0), direction="inbound")])
    with pytest.raises(BadEvent, match="turn"):
        store.apply([ev("call.turn", at(0), call_uuid=CALL, turn={"bot": "hi"})])
    with pytest.raises(BadEvent):
        store.apply(call_events()[:2] + [{"kind": "call.end", "call_uuid": CALL, "at": "soon"}])
    assert store.count_calls() == 0  # the good events of that batch were not half-written


def test_an_older_schema_is_upgraded_in_place(store_url):
    engine = make_engine(store_url)
    assert migrate(engine, "0001") == "0001"
    with engine.begin() as connection:  # a call written before callbacks were recorded
        connection.exec_driver_sql(
            "INSERT INTO calls (call_uuid, direction, abandoned) VALUES ('old', 'inbound', false)")
    store = RecordStore(engine)
    assert store.migrate() == head_revision()
    old = store.get_call("old")
    assert old["direction"] == "inbound" and old["callback_lead_id"] is None
    store.apply([ev("call.callback", at(0), call_uuid="old", campaign_id="callbacks",
                    lead_id="cb-old", due_at=at(300))])
    assert store.get_call("old")["callback_due_at"] == T0 + timedelta(seconds=300)
    store.close()
