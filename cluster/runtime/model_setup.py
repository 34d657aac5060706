"""Make sure the models the Serve app loads exist before it is deployed: build the
default intent and emotion versions when the registry has none, join the multilingual
Whisper parts once. Progress goes to a callback (the CLI draws it as bars)."""

from __future__ import annotations

from collections.abc import Callable

from configs.settings import Settings
from training.emotion.default import build_default_emotion_model
from training.models.registry import ModelRegistry
from training.models.whisper import resolve_whisper_model

Progress = Callable[[str, float], None]


def missing_models(settings: Settings) -> list[str]:
    registry = ModelRegistry(settings.registry_path, settings.registry_url)
    return [kind for kind in ("intent", "emotion") if registry.current(kind) is None]


def ensure_models(settings: Settings, progress: Callable[[str], Progress] | None = None) -> list[str]:
    """Build what is missing; return the kinds built. `progress(task)` returns the
    per-task callback `(stage, fraction)`."""
    registry = ModelRegistry(settings.registry_path, settings.registry_url)
    built: list[str] = []
    threads = max(settings.intent.cpu_threads, 2)
    if registry.current("intent") is None:
        from training.intent.default import build_default_intent_model  # heavy: loads torch

        cb = progress("training default intent model") if progress else None
        build_default_intent_model(registry, progress=cb, cpu_threads=threads)
        built.append("intent")
    if registry.current("emotion") is None:

        cb = progress("training default emotion model") if progress else None
        build_default_emotion_model(registry, progress=cb, cpu_threads=threads)
        built.append("emotion")
    if settings.asr.model == "base":
        cb = progress("joining whisper base model") if progress else None
        if cb:
            cb("joining", 0.0)
        resolve_whisper_model("base", settings.cache_dir)
        if cb:
            cb("joined", 1.0)
    return built
