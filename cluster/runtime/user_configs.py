"""Each model deployment's Serve ``user_config``: batching and the model version it
serves. `callfleet up`, `models promote|rollback` and the app builder all derive it here,
so a declarative deploy that changes only these values reconfigures replicas in place."""

from __future__ import annotations

from typing import Any

from configs.settings import ReplicaSettings, Settings
from training.models.registry import ModelRegistry

__all__ = ["batch_user_config", "model_user_configs"]


def batch_user_config(replica: ReplicaSettings, **extra: Any) -> dict[str, Any]:
    return {
        "max_batch_size": replica.max_batch_size,
        "batch_wait_timeout_s": replica.batch_wait_timeout_s,
        **extra,
    }


def _pinned_version(settings: Settings, kind: str, wanted: str) -> str:
    """Resolve "current" to the promoted version at deploy time, so the version a cluster
    serves is explicit in its user_config (and a `serve deploy` of an unchanged config
    with only this value changed reconfigures replicas in place)."""
    if wanted != "current":
        return wanted
    return ModelRegistry(settings.registry_path, settings.registry_url).current(kind) or "current"


def model_user_configs(settings: Settings, pin: bool = True) -> dict[str, dict[str, Any]]:
    """Each batching deployment's ``user_config`` (by deployment name), model versions
    pinned. A declarative deploy that changes only these reconfigures replicas in place.
    With ``pin=False`` the versions stay as configured ("current" is resolved by each
    replica): the portable config must not carry one machine's registry."""
    def version(kind: str, wanted: str) -> str:
        return _pinned_version(settings, kind, wanted) if pin else wanted

    return {
        "asr": batch_user_config(settings.asr),
        "intent": batch_user_config(
            settings.intent, version=version("intent", settings.intent.version),
            backend=settings.intent.backend, shadow_version=settings.intent.shadow_version),
        "emotion": batch_user_config(
            settings.emotion, version=version("emotion", settings.emotion.version)),
    }
