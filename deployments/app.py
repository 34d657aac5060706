"""The Serve application: four model deployments behind the media gateway ingress.

`build_app(settings)` is used by `callfleet up`; `app_builder(args)` is the import path
for `serve deploy configs/serve.yaml` / `serve run` / KubeRay.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from configs.settings import Settings, load_settings
from deployments.asr import ASRDeployment
from deployments.common import actor_options, batch_user_config
from deployments.emotion import EmotionDeployment
from deployments.gateway import MediaGateway
from deployments.intent import IntentDeployment
from deployments.tts import TTSDeployment


def build_app(settings: Settings) -> Application:
    doc = settings.model_dump(mode="json")

    def opts(replica, **user_config: Any) -> dict[str, Any]:
        return {
            "num_replicas": replica.replicas,
            "ray_actor_options": actor_options(replica),
            "user_config": batch_user_config(replica, **user_config),
        }

    asr = ASRDeployment.options(**opts(settings.asr)).bind(doc)
    intent = IntentDeployment.options(**opts(settings.intent, version=settings.intent.version)).bind(doc)
    emotion = EmotionDeployment.options(
        **opts(settings.emotion, version=settings.emotion.version)
    ).bind(doc)
    tts = TTSDeployment.options(
        num_replicas=settings.tts.replicas, ray_actor_options=actor_options(settings.tts)
    ).bind(doc)
    gateway = MediaGateway.options(
        num_replicas=settings.gateway.replicas, ray_actor_options=actor_options(settings.gateway)
    )
    return gateway.bind(asr, intent, emotion, tts, doc)


class AppArgs(BaseModel):
    """Arguments of `deployments.app:app_builder` in a Serve config file."""

    model_config = ConfigDict(extra="forbid")  # a typo in serve.yaml fails loudly

    config: str | None = Field(None, description="CallFleet YAML (default configs/default.yaml)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="settings to override")


def app_builder(args: dict[str, Any]) -> Application:
    parsed = AppArgs.model_validate(args)
    settings = load_settings(parsed.config, **parsed.overrides)
    if not settings.redis_url:
        raise ValueError(
            "redis_url must be set when deploying with a Serve config (for a local "
            "embedded Redis use `callfleet up`, or set overrides.redis_url)"
        )
    return build_app(settings)
