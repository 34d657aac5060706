"""The Serve application: four model deployments behind the media gateway ingress.

`build_app(settings)` is used by `callfleet up`; `app_builder(args)` is the import path
for `serve deploy configs/serve.yaml` / `serve run` / KubeRay.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from cluster.runtime.deploy import with_cluster_state
from cluster.runtime.user_configs import model_user_configs
from configs.settings import Settings, load_settings, settings_doc
from deployments.asr import ASRDeployment
from deployments.common import AppArgs, actor_options
from deployments.emotion import EmotionDeployment
from deployments.gateway.ingress import MediaGateway
from deployments.intent import IntentDeployment
from deployments.tts import TTSDeployment


def build_app(settings: Settings) -> Application:
    doc = settings_doc(settings)
    user_configs = model_user_configs(settings)

    def opts(replica, name: str) -> dict[str, Any]:
        concurrent_batches = getattr(replica, "workers", 1)
        return {
            **replica_count(replica),
            # Serve's default (5) would cap every batch below max_batch_size
            "max_ongoing_requests": replica.max_batch_size * concurrent_batches,
            "ray_actor_options": actor_options(replica),
            "user_config": user_configs[name],
        }

    asr = ASRDeployment.options(**opts(settings.asr, "asr")).bind(doc)
    intent = IntentDeployment.options(**opts(settings.intent, "intent")).bind(doc)
    emotion = EmotionDeployment.options(**opts(settings.emotion, "emotion")).bind(doc)
    tts = TTSDeployment.options(
        **replica_count(settings.tts),
        ray_actor_options=actor_options(settings.tts),
    ).bind(doc)
    gateway = MediaGateway.options(
        **replica_count(settings.gateway),
        ray_actor_options=actor_options(settings.gateway),
    )
    return gateway.bind(asr, intent, emotion, tts, doc)


def replica_count(replica) -> dict[str, Any]:
    """A fixed count, or autoscaling between `replicas` and `autoscaling.max_replicas`."""
    scaling = replica.autoscaling_config()
    out = {"autoscaling_config": scaling} if scaling else {"num_replicas": replica.replicas}
    if replica.max_replicas_per_node:
        out["max_replicas_per_node"] = replica.max_replicas_per_node
    return out


def app_builder(args: dict[str, Any]) -> Application:
    parsed = AppArgs.model_validate(args)
    return build_app(with_cluster_state(load_settings(parsed.config, **parsed.overrides)))
