"""Start, inspect and stop a CallFleet cluster on this machine: a local Ray head bound to
loopback (or an existing cluster), the embedded Redis, and the Serve app. `up` returns
once everything answers; `down` stops exactly what `up` started."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from cluster.actors.esl import actor_name
from cluster.actors.floor import start_floor
from cluster.actors.names import RECORD_WRITER_NAME, ROUTER_NAME
from cluster.actors.switch import SIM_NAME, start_simulator
from cluster.runtime.fork_secret import with_customer_secret, with_fork_secret
from cluster.runtime.model_setup import ensure_models
from cluster.runtime.redis_server import (
    EmbeddedRedis,
    RedisSafetyError,
    RedisStartError,
    check_persistence,
    redact_url,
)
from cluster.runtime.serve_deploy import ServeDeployError, apply_config, build_config
from configs.settings import Settings

log = logging.getLogger("callfleet.runtime")

Status = Callable[[str], None]


class ClusterError(RuntimeError):
    pass


@dataclass
class ClusterInfo:
    """What `up` started, kept in <state_dir>/run/cluster.json for `status` and `down`."""

    ray_address: str
    started_ray: bool
    redis_url: str
    started_redis: bool
    http_url: str
    app_name: str
    started_at: float
    media_port: int | None = None  # the gateway's own media port (None: the HTTP route)
    job_url: str | None = None  # the local head's job server (`ray job submit --address`)

    @property
    def media_url(self) -> str:
        """Where local tools (simulate, benchmarks, tests) open media forks."""
        base = self.http_url.replace("http://", "ws://")
        if self.media_port:
            base = f"{base.rsplit(':', 1)[0]}:{self.media_port}"
        return base + "/media"


def info_path(settings: Settings) -> Path:
    return settings.state_dir / "run" / "cluster.json"


def read_info(settings: Settings) -> ClusterInfo | None:
    try:
        return ClusterInfo(**json.loads(info_path(settings).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def _ray_bin() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else (shutil.which("ray") or "ray")


# Ray rewrites a loopback --node-ip-address to the machine's reachable address unless
# "cluster mode" is off; with it off, the head, workers and drivers all use 127.0.0.1.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

# Ray 2.60 turns token authentication on by itself for some clusters (any `ray.init()`
# that starts one writes ~/.ray/auth_token; a later `ray start` then requires it) but a
# driver only sends the token when the mode is set in its environment. So the mode is
# always explicit: token auth on, for the head, its workers and every driver we start.
AUTH_ENV = {"RAY_AUTH_MODE": "token"}


def _use_token_auth() -> None:
    """Token mode for this process. Ray reads the mode into its C++ config once, so when
    `ray` was imported before (a test session, a notebook) the config is re-read, as
    Ray's own `_enable_token_auth` does."""
    if os.environ.get("RAY_AUTH_MODE") == AUTH_ENV["RAY_AUTH_MODE"]:
        return
    os.environ.update(AUTH_ENV)
    if "ray" in sys.modules:
        from ray._raylet import Config  # private, Ray pinned to 2.60

        Config.initialize("")


def ensure_auth_token() -> None:
    """Create Ray's cluster token (~/.ray/auth_token) once, if it does not exist."""
    token = Path.home() / ".ray" / "auth_token"
    if token.exists() or os.environ.get("RAY_AUTH_TOKEN"):
        return
    proc = subprocess.run([_ray_bin(), "get-auth-token", "--generate"], capture_output=True,
                          text=True, env=_ray_env(), timeout=60)
    if proc.returncode != 0 or not token.exists():
        raise ClusterError("could not create Ray's auth token (`ray get-auth-token --generate`)")


def _loopback(settings_ip: str) -> dict[str, str]:
    return LOOPBACK_ENV if settings_ip in ("127.0.0.1", "localhost") else {}


def _ray_env(node_ip: str = "127.0.0.1") -> dict[str, str]:
    env = dict(os.environ)
    env.update(_loopback(node_ip))
    env.update(AUTH_ENV)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def head_env(settings: Settings) -> dict[str, str]:
    """The head's environment, inherited by everything the cluster runs, jobs included:
    this install's `callfleet` first on PATH, and this state folder, so that a job
    submitted to the local cluster deploys onto the same Redis, registry and secrets."""
    env = _ray_env(settings.ray.node_ip)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CALLFLEET_STATE_DIR"] = str(Path(settings.state_dir).resolve())
    return env


def start_ray_head(settings: Settings) -> str:
    """A local head on `ray.node_ip`, with the job server on `ray.dashboard_port` so that
    `ray job submit --address http://<node_ip>:<dashboard_port> … -- callfleet deploy`
    works against it as against any Ray cluster."""
    r = settings.ray
    cmd = [
        _ray_bin(), "start", "--head",
        f"--node-ip-address={r.node_ip}", f"--port={r.gcs_port}", "--disable-usage-stats",
    ]
    if r.dashboard_port:
        cmd += ["--include-dashboard=true", f"--dashboard-host={r.node_ip}",
                f"--dashboard-port={r.dashboard_port}"]
    else:
        cmd.append("--include-dashboard=false")
    if r.num_cpus:
        cmd.append(f"--num-cpus={r.num_cpus}")
    if r.metrics_port:  # Prometheus scrapes the node here (docs/operations.md)
        cmd.append(f"--metrics-export-port={r.metrics_port}")
    ensure_auth_token()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=head_env(settings),
                          timeout=180)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ClusterError(f"`ray start` failed (exit {proc.returncode}):\n{tail}")
    return f"{r.node_ip}:{r.gcs_port}"


def job_server_url(settings: Settings, started_ray: bool) -> str | None:
    """Where `ray job submit --address` reaches the head `up` started (None: not ours)."""
    r = settings.ray
    return f"http://{r.node_ip}:{r.dashboard_port}" if started_ray and r.dashboard_port else None


def stop_ray_head() -> None:
    subprocess.run([_ray_bin(), "stop", "--grace-period", "15"], capture_output=True,
                   env=_ray_env(), timeout=120)


def ray_reachable(address: str) -> bool:
    proc = subprocess.run([_ray_bin(), "health-check", "--address", address],
                          capture_output=True, env=_ray_env(), timeout=60)
    return proc.returncode == 0


def connect_ray(address: str) -> None:
    """Connect this process to a running CallFleet Ray cluster (idempotent)."""
    _use_token_auth()
    if address.split(":")[0] in ("127.0.0.1", "localhost"):
        # this driver must also see itself as 127.0.0.1; Ray reads the flag into a module
        # constant at import, so set both (private constant, Ray pinned to 2.60)
        os.environ.update(LOOPBACK_ENV)
        from ray._private import ray_constants  # heavy: loads ray

        ray_constants.ENABLE_RAY_CLUSTER = False
    import ray  # heavy: loads ray

    if not ray.is_initialized():
        ray.init(address=address, namespace="callfleet", logging_level=logging.WARNING,
                 log_to_driver=False)
        logging.getLogger("ray.serve").setLevel(logging.WARNING)


def deploy_app(settings: Settings, address: str, status: Status) -> None:
    """Deploy (or update) both Serve apps, the media gateway with its models and the REST
    API at /api, from one declarative config (cluster/serve_deploy.py), and wait until
    every deployment is RUNNING."""
    from ray import serve  # heavy: loads ray


    connect_ray(address)
    serve.start(http_options={"host": settings.serve.host, "port": settings.serve.http_port})
    try:
        apply_config(settings, build_config(settings), status)
    except ServeDeployError as exc:
        raise ClusterError(f"the Serve app failed to deploy: {exc}") from exc


def wait_http(url: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url + "/healthz", timeout=5)
            if resp.status_code == 200:
                return resp.json()
            last_error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last_error = type(exc).__name__
        time.sleep(0.5)
    raise ClusterError(f"gateway at {url} did not become healthy in {timeout:.0f}s ({last_error})")


def up(settings: Settings, status: Status = print,
       progress: Callable[[str], Callable[[str, float], None]] | None = None) -> ClusterInfo:
    """Bring everything up and return what was started. Idempotent."""

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    previous = read_info(settings)

    settings, started_redis = prepare_state(settings, status)
    started_redis = started_redis or bool(previous and previous.started_redis)
    redis_url = settings.redis_url
    ensure_models(settings, progress)

    started_ray = bool(previous and previous.started_ray)
    address = settings.ray.address
    if not address:
        address = f"{settings.ray.node_ip}:{settings.ray.gcs_port}"
        if not ray_reachable(address):
            status("starting local Ray head (127.0.0.1)")
            address = start_ray_head(settings)
            started_ray = True
    info = ClusterInfo(
        ray_address=address, started_ray=started_ray, redis_url=redis_url,
        started_redis=started_redis,
        http_url=f"http://{settings.serve.host}:{settings.serve.http_port}",
        app_name=settings.serve.app_name, started_at=time.time(),
        media_port=settings.gateway.media_port, job_url=job_server_url(settings, started_ray),
    )
    _write_private(info_path(settings), json.dumps(asdict(info), indent=2))

    status("deploying the Serve apps: media gateway and models, REST API at /api")
    deploy_app(settings, address, status)
    wait_http(info.http_url)
    start_floor_actors(settings, status)
    return info


def prepare_state(settings: Settings, status: Status) -> tuple[Settings, bool]:
    """The configured Redis (checked: it must persist) or the embedded one (started when
    not running), and the fork secret; returns the settings that name them and whether
    the embedded Redis is ours to stop."""
    started_redis = False
    if settings.redis_url:
        check_redis(settings)
    else:
        embedded = EmbeddedRedis(settings.state_dir, settings.redis_port)
        status("starting embedded Redis")
        try:
            embedded.start()
        except RedisStartError as exc:
            raise ClusterError(str(exc)) from None
        started_redis = True  # the embedded Redis belongs to CallFleet: `down` stops it
        settings = settings.model_copy(update={"redis_url": embedded.url})
    # the key of the media forks' credentials: the controller and the gateway get it in
    # their settings (generated into the state folder, 0600, unless configured)
    return with_customer_secret(with_fork_secret(settings)), started_redis


def check_redis(settings: Settings) -> None:
    """An external Redis (`redis_url`) must keep what it is given: AOF on, no eviction
    (`redis_server.check_persistence`), unless ``redis.allow_unsafe_persistence``."""
    try:
        check_persistence(settings.redis_url, settings.redis.allow_unsafe_persistence)
    except RedisSafetyError as exc:
        raise ClusterError(str(exc)) from None


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by this user only: cluster.json holds the Redis URL with
    its password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an older, wider file keeps its mode through O_TRUNC


def start_floor_actors(settings: Settings, status: Status) -> None:
    """The simulated FreeSWITCH (when configured), then the ESL controller, skill router
    and dialer actors (cluster/floor.py)."""

    if settings.freeswitch.simulate:

        status(f"starting the FreeSWITCH simulator on {settings.freeswitch.host}:"
               f"{settings.freeswitch.port}")
        start_simulator(settings)
    status("starting the floor: ESL controller, skill router, dialer")
    actors = start_floor(settings)
    import ray  # heavy: loads ray

    try:
        ray.get(actors["controller"].ready.remote(15.0), timeout=30)
    except Exception as exc:  # a real switch may come later; the controller keeps trying
        status(f"ESL controller not connected yet ({type(exc).__name__}); it keeps retrying")


def stop_floor_actors(settings: Settings) -> None:
    """Detached actors outlive `serve.shutdown`; on a cluster we did not start they must
    be stopped by name."""
    import ray  # heavy: loads ray


    names = [ROUTER_NAME, SIM_NAME, settings.dialer.actor_name, actor_name(settings.freeswitch),
             RECORD_WRITER_NAME]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace="callfleet"), no_restart=True)
        except ValueError:
            pass


def cluster_status(settings: Settings) -> dict[str, Any]:
    info = read_info(settings)
    if info is None:
        return {"running": False, "reason": "not started (no run/cluster.json)"}
    out: dict[str, Any] = {"running": True, **asdict(info)}
    out["redis_url"] = redact_url(info.redis_url)  # printed by `callfleet status --json`
    embedded = EmbeddedRedis(settings.state_dir, settings.redis_port)
    out["redis"] = "ok" if (embedded.ping() if info.started_redis else _ping(info.redis_url)) else "down"
    try:
        out["gateway"] = httpx.get(info.http_url + "/healthz", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        out["gateway"] = {"status": f"unreachable ({type(exc).__name__})"}
        out["running"] = False
    if ray_reachable(info.ray_address):
        connect_ray(info.ray_address)
        from ray import serve  # heavy: loads ray

        app = serve.status().applications.get(info.app_name)
        out["deployments"] = {
            name: {"status": d.status.value, "replicas": dict(d.replica_states)}
            for name, d in (app.deployments.items() if app else [])
        }
    else:
        out["deployments"] = {}
        out["running"] = False
    return out


def _ping(url: str) -> bool:

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def down(settings: Settings, status: Status = print) -> list[str]:
    """Stop what `up` started; returns what was stopped."""
    info = read_info(settings)
    stopped: list[str] = []
    if info is None:
        return stopped
    if ray_reachable(info.ray_address):
        try:
            connect_ray(info.ray_address)
            from ray import serve  # heavy: loads ray

            status("stopping the floor actors and the Serve apps")
            stop_floor_actors(settings)
            serve.shutdown()
            stopped.append("serve")
        except Exception as exc:  # keep stopping the rest
            status(f"serve shutdown failed: {exc}")
        import ray  # heavy: loads ray

        ray.shutdown()
    if info.started_ray:
        status("stopping local Ray")
        stop_ray_head()
        stopped.append("ray")
    if info.started_redis:
        status("stopping embedded Redis")
        if EmbeddedRedis(settings.state_dir, settings.redis_port).stop():
            stopped.append("redis")
    info_path(settings).unlink(missing_ok=True)
    return stopped
