"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory):
    """A registry holding freshly built, promoted default intent and emotion models
    (≈ 1.5 min on 2 cores), shared by the model and integration tests."""
    import os

    import torch

    from training.registry import ModelRegistry as _Registry

    reuse = os.environ.get("CALLFLEET_TEST_REGISTRY")
    if reuse:  # a registry built earlier (local iteration only; CI always trains)
        return _Registry(reuse)

    from training.emotion_default import build_default_emotion_model
    from training.intent_default import build_default_intent_model
    from training.registry import ModelRegistry

    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    threads = min(2, torch.get_num_threads())
    build_default_intent_model(registry, cpu_threads=threads)
    build_default_emotion_model(registry, cpu_threads=threads)
    return registry
