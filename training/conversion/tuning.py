"""Hyper-parameters of the conversion booster, chosen by stratified k-fold cross-validation.

For each candidate in the grid, `xgboost.cv` trains on k-1 folds of the training rows and
scores the k-th, adding trees until the mean validation AUC over the folds has not risen
for `EARLY_STOPPING` rounds; the candidate's figure is that best mean AUC, its tree count
the round it was reached at. The best candidate (ties: the earlier, simpler one) is then
trained once on all training rows with that tree count. No single split decides either
the candidate or the tree count, and the held-out test and calibration rows take no part.

The grid is small on purpose (a 2-core CPU trains it in well under a minute on 23 000
rows); the wider search that chose it is in docs/training.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BASE_PARAMS", "DEFAULT_GRID", "EARLY_STOPPING", "CvResult", "cross_validate"]

#: shared by every candidate; one thread: on a shared 2-core machine two XGBoost threads
#: were ten times slower than one (they fight the other processes for the cores)
BASE_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic", "eval_metric": "auc", "eta": 0.05, "subsample": 0.8,
    "colsample_bytree": 0.8, "lambda": 1.0, "tree_method": "hist", "nthread": 1,
}
#: candidates: tree depth (a leaf's smallest hessian weight, 5, won at every depth of the
#: wider search in docs/training.md)
DEFAULT_GRID: tuple[dict[str, Any], ...] = tuple(
    {"max_depth": depth, "min_child_weight": 5} for depth in (3, 4, 5, 6))
EARLY_STOPPING = 50


@dataclass(frozen=True)
class CvResult:
    """One candidate's cross-validated figure."""

    params: dict[str, Any]
    auc_mean: float
    auc_std: float
    rounds: int

    def to_json(self) -> dict[str, Any]:
        return {**self.params, "cv_auc_mean": round(self.auc_mean, 4),
                "cv_auc_std": round(self.auc_std, 4), "rounds": self.rounds}


def cross_validate(x: np.ndarray, y: np.ndarray, feature_names: list[str], *, seed: int,
                   folds: int = 5, max_rounds: int = 1000,
                   grid: tuple[dict[str, Any], ...] = DEFAULT_GRID) -> tuple[CvResult, list[CvResult]]:
    """The best candidate and every candidate's result, best first."""
    import xgboost as xgb  # heavy: loads xgboost

    data = xgb.DMatrix(x, label=y, feature_names=feature_names)
    results = []
    for candidate in grid:
        params = {**BASE_PARAMS, **candidate, "seed": seed}
        table = xgb.cv(params, data, num_boost_round=max_rounds, nfold=folds, stratified=True,
                       early_stopping_rounds=EARLY_STOPPING, seed=seed, as_pandas=False)
        means, stds = table["test-auc-mean"], table["test-auc-std"]
        best = int(np.argmax(means))
        results.append(CvResult(dict(candidate), float(means[best]), float(stds[best]), best + 1))
    ranked = sorted(results, key=lambda r: -r.auc_mean)
    return ranked[0], ranked
