"""`callfleet deploy`: put the whole system onto the Ray cluster this process runs in.

Meant to run as a Ray job, the way teams with a Ray cluster deploy everything else:

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \\
        -- callfleet deploy

It starts or updates, in this order: the configured Redis (checked: it must persist) or
the embedded one on the node the job runs on; the default models when the registry has
none; both Serve apps from one declarative config; the floor actors (FreeSWITCH simulator
when configured, ESL controller, skill router, dialer). It returns once the gateway
answers its health check. Running it again applies the same declarative config: an
unchanged app keeps its replicas and their calls, a changed ``user_config`` reconfigures
them in place, and running floor actors are found by name, not restarted.

Unlike `callfleet up` it never starts a Ray head: the cluster is the caller's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cluster.runtime.fork_secret import with_customer_secret, with_fork_secret
from cluster.runtime.lifecycle import (
    ClusterError,
    ClusterInfo,
    Status,
    _write_private,
    deploy_app,
    info_path,
    prepare_state,
    read_info,
    start_floor_actors,
    wait_http,
)
from cluster.runtime.model_setup import ensure_models
from configs.settings import Settings

Progress = Callable[[str], Callable[[str, float], None]]

# where Ray unpacks a job's --working-dir: deleted with the job's runtime environment
_JOB_FILES = ("runtime_resources", "working_dir_files")


@dataclass(frozen=True)
class DeployReport:
    ray_address: str
    http_url: str
    media_url: str
    redis: str  # "embedded" or "external"
    models_built: list[str]


def check_state_dir(settings: Settings) -> None:
    """The state folder must outlive the job: a relative one would resolve inside the
    job's unpacked working directory, which Ray deletes."""
    parts = Path(settings.state_dir).resolve().parts
    inside_job = any(parts[i:i + 2] == _JOB_FILES for i in range(len(parts) - 1))
    if inside_job:
        raise ClusterError(
            f"state_dir {settings.state_dir} lies inside this job's temporary working "
            "directory; set CALLFLEET_STATE_DIR to a lasting absolute path on the cluster "
            "(`callfleet up` sets it for the jobs of its own cluster), e.g. "
            "--runtime-env-json '{\"env_vars\": {\"CALLFLEET_STATE_DIR\": \"/srv/callfleet\"}}'")


def ray_address(settings: Settings) -> str:
    """The cluster to deploy onto: ray.address, else the job's RAY_ADDRESS, else a local
    cluster Ray finds by itself."""
    return settings.ray.address or os.environ.get("RAY_ADDRESS") or "auto"


def deploy(settings: Settings, status: Status = print,
           progress: Progress | None = None) -> DeployReport:
    """Start or update everything on the current Ray cluster; raise ClusterError with one
    clear reason when it cannot."""
    check_state_dir(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings, started_redis = prepare_state(settings, status)
    built = ensure_models(settings, progress)
    address = ray_address(settings)
    status(f"deploying onto the Ray cluster at {address}")
    try:
        deploy_app(settings, address, status)
    except ConnectionError as exc:
        raise ClusterError(f"no Ray cluster to deploy onto at {address} ({exc}); run this "
                           "with `ray job submit`, or set ray.address") from None
    http_url = f"http://{settings.serve.host}:{settings.serve.http_port}"
    wait_http(http_url)
    start_floor_actors(settings, status)
    info = read_info(settings)
    if info is None:  # keep `callfleet status` and the local tools working against it
        info = ClusterInfo(
            ray_address=address, started_ray=False, redis_url=settings.redis_url or "",
            started_redis=started_redis, http_url=http_url, app_name=settings.serve.app_name,
            started_at=time.time(), media_port=settings.gateway.media_port)
        _write_private(info_path(settings), json.dumps(asdict(info), indent=2))
    return DeployReport(ray_address=address, http_url=http_url, media_url=info.media_url,
                        redis="embedded" if started_redis else "external",
                        models_built=built)


def with_cluster_state(settings: Settings) -> Settings:
    """Settings for an app built from a Serve config (`serve deploy configs/serve.yaml`,
    KubeRay): ``redis_url`` from the settings or environment, else the Redis that
    `callfleet up`/`deploy` recorded for this state folder; the fork secret as configured
    or from the state folder."""
    if not settings.redis_url:
        info = read_info(settings)
        if info is None or not info.redis_url:
            raise ValueError(
                "redis_url is not set (CALLFLEET_REDIS_URL) and no CallFleet Redis is "
                f"recorded under {settings.state_dir}; set it, or run `callfleet deploy` first")
        settings = settings.model_copy(update={"redis_url": info.redis_url})
    return with_customer_secret(with_fork_secret(settings))

