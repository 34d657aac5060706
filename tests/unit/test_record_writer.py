"""From the call path to SQL through a real Redis outbox: what the gateway's recorder, the
ESL controller's sink, the dialer's compliance scripts and a do-not-call request leave in
the outbox becomes rows; a writer killed mid-batch loses and duplicates nothing; while
the database is down every event waits in the outbox; a bad event is parked, not fatal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

import pytest
import redis.asyncio as aioredis

from bots.script.state import DialogState
from cluster.actors.esl import RedisCallRecordSink
from cluster.actors.records import RecordWriterService
from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.compliance import AttemptRecord, Outcome
from cluster.dialer.store import DialerStore
from cluster.records.call_state import RedisCallRecorder
from cluster.records.outbox import DEAD_LETTERS, OUTBOX, Outbox, OutboxPublisher, outbox_event
from cluster.runtime.redis_server import EmbeddedRedis
from cluster.store import RecordStore, RecordWriter, StoreUnavailable
from configs.records import RecordsSettings
from configs.settings import load_settings, settings_doc
from telephony.call_data import CallOutcome, TurnRecord, TurnTiming
from telephony.call_fsm import CallPhase, CallRecord
from telephony.media_fork import ForkMetadata
from tests.postgres import PostgresMissing, PostgresServer
from tests.postgres import required as postgres_required
from training.models.outputs import IntentResult

pytestmark = pytest.mark.unit

WEDNESDAY = datetime(2026, 3, 4, 16, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def store(store_url: str) -> Iterator[RecordStore]:
    opened = RecordStore.open(store_url)
    yield opened
    opened.close()


def writer_for(store: RecordStore, client: aioredis.Redis, batch: int = 500) -> RecordWriter:
    return RecordWriter(store, Outbox(client), RecordsSettings(batch_size=batch))


async def drain(writer: RecordWriter) -> int:
    total = 0
    while n := await writer.step(block_ms=None):
        total += n
    return total


async def place_calls(url: str, calls: int, turns: int, prefix: str = "call") -> None:
    """`calls` bot calls of `turns` turns each, recorded as the gateway records them."""
    recorder = RedisCallRecorder(url, ttl_s=600)
    try:
        async def one(i: int) -> None:
            call_uuid = f"{prefix}-{i:03d}"
            meta = ForkMetadata(call_uuid=call_uuid, sample_rate=8000, caller=f"+1415555{i:04d}",
                                callee="+12125550100", direction="inbound", campaign="support",
                                extra={"bot": "shop"})
            await recorder.call_started(meta)
            state = DialogState(script="shop", variant="a", call={"id": call_uuid})
            for n in range(1, turns + 1):
                state.seq = n
                state.turns = n
                await recorder.turn(call_uuid, TurnRecord(
                    n=n, bot=f"reply {n}", bot_state="menu", caller=f"caller says {n}",
                    intent=IntentResult("order_status", 0.9),
                    timing=TurnTiming(asr_ms=300.0 + n, first_audio_ms=800.0)), state)
            await recorder.call_ended(call_uuid, CallOutcome(reason="caller hung up", turns=turns))

        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await recorder.close()


async def test_every_producer_reaches_sql_through_the_outbox(redis_server, redis_client, store):
    await place_calls(redis_server.url, calls=2, turns=3)
    # the switch's view of call-000: answered, an agent took it, hung up
    sink = RedisCallRecordSink(redis_server.url)
    now = time.time()  # the bot's part ended just now; the caller stays with the agent
    record = CallRecord("call-000", direction="inbound", caller_id="+14155550000",
                        destination="+12125550100", created_at=now - 60)
    record.move(CallPhase.ANSWERED, now - 59)
    record.move(CallPhase.BOT, now - 58.5)
    await sink.save(record)  # not ended: no outbox event yet
    record.move(CallPhase.AGENT, now)
    record.hangup_cause = "NORMAL_CLEARING"
    record.move(CallPhase.ENDED, now + 95)
    await sink.save(record)
    await sink.redis.aclose()
    await OutboxPublisher(redis_client).publish(outbox_event(
        "call.handled", call_uuid="call-000", agent_id="alice", escalation_status="ended"))
    # the dialer: an abandoned attempt, a deferral, and a caller's do-not-call request
    dialer = DialerStore(redis_server.url)
    campaign = CampaignConfig(id="spring", bot_script="shop", caller_id_number="+12125550100",
                              gateways=["carrier-a"])
    attempt = AttemptRecord(
        campaign_id="spring", attempt_id="L1#1", lead_id="L1", attempt=1, call_uuid="call-900",
        started_at=WEDNESDAY, ended_at=WEDNESDAY + 8, result=Outcome.ABANDONED, cause="SUCCESS",
        answered=True, abandoned=True, timezone="America/New_York")
    assert await dialer.record_result(attempt, "done", None, None, campaign.compliance)
    assert not await dialer.record_result(attempt, "done", None, None, campaign.compliance)
    await dialer.redis.zadd("cf:dialer:c:spring:ready", {"L2": 1})
    assert await dialer.defer("spring", "L2", WEDNESDAY + 3600,
                              {"timezone": "America/Los_Angeles", "inside": False})
    assert await dialer.add_dnc(["+14155550000", "+14155550001"], actor="caller",
                                reason="asked during the call", source="bot",
                                call_uuid="call-000") == 2
    assert await dialer.add_dnc(["+14155550000"], actor="cli:ops") == 0  # nothing new: no event
    await dialer.close()

    # 2 calls x (start, 3 turns, end), the hang-up, the agent, the attempt, the deferral, the
    # do-not-call change (the repeated attempt and the repeated number add nothing)
    assert await drain(writer_for(store, redis_client, batch=7)) == 10 + 5
    assert await Outbox(redis_client).backlog() == {"waiting": 0, "pending": 0, "dead": 0}

    call = store.get_call("call-000")
    assert [t["caller_text"] for t in call["turns"]] == [f"caller says {n}" for n in (1, 2, 3)]
    assert call["turns"][0]["asr_ms"] == 301.0
    assert (call["bot"], call["variant"], call["agent_id"]) == ("shop", "a", "alice")
    assert call["started_at"].timestamp() == pytest.approx(now - 60)
    assert call["answered_at"].timestamp() == pytest.approx(now - 59)
    assert call["ended_at"].timestamp() == pytest.approx(now + 95)
    assert call["hangup_cause"] == "NORMAL_CLEARING" and call["outcome"] == "caller hung up"
    abandoned = store.get_call("call-900")
    assert abandoned["abandoned"] is True and abandoned["dial_result"] == "abandoned"
    (row,) = store.attempts("spring")
    assert row["inside_window"] is True and row["local_time"] == "2026-03-04T11:00:00-05:00"
    changes = store.dnc_changes()
    assert sorted(c["phone"] for c in changes) == ["+14155550000", "+14155550001"]
    assert {(c["actor"], c["source"], c["call_uuid"]) for c in changes} == {
        ("caller", "bot", "call-000")}
    (deferral,) = store.window_decisions("spring")
    assert deferral["lead_timezone"] == "America/Los_Angeles"


class Killed(Exception):
    """The writer process died here."""


async def test_a_writer_killed_mid_batch_loses_and_duplicates_nothing(
        redis_server, redis_client, store, monkeypatch):
    await place_calls(redis_server.url, calls=32, turns=5)  # 32 * 7 = 224 events
    first = writer_for(store, redis_client, batch=50)
    assert await first.step() == 50

    # killed after its transaction committed, before it acknowledged: the batch is in SQL
    # and still pending in Redis
    async def die(ids):
        raise Killed

    monkeypatch.setattr(first.outbox, "ack", die)
    with pytest.raises(Killed):
        await first.step()
    # and one killed right after reading (nothing written, nothing acknowledged)
    second = writer_for(store, redis_client, batch=50)
    with monkeypatch.context() as patch:
        patch.setattr(second.store, "apply", lambda events: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            await second.step()
    assert (await Outbox(redis_client).backlog())["pending"] == 50

    restarted = writer_for(store, redis_client, batch=50)
    assert await drain(restarted) == 224 - 50
    assert await Outbox(redis_client).backlog() == {"waiting": 0, "pending": 0, "dead": 0}
    assert store.count_calls() == 32
    with store.connection() as connection:
        turns = connection.exec_driver_sql("SELECT count(*), count(DISTINCT call_uuid || ':' || "
                                           "turn_index) FROM call_turns").one()
    assert tuple(turns) == (32 * 5, 32 * 5)
    assert all(c["turn_count"] == 5 for c in store.list_calls())


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    try:
        server = PostgresServer().start()
    except PostgresMissing as exc:
        if postgres_required():
            pytest.fail(f"{exc} (CALLFLEET_REQUIRE_POSTGRES=1)")
        pytest.skip(str(exc))
    yield server
    server.stop()


async def test_while_the_database_is_down_events_wait_in_the_outbox(
        redis_server, redis_client, own_postgres):
    store = RecordStore.open(own_postgres.new_database())
    try:
        await place_calls(redis_server.url, calls=4, turns=2)  # 16 events
        writer = writer_for(store, redis_client, batch=10)
        assert await writer.step() == 10
        own_postgres.pause()
        with pytest.raises(StoreUnavailable):
            await writer.step()
        await place_calls(redis_server.url, calls=1, turns=1, prefix="later")  # calls go on
        assert await Outbox(redis_client).backlog() == {"waiting": 9, "pending": 6, "dead": 0}

        stop = asyncio.Event()
        writer.settings = RecordsSettings(batch_size=10, block_ms=50, retry_max_s=0.2)
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.6)  # the loop backs off while the server is down
        assert writer.stats.failures >= 2 and "StoreUnavailable" in writer.stats.last_error
        await asyncio.to_thread(own_postgres.resume)
        for _ in range(100):
            if (await Outbox(redis_client).backlog())["waiting"] == 0:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 5)
        assert await Outbox(redis_client).backlog() == {"waiting": 0, "pending": 0, "dead": 0}
        assert store.count_calls() == 5
    finally:
        store.close()


async def test_an_unreadable_event_is_parked_and_the_rest_written(redis_client, store):
    publisher = OutboxPublisher(redis_client)
    await publisher.publish(outbox_event("call.start", call_uuid="good-1", started_at=WEDNESDAY))
    await redis_client.xadd(OUTBOX, {"e": "{not json"})
    await publisher.publish(outbox_event("call.turn", call_uuid="good-1", turn={"bot": "no n"}))
    await publisher.publish(outbox_event("call.start", call_uuid="good-2", started_at=WEDNESDAY))
    writer = writer_for(store, redis_client)
    assert await drain(writer) == 2
    assert sorted(c["call_uuid"] for c in store.list_calls()) == ["good-1", "good-2"]
    dead = await redis_client.xrange(DEAD_LETTERS)
    reasons = sorted(fields[b"error"].decode() for _, fields in dead)
    assert reasons[0].startswith("BadEvent: call.turn") and reasons[1] == "not JSON"
    assert await Outbox(redis_client).backlog() == {"waiting": 0, "pending": 0, "dead": 2}


async def test_the_writer_loop_purges_on_its_schedule(redis_client, store):
    old = WEDNESDAY - 400 * 86400
    await OutboxPublisher(redis_client).publish(
        outbox_event("call.start", at=old, call_uuid="old", started_at=old))
    writer = RecordWriter(store, Outbox(redis_client),
                          RecordsSettings(block_ms=20, retention_days=365), clock=lambda: WEDNESDAY)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    for _ in range(50):
        if writer.stats.written:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert writer.stats.written == 1 and writer.stats.last_purge["calls"] == 0  # purged first
    assert await writer.purge_if_due() is None  # not due again for an hour
    writer._next_purge = 0
    assert (await writer.purge_if_due())["calls"] == 1


async def test_the_actor_class_opens_the_store_and_drains_until_shut_down(
        redis_server, redis_client, tmp_path):
    settings = load_settings(state_dir=str(tmp_path), redis_url=redis_server.url,
                             records={"block_ms": 50, "linger_ms": 0})
    await place_calls(redis_server.url, calls=2, turns=1)
    service = RecordWriterService(settings_doc(settings))
    for _ in range(100):
        status = await service.status()
        if status["written"] == 6:
            break
        await asyncio.sleep(0.05)
    assert status["running"] and status["backlog"] == {"waiting": 0, "pending": 0, "dead": 0}
    assert status["store"].endswith("callfleet.db") and status["written"] == 6
    await service.check_health()
    await service.shutdown()
    store = RecordStore.open(settings.store_url)
    assert store.count_calls() == 2
    store.close()
