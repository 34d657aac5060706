"""Put a promoted model version live on the running cluster without a restart.

`callfleet up` deployed the Serve apps from a declarative config (cluster/serve_deploy.py).
Promoting re-applies that config with one change, the ``version`` in the ``user_config``
of the deployment that serves the kind; Serve then calls ``reconfigure`` on the live
replicas, which load the new version beside the old one and swap with one assignment.
Requests keep being answered throughout (tests/integration/test_model_promote.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cluster.runtime.lifecycle import connect_ray, ray_reachable, read_info
from cluster.runtime.serve_deploy import (
    SERVED_MODEL_DEPLOYMENTS,
    ServeDeployError,
    apply_config,
    read_config,
    with_model_version,
)
from configs.settings import Settings

__all__ = ["SwapFailed", "SwapOutcome", "apply_to_cluster"]


class SwapFailed(RuntimeError):
    """The cluster could not load the new version (the message says whether the previous
    one was restored)."""


@dataclass(frozen=True)
class SwapOutcome:
    applied: bool
    message: str  # one line for the user: what happened, or why nothing was applied


def apply_to_cluster(settings: Settings, registry_root: Path, kind: str, version: str,
                     status=lambda line: None) -> SwapOutcome:
    """Reconfigure the cluster `callfleet up` started with these settings to serve
    `version` of `kind`. Raises ServeDeployError when the deploy fails."""

    if kind not in SERVED_MODEL_DEPLOYMENTS:
        return SwapOutcome(False, f"{kind} models are not served by a deployment; "
                                  "nothing to reconfigure")
    info = read_info(settings)
    if info is None:
        return SwapOutcome(False, "no cluster started: `callfleet up` will serve it")
    if Path(registry_root).resolve() != Path(settings.registry_path).resolve():
        return SwapOutcome(False, "the running cluster uses another registry "
                                  f"({settings.registry_path}); it was not changed")
    if not ray_reachable(info.ray_address):
        return SwapOutcome(False, "no running cluster: `callfleet up` will serve it")
    config = read_config(settings)
    if config is None:
        return SwapOutcome(False, "the running cluster was not deployed by `callfleet up` "
                                  f"(no {SERVED_MODEL_DEPLOYMENTS[kind]} config recorded); set "
                                  f"its user_config version to {version} in your Serve config "
                                  "and `serve deploy` it")
    connect_ray(info.ray_address)
    updated = with_model_version(config, info.app_name, kind, version)
    if updated == config:
        return SwapOutcome(True, f"the cluster already serves {kind} {version}")
    try:
        apply_config(settings, updated, status)
    except ServeDeployError as exc:
        status(f"the cluster could not load {kind} {version}; restoring the previous config")
        try:
            apply_config(settings, config, status)
        except ServeDeployError as again:
            raise SwapFailed(f"{exc}; restoring the previous config failed too: {again}") from exc
        raise SwapFailed(f"{exc}; the cluster serves the previous version again") from exc
    return SwapOutcome(True, f"the running cluster now serves {kind} {version} "
                             f"(deployment {SERVED_MODEL_DEPLOYMENTS[kind]!r} reconfigured in "
                             "place, no replica restarted)")
