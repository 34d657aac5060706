"""Session fixtures that build the default intent and emotion models once (≈ 1.5 min)."""

from __future__ import annotations

import pytest
import torch

from training.emotion_default import build_default_emotion_model
from training.intent_default import build_default_intent_model
from training.registry import ModelRegistry


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry holding freshly built, promoted default intent and emotion models."""
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    threads = min(2, torch.get_num_threads())
    build_default_intent_model(registry, cpu_threads=threads)
    build_default_emotion_model(registry, cpu_threads=threads)
    return registry
