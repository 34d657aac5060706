"""What every model deployment shares: settings from the app builder, device choice,
live-tunable batching through `user_config`, health, and the served version as a metric."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cluster.actors.metrics import RayMetrics
from configs.settings import ReplicaSettings, Settings
from telephony.metrics import MODEL_VERSION, Metrics


def settings_from(doc: dict[str, Any]) -> Settings:
    """Rebuild settings inside a replica (already validated and resolved by the driver)."""
    return Settings.model_validate(doc)


def pick_device(replica: ReplicaSettings) -> str:
    """CUDA when this replica was given a GPU share and one is visible, else CPU."""
    if replica.num_gpus <= 0:
        return "cpu"
    try:
        import torch  # optional: clear error if missing

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def apply_batching(method: Any, config: dict[str, Any]) -> None:
    """Retune a @serve.batch method live from a user_config dict."""
    if "max_batch_size" in config:
        method.set_max_batch_size(int(config["max_batch_size"]))
    if "batch_wait_timeout_s" in config:
        method.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))


class ServedVersion:
    """``callfleet_model_version_info{kind, version}``: 1 for the model version this
    replica serves, 0 for the one it replaced (a gauge's series cannot be removed, so a
    promotion leaves the old version at 0)."""

    def __init__(self, kind: str, metrics: Metrics | None = None):
        self.kind = kind
        self.metrics = metrics if metrics is not None else RayMetrics()
        self.version: str | None = None

    def serving(self, version: str | None) -> None:
        if version == self.version:
            return
        if self.version is not None:
            self.metrics.set(MODEL_VERSION, 0, kind=self.kind, version=self.version)
        if version is not None:
            self.metrics.set(MODEL_VERSION, 1, kind=self.kind, version=version)
        self.version = version


def actor_options(replica: ReplicaSettings) -> dict[str, Any]:
    threads = str(replica.cpu_threads)
    return {
        "num_cpus": replica.num_cpus,
        "num_gpus": replica.num_gpus,
        "runtime_env": {
            "env_vars": {
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        },
    }


class AppArgs(BaseModel):
    """Arguments of both app builders (`deployments.app:app_builder`,
    `deployments.api.ingress:api_builder`) in a Serve config file."""

    model_config = ConfigDict(extra="forbid")  # a typo in serve.yaml fails loudly

    config: str | None = Field(None, description="CallFleet YAML (default configs/default.yaml)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="settings to override")
    settings_sha256: str | None = Field(
        None, description="hash of the config file's content (written by `callfleet up`): a "
        "changed file changes the app's code version, so Serve rebuilds the app")
