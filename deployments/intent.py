"""Intent replica: the registry's current intent classifier, batched, swappable live."""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from deployments.common import apply_batching, pick_device, settings_from
from deployments.engines.intent import IntentClassifier
from training.registry import ModelRegistry


@serve.deployment(name="intent", health_check_period_s=10)
class IntentDeployment:
    def __init__(self, settings: dict[str, Any]):
        self.cfg = settings_from(settings)
        self.registry = ModelRegistry(self.cfg.registry_path)
        self.model: IntentClassifier | None = None
        self.version: str | None = None
        self._load(self.cfg.intent.version)

    def _load(self, version: str) -> None:
        s = self.cfg.intent
        self.model = IntentClassifier.from_registry(
            self.registry, version=version, oos_threshold=s.oos_threshold,
            cpu_threads=s.cpu_threads, device=pick_device(s),
        )
        self.version = self.model.version
        self.model.predict_batch(["hello"])  # warm up

    def reconfigure(self, config: dict[str, Any]) -> None:
        apply_batching(self.classify, config)
        wanted = config.get("version")
        if wanted and wanted not in (self.version, "current"):
            self._load(wanted)  # live swap: requests in flight finish on the old model

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        model = self.model
        results = await asyncio.to_thread(model.predict_batch, texts)
        return [{**r.to_dict(), "model_version": model.version} for r in results]

    def info(self) -> dict[str, Any]:
        return {"version": self.version, "labels": list(self.model.labels)}

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("intent model not loaded")
