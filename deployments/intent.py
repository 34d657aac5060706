"""Intent replica: the registry's intent classifier, batched, swappable live, with shadow mode.

Everything that changes while the cluster runs comes through ``user_config`` (validated by
`IntentServingOptions`) and is applied by `reconfigure` without restarting the replica:

* ``version`` — promote: the new version loads in a worker thread while the old one keeps
  answering; requests switch to the new model the moment it is ready (zero failures).
* ``shadow_version`` — a candidate that also scores live traffic after each batch has
  been answered; `shadow_report()` gives its agreement with the serving version.
  Shadow scoring never delays an answer: a batch that arrives while the shadow is still
  busy is skipped (and counted), so a slow candidate cannot build a queue.
* ``backend`` (auto | onnx | torch) and ``oos_threshold`` (None = the version's tuned one).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve

from configs.settings import load_settings
from deployments.common import ServedVersion, apply_batching, pick_device, settings_from
from training.models.intent import IntentClassifier, ShadowAgreement
from training.models.outputs import IntentResult
from training.models.registry import ModelRegistry

log = logging.getLogger("callfleet.deployments.intent")


class IntentServingOptions(BaseModel):
    """The live-tunable part of the intent deployment's ``user_config``."""

    model_config = ConfigDict(extra="forbid")  # a typo in a user_config fails loudly

    max_batch_size: int | None = Field(None, ge=1, description="@serve.batch maximum batch")
    batch_wait_timeout_s: float | None = Field(None, ge=0, description="@serve.batch wait")

    version: str = Field("current", description="registry version to serve")
    backend: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="auto = ONNX Runtime when the version has model.onnx (CPU), else torch"
    )
    oos_threshold: float | None = Field(
        None, ge=0, le=1, description="None = the version's tuned threshold (else settings' value)"
    )
    shadow_version: str | None = Field(
        None, description="candidate version that also scores live traffic (None = off)"
    )


@serve.deployment(name="intent", health_check_period_s=10)
class IntentDeployment:
    def __init__(self, settings: dict[str, Any]):
        self.cfg = settings_from(settings)
        self.registry = ModelRegistry(self.cfg.registry_path, self.cfg.registry_url)
        self.options = IntentServingOptions(version=self.cfg.intent.version)
        self.model: IntentClassifier | None = self._load(self.options)
        self.version: str | None = self.model.version
        self.served = ServedVersion("intent")
        self.served.serving(self.version)
        self.shadow: IntentClassifier | None = None
        self.agreement: ShadowAgreement | None = None
        self._shadow_busy = False
        self._shadow_task: asyncio.Task | None = None  # referenced so it is not collected

    def _load(self, options: IntentServingOptions, version: str | None = None) -> IntentClassifier:
        """Load and warm up a version (blocking: call it in a thread once serving)."""
        s = self.cfg.intent
        model = IntentClassifier.from_registry(
            self.registry, version=version or options.version, cpu_threads=s.cpu_threads,
            device=pick_device(s), backend=options.backend, oos_threshold=options.oos_threshold,
        )
        if model.threshold_source == "default":
            model.oos_threshold = s.oos_threshold  # an untuned version: the configured value
        model.predict_batch(["hello"])  # warm up before it takes traffic
        return model

    async def reconfigure(self, config: dict[str, Any]) -> None:
        try:
            options = IntentServingOptions.model_validate(config or {})
        except ValidationError as exc:
            raise ValueError(f"bad intent user_config: {exc}") from None
        apply_batching(self.classify, config or {})
        if "version" not in (config or {}):  # only batching given: keep what is served
            options = options.model_copy(update={"version": self.version})
        previous, self.options = self.options, options
        serving = await asyncio.to_thread(_resolved, self.registry, options.version)
        if (serving != self.version or options.backend != previous.backend
                or options.oos_threshold != previous.oos_threshold):
            model = await asyncio.to_thread(self._load, options, serving)
            self.model, self.version = model, model.version  # one assignment: atomic swap
            self.served.serving(model.version)
            log.info("intent now serving %s (%s)", model.version, model.backend)
        await self._set_shadow(options)

    async def _set_shadow(self, options: IntentServingOptions) -> None:
        wanted = options.shadow_version and await asyncio.to_thread(
            _resolved, self.registry, options.shadow_version)
        current = self.shadow.version if self.shadow else None
        if wanted == current and (self.agreement is None
                                  or self.agreement.serving_version == self.version):
            return
        if not wanted:
            self.shadow, self.agreement = None, None
            return
        shadow = self.shadow if wanted == current else await asyncio.to_thread(
            self._load, options, wanted)
        self.shadow, self.agreement = shadow, ShadowAgreement(self.version or "?", shadow.version)
        log.info("intent shadow %s scores live traffic beside %s", shadow.version, self.version)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def classify(self, texts: list[str]) -> list[IntentResult]:
        model = self.model
        results = await asyncio.to_thread(model.predict_batch, texts)
        if self.shadow is not None and self.agreement is not None:
            self._start_shadow(texts, results)
        return [replace(r, model_version=model.version) for r in results]

    def _start_shadow(self, texts: list[str], results: list[IntentResult]) -> None:
        agreement, shadow = self.agreement, self.shadow
        if self._shadow_busy:
            agreement.record_skipped(len(texts))
            return
        self._shadow_busy = True

        async def score() -> None:
            try:
                theirs = await asyncio.to_thread(shadow.predict_batch, texts)
                agreement.record(results, theirs)
            except Exception:
                agreement.record_error()
                log.exception("shadow intent model %s failed on a batch", shadow.version)
            finally:
                self._shadow_busy = False

        self._shadow_task = asyncio.get_running_loop().create_task(score())

    def shadow_report(self) -> dict[str, Any] | None:
        """Agreement of the shadow candidate with the serving version (None = no shadow)."""
        return self.agreement.report() if self.agreement else None

    def info(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "backend": self.model.backend,
            "oos_threshold": self.model.oos_threshold,
            "labels": list(self.model.labels),
            "shadow_version": self.shadow.version if self.shadow else None,
            "pid": os.getpid(),  # tells a restarted replica from a reconfigured one
        }

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("intent model not loaded")


class IntentAppArgs(BaseModel):
    """Arguments of `intent_app`, the intent deployment alone as a Serve application."""

    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(None, description="CallFleet YAML (default configs/default.yaml)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="settings to override")


def intent_app(args: dict[str, Any]):
    """``import_path: deployments.intent:intent_app`` — an intent-only Serve app (e.g. a
    stand-alone NLU service, or a test). Deployed from a config file, only ``user_config``
    changes between deploys are applied in place by `IntentDeployment.reconfigure`."""

    parsed = IntentAppArgs.model_validate(args)
    settings = load_settings(parsed.config, **parsed.overrides)
    return IntentDeployment.bind(settings.model_dump(mode="json"))


def _resolved(registry: ModelRegistry, version: str) -> str:
    """"current" -> the promoted version's name (so promoting is noticed as a change)."""
    return registry.get("intent", version).version
