"""Emotion replica: text model from the registry fused with acoustic arousal cues."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.common import ServedVersion, apply_batching, settings_from
from training.models.emotion import EmotionClassifier
from training.models.outputs import EmotionInput, EmotionResult
from training.models.registry import ModelRegistry


@serve.deployment(name="emotion", health_check_period_s=10)
class EmotionDeployment:
    def __init__(self, settings: dict[str, Any]):
        self.cfg = settings_from(settings)
        self.registry = ModelRegistry(self.cfg.registry_path, self.cfg.registry_url)
        self.model: EmotionClassifier | None = None
        self.served = ServedVersion("emotion")
        self._load(self.cfg.emotion.version)

    def _load(self, version: str) -> None:
        s = self.cfg.emotion
        self.model = EmotionClassifier.from_registry(
            self.registry, version=version, acoustic_weight=s.acoustic_weight,
            cpu_threads=s.cpu_threads,
        )
        self.model.predict_batch([EmotionInput("hello")])  # warm up
        self.served.serving(self.model.version)

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batching(self.classify, config)
        wanted = config.get("version")
        if wanted and wanted != "current" and wanted != getattr(self.model, "version", None):
            self._load(wanted)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def classify(self, items: list[EmotionInput]) -> list[EmotionResult]:
        return await asyncio.to_thread(self.model.predict_batch, items)

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("emotion model not loaded")
