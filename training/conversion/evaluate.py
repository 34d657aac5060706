"""`callfleet eval conversion`: how well a version's probabilities rank and match outcomes.

The rows are chosen by ``split``: ``holdout`` re-carves the test split the version was
built without (same seed and fractions, from its meta.json; the file must be the one it
was trained on, checked by sha256); ``all`` scores every row; ``auto`` is ``holdout`` for
the training file and ``all`` for any other. Scoring goes through `ConversionModel`, i.e.
what the dialer uses, calibration included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.conversion.calibration import ECE_BINNING, probability_metrics, reliability_table
from training.conversion.features import read_labelled
from training.conversion.model import ConversionModel, carve_splits
from training.errors import TrainingInputError
from training.models.registry import sha256_file

__all__ = ["SPLITS", "evaluate_conversion", "holdout_rows"]

SPLITS = ("auto", "holdout", "all")


def holdout_rows(meta: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """The test-split row indices the version in `meta` was built without."""
    config = meta.get("training_config") or {}
    _, _, test_idx = carve_splits(
        y, int(config.get("seed", 0)), float(config.get("test_fraction", 0.2)),
        float(config.get("calibration_fraction_of_rest", 0.2)))
    return np.sort(test_idx)


def evaluate_conversion(model_dir: Path, data_path: Path, split: str = "auto") -> dict[str, Any]:
    """ROC AUC, PR AUC, ECE (`ECE_BINNING`; also 10 equal-count bins), Brier, log loss and
    a reliability table of `model_dir` on `data_path`, read under the version's own spec."""
    if split not in SPLITS:
        raise TrainingInputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    model = ConversionModel(model_dir)
    meta = _meta(model_dir)
    data = read_labelled(data_path, model.spec, min_rows=2)
    trained_on_this = meta.get("data_sha256") == sha256_file(data_path)
    if split == "auto":
        split = "holdout" if trained_on_this else "all"
    if split == "holdout" and not trained_on_this:
        raise TrainingInputError(
            f"--split holdout needs the file {model.version} was trained on "
            f"({meta.get('data_path', 'unknown')}); {data_path} differs (sha256)")
    rows = holdout_rows(meta, data.y) if split == "holdout" else np.arange(len(data.y))
    y = data.y[rows]
    if y.min() == y.max():
        raise TrainingInputError(f"{data_path}: the {split} rows hold only one outcome; "
                                 "ROC AUC needs both")
    p = model.predict_matrix(model.spec.encode([data.rows[i] for i in rows]))
    return {
        "kind": "conversion", "version": model.version, "spec": model.spec.name,
        "calibration": model.calibrator.method, "data": str(data_path), "split": split,
        "n": int(len(rows)), **probability_metrics(y, p), "ece_binning": ECE_BINNING,
        "reliability": reliability_table(y, p),
    }


def _meta(model_dir: Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / "meta.json").read_text())
