"""Declarative Serve deploys: how `callfleet up` puts the two Serve apps on the cluster and
how `callfleet models promote|rollback` changes a running one.

Both apps go in one Serve config, applied through the Serve controller exactly as
`serve deploy` / the dashboard's REST API applies it. Serve derives an app's code version
from its import path and arguments, so a later deploy that changes only a deployment's
``user_config`` (a model version) reconfigures the live replicas in place: no restart, no
dropped call. (An imperative ``serve.run`` gets a fresh random code version every time and
replaces the replicas instead.)

The settings the apps are built from are written to a file in the state directory (mode
0600: it holds secrets) and passed by path with the hash of their content, so secrets stay
out of the Serve config the dashboard shows, and changed settings rebuild the apps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cluster.runtime.user_configs import model_user_configs
from configs.settings import Settings, settings_doc

__all__ = [
    "ServeDeployError", "SERVED_MODEL_DEPLOYMENTS", "apply_config", "build_config",
    "config_path", "portable_config", "read_config", "serve_config", "with_model_version",
    "write_settings_file",
]

SETTINGS_FILE = "serve-settings.yaml"
CONFIG_FILE = "serve-config.json"
# model kind -> the deployment in the main app that serves it
SERVED_MODEL_DEPLOYMENTS = {"intent": "intent", "emotion": "emotion"}

Status = Callable[[str], None]


class ServeDeployError(RuntimeError):
    """A deploy that did not reach RUNNING (the message says which app and why)."""


def config_path(settings: Settings) -> Path:
    return Path(settings.state_dir).resolve() / "run" / CONFIG_FILE


def write_settings_file(settings: Settings) -> tuple[Path, str]:
    """Write the resolved settings for the app builders; return (path, sha256 of content)."""
    text = yaml.safe_dump(settings_doc(settings), sort_keys=True)
    path = Path(settings.state_dir).resolve() / "run" / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path, hashlib.sha256(text.encode()).hexdigest()


def build_config(settings: Settings) -> dict[str, Any]:
    """The Serve config (ServeDeploySchema as plain data) for the main app and the REST API,
    reading the resolved settings from a file in the state folder."""
    path, sha = write_settings_file(settings)
    return serve_config(settings, {"config": str(path), "settings_sha256": sha})


def portable_config(settings: Settings) -> dict[str, Any]:
    """The same apps with nothing of this machine in them (`callfleet serve-config`,
    configs/serve.yaml, the KubeRay manifest): the replicas build their settings from
    configs/default.yaml and the CALLFLEET_* environment of the cluster."""
    return serve_config(settings, {"config": None, "overrides": {}}, pin=False)


PORTABLE_HEADER = """\
# Serve config for `serve deploy configs/serve.yaml` on a running Ray cluster, and the
# serveConfigV2 of configs/kuberay/rayservice.yaml. Generated: `callfleet serve-config
# -o configs/serve.yaml` (a test checks it matches the code).
#
# Nothing machine-specific is in it: each app builds its settings from configs/default.yaml
# and the CALLFLEET_* environment of the cluster (e.g. CALLFLEET_REDIS_URL,
# CALLFLEET_STATE_DIR, CALLFLEET_REGISTRY_PATH, CALLFLEET_FREESWITCH__FORK_AUTH__SECRET).
# Without CALLFLEET_REDIS_URL the apps use the Redis `callfleet deploy` or `callfleet up`
# recorded in the state folder. The code must be importable on every node (an image with
# `pip install .`, or `ray job submit --working-dir .`). The floor actors are not Serve
# apps: `ray job submit --working-dir . -- callfleet floor start` (or `callfleet deploy`,
# which does all of it). See docs/deploy.md.
"""


def render_portable_config(settings: Settings) -> str:
    body = yaml.safe_dump(json.loads(json.dumps(portable_config(settings))), sort_keys=False)
    return PORTABLE_HEADER + body


def serve_config(settings: Settings, args: dict[str, Any], pin: bool = True) -> dict[str, Any]:
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.serve.host, "port": settings.serve.http_port},
        "applications": [
            {
                "name": settings.serve.app_name,
                "route_prefix": settings.serve.route_prefix,
                "import_path": "deployments.app:app_builder",
                "args": args,
                "deployments": [
                    {"name": name, "user_config": user_config}
                    for name, user_config in model_user_configs(settings, pin).items()
                ],
            },
            {
                "name": f"{settings.serve.app_name}-api",
                "route_prefix": "/api",
                "import_path": "deployments.api.ingress:api_builder",
                "args": args,
            },
        ],
    }


def with_model_version(config: dict[str, Any], app_name: str, kind: str, version: str) -> dict[str, Any]:
    """A copy of `config` whose deployment serving `kind` loads `version`."""
    deployment = SERVED_MODEL_DEPLOYMENTS.get(kind)
    if deployment is None:
        raise ServeDeployError(f"no deployment serves {kind!r} models "
                               f"(served kinds: {', '.join(SERVED_MODEL_DEPLOYMENTS)})")
    out = copy.deepcopy(config)
    for app in out["applications"]:
        if app["name"] != app_name:
            continue
        for entry in app.get("deployments", []):
            if entry["name"] == deployment:
                entry.setdefault("user_config", {})["version"] = version
                return out
    raise ServeDeployError(f"the deployed config of app {app_name!r} has no {deployment!r} "
                           "deployment; redeploy with `callfleet up`")


def read_config(settings: Settings) -> dict[str, Any] | None:
    """The config `callfleet up` (or the last promotion) applied, or None."""
    path = config_path(settings)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def apply_config(settings: Settings, config: dict[str, Any], status: Status = lambda line: None,
                 timeout_s: float = 900.0) -> None:
    """Deploy `config` through the Serve controller and wait until every app in it is
    RUNNING (a connected Ray driver and a started Serve are required). The config is
    recorded in the state directory once it runs."""
    from ray.serve.context import _get_global_client  # heavy: loads ray
    from ray.serve.schema import ServeDeploySchema  # heavy: loads ray

    try:
        schema = ServeDeploySchema.model_validate(config)
    except ValueError as exc:
        raise ServeDeployError(f"invalid Serve config: {exc}") from None
    client = _get_global_client()
    client.deploy_apps(schema)
    names = [app["name"] for app in config["applications"]]
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        overviews = {name: client.get_serve_status(name) for name in names}
        states = {name: overview.app_status for name, overview in overviews.items()}
        failed = [(n, s) for n, s in states.items() if s.status in ("DEPLOY_FAILED", "UNHEALTHY")]
        if failed:
            name, state = failed[0]
            raise ServeDeployError(f"Serve app {name!r} failed to deploy: "
                                   f"{_last_line(state.message)}")
        if all(s.status == "RUNNING" for s in states.values()):
            break
        line = _progress_line(overviews[names[0]])
        if line and line != last:
            status(line)
            last = line
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{n} {s.status.lower()}" for n, s in states.items())
            raise ServeDeployError(f"Serve apps not running after {timeout_s:.0f} s ({waiting})")
        time.sleep(0.5)
    path = config_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))


def _progress_line(overview: Any) -> str:
    """One line of deployment states (empty while the controller is still building the app)."""
    parts = [f"{d.name} {d.status.lower()}" for d in overview.deployment_statuses]
    return "deployments: " + ", ".join(parts) if parts else ""


def _last_line(message: str) -> str:
    """The useful end of a Serve error (its messages carry whole tracebacks)."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "no message"
