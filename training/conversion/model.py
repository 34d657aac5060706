"""Lead-conversion model: XGBoost on campaign and customer features, registered as kind
``conversion``, loaded by the dialer through `ConversionModel.predict(lead) -> float`.

Features are encoded by a spec stored with the model (``features.json``): one-hot
columns for the categorical features (an unknown value is all zeros, i.e. "none of the
known ones"), numbers as floats with empty/missing as NaN, which XGBoost routes by the
default direction it learned. The booster is saved in XGBoost's JSON format (no pickle).

Evaluation on a stratified, seeded 20 % test split: ROC AUC, Brier score, log loss, and a
10-bin reliability table (mean predicted vs observed rate per bin) drawn as
``calibration.png`` in the version folder. Early stopping uses a validation split carved
from the training part, never the test split.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from training.conversion.data import CATEGORIES, NUMERIC
from training.errors import TrainingInputError
from training.models.registry import ModelNotFoundError, ModelRegistry, VersionInfo, sha256_file

__all__ = ["ConversionModel", "encode_leads", "reliability_table", "train_conversion"]

KIND = "conversion"
MODEL_FILE = "model.json"
FEATURES_FILE = "features.json"
TARGET = "converted"
PARAMS = {
    "objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 4, "eta": 0.05,
    "subsample": 0.9, "colsample_bytree": 0.9, "min_child_weight": 5, "lambda": 1.0,
    "tree_method": "hist", "nthread": 2,
}


def _spec(categories: Mapping[str, tuple[str, ...]] = CATEGORIES) -> dict[str, Any]:
    return {"categorical": {k: list(v) for k, v in categories.items()}, "numeric": list(NUMERIC)}


def feature_names(spec: dict[str, Any]) -> list[str]:
    names = [f"{k}={v}" for k, values in spec["categorical"].items() for v in values]
    return names + list(spec["numeric"])


def encode_leads(leads: list[Mapping[str, Any]], spec: dict[str, Any]) -> np.ndarray:
    """Feature matrix (rows = leads) in `feature_names(spec)` order."""
    names = feature_names(spec)
    column = {name: i for i, name in enumerate(names)}
    x = np.zeros((len(leads), len(names)), dtype=np.float32)
    for row, lead in enumerate(leads):
        for key in spec["categorical"]:
            j = column.get(f"{key}={lead.get(key)}")
            if j is not None:
                x[row, j] = 1.0
        for key in spec["numeric"]:
            x[row, column[key]] = _number(lead.get(key))
    return x


def _number(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_leads(path: str | os.PathLike) -> tuple[list[dict[str, str]], np.ndarray]:
    """Rows and 0/1 targets of a leads CSV; raises TrainingInputError naming the problem."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in (*CATEGORIES, *NUMERIC, TARGET) if c not in (reader.fieldnames or [])]
        if missing:
            raise TrainingInputError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join((*CATEGORIES, *NUMERIC, TARGET))} "
                "(generate an example with: callfleet train conversion --generate-sample FILE)"
            )
        rows = list(reader)
    bad = [i + 2 for i, r in enumerate(rows) if r[TARGET].strip() not in ("0", "1")]
    if bad:
        raise TrainingInputError(f"{path}: '{TARGET}' must be 0 or 1 (lines {bad[:5]})")
    y = np.array([int(r[TARGET]) for r in rows], dtype=np.int32)
    if len(rows) < 100 or y.min() == y.max():
        raise TrainingInputError(f"{path}: need at least 100 rows with both outcomes, got {len(rows)}")
    return rows, y


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins: count, mean predicted probability, observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "count": int(mask.sum()),
                          "mean_predicted": round(float(p[mask].mean()), 4),
                          "observed_rate": round(float(y[mask].mean()), 4)})
    return table


def _calibration_png(table: list[dict[str, float]], path: Path, title: str) -> None:

    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    xs = [r["mean_predicted"] for r in table]
    ys = [r["observed_rate"] for r in table]
    ax.plot(xs, ys, marker="o", label="model")
    for r in table:
        ax.annotate(str(r["count"]), (r["mean_predicted"], r["observed_rate"]), fontsize=7,
                    textcoords="offset points", xytext=(4, -10))
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability",
           ylabel="observed conversion rate", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_conversion(
    registry: ModelRegistry, data_path: str | os.PathLike, *, seed: int = 0, promote: bool = False,
    rounds: int = 600,
) -> VersionInfo:
    """Train, evaluate and commit a ``conversion`` version; returns it."""
    import xgboost as xgb  # heavy: loads xgboost
    from sklearn.metrics import (  # heavy: loads sklearn
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )
    from sklearn.model_selection import train_test_split  # heavy: loads sklearn

    started = time.perf_counter()
    data_path = Path(data_path)
    rows, y = read_leads(data_path)
    spec = _spec()
    x = encode_leads(rows, spec)
    idx = np.arange(len(rows))
    fit_idx, test_idx = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    train_idx, val_idx = train_test_split(fit_idx, test_size=0.15, stratify=y[fit_idx], random_state=seed)
    names = feature_names(spec)
    dtrain = xgb.DMatrix(x[train_idx], label=y[train_idx], feature_names=names)
    dval = xgb.DMatrix(x[val_idx], label=y[val_idx], feature_names=names)
    booster = xgb.train({**PARAMS, "seed": seed}, dtrain, num_boost_round=rounds,
                        evals=[(dval, "validation")], early_stopping_rounds=40, verbose_eval=False)
    best = booster.best_iteration + 1
    p = booster.predict(xgb.DMatrix(x[test_idx], feature_names=names), iteration_range=(0, best))
    y_test = y[test_idx]
    table = reliability_table(y_test, p)
    with registry.stage(KIND) as staged:
        version, staging = staged.version, staged.path
        booster.save_model(str(staging / MODEL_FILE))
        (staging / FEATURES_FILE).write_text(json.dumps({**spec, "best_iteration": best}, indent=1) + "\n")
        _calibration_png(table, staging / "calibration.png", f"conversion {version} (test split)")
        importance = booster.get_score(importance_type="gain")
        top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
        meta = {
            "base_model": f"xgboost {xgb.__version__} gradient-boosted trees",
            "label_map": {"0": "not_converted", "1": "converted"},
            "metrics": {
                "test_auc": round(float(roc_auc_score(y_test, p)), 4),
                "test_brier": round(float(brier_score_loss(y_test, p)), 4),
                "test_log_loss": round(float(log_loss(y_test, p)), 4),
                "test_base_rate": round(float(y_test.mean()), 4),
                "test_mean_predicted": round(float(p.mean()), 4),
                "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
                "trees": best,
                "reliability": table,
                "top_features_gain": {k: round(v, 2) for k, v in top},
                "build_seconds": round(time.perf_counter() - started, 1),
            },
            "training_config": {**PARAMS, "seed": seed, "max_rounds": rounds,
                                "early_stopping_rounds": 40, "test_fraction": 0.2,
                                "val_fraction_of_train": 0.15},
            "data_sha256": sha256_file(data_path),
            "data_path": str(data_path.resolve()),
            "synthetic_data": any(r.get("synthetic") == "true" for r in rows[:100]),
        }
        return staged.commit(meta, promote=promote)


class ConversionModel:
    """A loaded conversion version: `predict(lead)` is the probability the lead converts.

    `lead` is a mapping with the feature names of `training.conversion.data` (extra keys
    such as the phone number are ignored and never logged; missing ones count as unknown).
    """

    def __init__(self, model_dir: str | os.PathLike):
        import xgboost as xgb  # heavy: loads xgboost

        model_dir = Path(model_dir)
        if not (model_dir / MODEL_FILE).is_file():

            raise ModelNotFoundError(f"{model_dir} holds no conversion model ({MODEL_FILE})")
        spec = json.loads((model_dir / FEATURES_FILE).read_text())
        self.spec = spec
        self.version = model_dir.name
        self._best = int(spec.get("best_iteration", 0))
        self._booster = xgb.Booster(params={"nthread": 1})
        self._booster.load_model(str(model_dir / MODEL_FILE))

    @classmethod
    def from_registry(cls, registry: ModelRegistry, version: str = "current") -> ConversionModel:
        return cls(registry.get(KIND, version).path)

    def predict_many(self, leads: list[Mapping[str, Any]]) -> list[float]:
        if not leads:
            return []
        x = encode_leads(leads, self.spec)
        p = self._booster.inplace_predict(x, iteration_range=(0, self._best) if self._best else (0, 0))
        return [float(v) for v in np.asarray(p)]

    def predict(self, lead: Mapping[str, Any]) -> float:
        return self.predict_many([lead])[0]
