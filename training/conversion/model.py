"""Lead-conversion model: XGBoost on the features a `FeatureSpec` names, calibrated,
registered as kind ``conversion`` and loaded by the dialer through
`ConversionModel.predict(lead) -> float`.

A build reads a labelled leads file under its spec (`training.conversion.features`;
``auto`` picks the spec from the header) and carves three stratified, seeded splits
(`carve_splits`):

* **test** (20 %): never trained or tuned on; every ``test_*`` metric is measured here, and
  `callfleet eval conversion --split holdout` re-carves exactly these rows;
* **calibration** (20 % of the rest): the calibrator (`training.conversion.calibration`,
  Platt scaling by default) is fitted on the booster's raw probabilities for these rows;
* **training** (the other 64 %): k-fold cross-validation over a small grid chooses the
  tree depth and the number of trees (`training.conversion.tuning`), then the booster is
  trained on all of it.

The version folder holds ``model.json`` (XGBoost's JSON format, no pickle),
``features.json`` (the spec and the tree count), ``calibration.json`` and
``calibration.png`` (the test split's reliability diagram, calibrated).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from training.conversion.calibration import (
    CALIBRATION_METHODS,
    Calibrator,
    probability_metrics,
    reliability_table,
)
from training.conversion.features import FeatureSpec, read_labelled
from training.conversion.tuning import BASE_PARAMS, DEFAULT_GRID, EARLY_STOPPING, cross_validate
from training.errors import TrainingInputError
from training.models.registry import ModelNotFoundError, ModelRegistry, VersionInfo, sha256_file

__all__ = ["ConversionModel", "carve_splits", "encode_leads", "reliability_table",
           "train_conversion"]

KIND = "conversion"
MODEL_FILE = "model.json"
FEATURES_FILE = "features.json"
CALIBRATION_FILE = "calibration.json"
TEST_FRACTION = 0.2
CALIBRATION_FRACTION = 0.2


def encode_leads(leads: Sequence[Mapping[str, Any]], spec: dict[str, Any] | FeatureSpec) -> np.ndarray:
    """Feature matrix (rows = leads) for a spec or its stored JSON form."""
    spec = spec if isinstance(spec, FeatureSpec) else FeatureSpec.from_json(spec)
    return spec.encode(leads)


def carve_splits(y: np.ndarray, seed: int, test_fraction: float = TEST_FRACTION,
                 calibration_fraction: float = CALIBRATION_FRACTION):
    """Row indices of the training, calibration and test splits (stratified, seeded)."""
    from sklearn.model_selection import train_test_split  # heavy: loads sklearn

    idx = np.arange(len(y))
    fit_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train_idx, calib_idx = train_test_split(fit_idx, test_size=calibration_fraction,
                                            stratify=y[fit_idx], random_state=seed)
    return train_idx, calib_idx, test_idx


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
    registry: ModelRegistry, data_path: str | os.PathLike, *, spec: str = "auto", seed: int = 0,
    promote: bool = False, rounds: int = 1000, calibration: str = "platt", folds: int = 5,
    grid: tuple[dict[str, Any], ...] = DEFAULT_GRID,
) -> VersionInfo:
    """Train, calibrate, evaluate and commit a ``conversion`` version; returns it.

    `rounds` caps the trees cross-validation may choose; `folds` is k of the k-fold CV.
    """
    import xgboost as xgb  # heavy: loads xgboost

    if calibration not in CALIBRATION_METHODS:
        raise TrainingInputError(f"unknown calibration {calibration!r}; use one of "
                                 f"{', '.join(CALIBRATION_METHODS)}")
    if folds < 2:
        raise TrainingInputError(f"--folds must be at least 2, got {folds}")
    started = time.perf_counter()
    data_path = Path(data_path)
    data = read_labelled(data_path, spec)
    y = data.y
    x = data.spec.encode(data.rows)
    names = data.spec.feature_names()
    train_idx, calib_idx, test_idx = carve_splits(y, seed)
    best, ranked = cross_validate(x[train_idx], y[train_idx], names, seed=seed, folds=folds,
                                  max_rounds=rounds, grid=grid)
    params = {**BASE_PARAMS, **best.params, "seed": seed}
    booster = xgb.train(params, xgb.DMatrix(x[train_idx], label=y[train_idx], feature_names=names),
                        num_boost_round=best.rounds)

    def raw(idx: np.ndarray) -> np.ndarray:
        return booster.predict(xgb.DMatrix(x[idx], feature_names=names))

    calibrator = Calibrator.fit(raw(calib_idx), y[calib_idx], calibration)
    p_raw = raw(test_idx)
    p = calibrator.apply(p_raw)
    y_test = y[test_idx]
    test = probability_metrics(y_test, p)
    table = reliability_table(y_test, p)
    with registry.stage(KIND) as staged:
        version, staging = staged.version, staged.path
        booster.save_model(str(staging / MODEL_FILE))
        stored = {**data.spec.to_json(), "best_iteration": best.rounds}
        (staging / FEATURES_FILE).write_text(json.dumps(stored, indent=1) + "\n")
        (staging / CALIBRATION_FILE).write_text(json.dumps(calibrator.to_json()) + "\n")
        _calibration_png(table, staging / "calibration.png", f"conversion {version} (test split)")
        importance = booster.get_score(importance_type="gain")
        top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
        meta = {
            "base_model": f"xgboost {xgb.__version__} gradient-boosted trees, {calibration} calibration",
            "label_map": {"0": "not_converted", "1": "converted"},
            "metrics": {
                **{f"test_{k.removeprefix('roc_')}": v for k, v in test.items()},
                "test_uncalibrated": probability_metrics(y_test, p_raw),
                "cv_auc_mean": round(best.auc_mean, 4), "cv_auc_std": round(best.auc_std, 4),
                "cv_candidates": [r.to_json() for r in ranked],
                "n_train": len(train_idx), "n_calibration": len(calib_idx), "n_test": len(test_idx),
                "trees": best.rounds,
                "reliability": table,
                "top_features_gain": {k: round(v, 2) for k, v in top},
                "build_seconds": round(time.perf_counter() - started, 1),
            },
            "training_config": {**params, "spec": data.spec.name, "features": data.spec.columns[:-1],
                                "post_call_excluded": list(data.spec.post_call),
                                "max_rounds": rounds, "cv_folds": folds,
                                "cv_early_stopping_rounds": EARLY_STOPPING, "grid": list(grid),
                                "calibration": calibration, "test_fraction": TEST_FRACTION,
                                "calibration_fraction_of_rest": CALIBRATION_FRACTION},
            "data_sha256": sha256_file(data_path),
            "data_path": str(data_path.resolve()),
            "synthetic_data": any(r.get("synthetic") == "true" for r in data.rows[:100]),
        }
        return staged.commit(meta, promote=promote)


class ConversionModel:
    """A loaded conversion version: `predict(lead)` is the calibrated probability that the
    lead converts.

    `lead` is a mapping with the column names of the version's feature spec (extra keys
    such as the phone number are ignored and never logged; missing ones count as unknown).
    Versions built before calibration existed return the booster's raw probability.
    """

    def __init__(self, model_dir: str | os.PathLike):
        import xgboost as xgb  # heavy: loads xgboost

        model_dir = Path(model_dir)
        if not (model_dir / MODEL_FILE).is_file():
            raise ModelNotFoundError(f"{model_dir} holds no conversion model ({MODEL_FILE})")
        stored = json.loads((model_dir / FEATURES_FILE).read_text())
        self.spec = FeatureSpec.from_json(stored)
        self.version = model_dir.name
        self._best = int(stored.get("best_iteration", 0))
        calibration = model_dir / CALIBRATION_FILE
        self.calibrator = (Calibrator.from_json(json.loads(calibration.read_text()))
                           if calibration.is_file() else Calibrator())
        self._booster = xgb.Booster(params={"nthread": 1})
        self._booster.load_model(str(model_dir / MODEL_FILE))

    @classmethod
    def from_registry(cls, registry: ModelRegistry, version: str = "current") -> ConversionModel:
        return cls(registry.get(KIND, version).path)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probabilities for an encoded feature matrix."""
        return np.asarray(self._booster.inplace_predict(
            x, iteration_range=(0, self._best) if self._best else (0, 0)), dtype=np.float64)

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for an encoded feature matrix."""
        return self.calibrator.apply(self.predict_raw(x)) if len(x) else np.zeros(0)

    def predict_many(self, leads: Sequence[Mapping[str, Any]]) -> list[float]:
        if not leads:
            return []
        return [float(v) for v in self.predict_matrix(self.spec.encode(leads))]

    def predict(self, lead: Mapping[str, Any]) -> float:
        return self.predict_many([lead])[0]
