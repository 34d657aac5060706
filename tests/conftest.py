"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import shutil
import sys
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
    (≈ 1.5 min on 2 cores), shared by the model and integration tests.

    Built once per run: `make test` runs two pytest processes at once (tests/tiers.py)
    that share CALLFLEET_TEST_RUN_DIR; the first to get there builds it under a file
    lock and the other waits for it. Each process then works on a copy of its own, so a
    test that promotes a version in one does not change the model the other is loading."""
    import torch  # heavy: the models are built only when a test asks for them
    from filelock import FileLock

    from training.emotion.default import build_default_emotion_model
    from training.intent.default import build_default_intent_model
    from training.models.registry import ModelRegistry

    reuse = os.environ.get("CALLFLEET_TEST_REGISTRY")
    if reuse:  # a registry built earlier (local iteration only; CI always trains)
        return ModelRegistry(reuse)
    shared = os.environ.get("CALLFLEET_TEST_RUN_DIR")
    base = Path(shared) if shared else tmp_path_factory.getbasetemp()
    built = base / "trained-registry"
    with FileLock(str(built) + ".lock"):
        if not (built / ".complete").exists():
            registry = ModelRegistry(built)
            threads = min(2, torch.get_num_threads())
            build_default_intent_model(registry, cpu_threads=threads)
            build_default_emotion_model(registry, cpu_threads=threads)
            (built / ".complete").touch()
    own = tmp_path_factory.mktemp("registry")
    shutil.copytree(built, own, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    return ModelRegistry(own)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization once the results are reported.

    One process here loads torch, CTranslate2 (with its own OpenMP runtime), onnxruntime,
    gevent and a Ray driver. After a full green run of `make test` (772 passed) the
    interpreter once crashed with SIGSEGV while tearing these native libraries down, which
    turned a passing run into a failed one; neither half of the suite alone reproduced it.
    Every test has already cleaned up what it started (clusters stopped and checked for
    stray processes), so the exit status pytest computed is returned as is, without
    running native destructors. CALLFLEET_TEST_NORMAL_EXIT=1 keeps the normal exit (to
    chase that crash with `python -X faulthandler`).
    """
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None or os.environ.get("CALLFLEET_TEST_NORMAL_EXIT") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Tests that start a Ray cluster of their own in the short tier (marked both
    `integration` and `models`: Ray Train, the two-node cluster) go last, so they do not
    start models at the same moment as the integration tier's cluster beside them."""
    own_cluster = [i for i in items if i.get_closest_marker("integration")
                   and i.get_closest_marker("models")]
    if own_cluster and len(own_cluster) < len(items):
        items[:] = [i for i in items if i not in own_cluster] + own_cluster
