"""Probability calibration and the figures that judge predicted probabilities.

A `Calibrator` maps the booster's raw probability to a calibrated one. It is fitted on a
calibration split the booster never trained on and stored as plain JSON
(``calibration.json`` in the version folder, no pickle):

* ``isotonic`` — a monotone step function (scikit-learn's `IsotonicRegression`), stored as
  its breakpoints and applied by linear interpolation between them, which is what
  `IsotonicRegression.predict` does; outside the breakpoints the end values hold;
* ``platt`` — a logistic curve on the raw log-odds, ``sigmoid(a * logit(p) + b)``; keeps
  every difference in ranking;
* ``none`` — the raw probability.

Expected calibration error (`expected_calibration_error`): predictions are put in bins,
and the bins' ``|mean predicted - observed rate|`` are averaged weighted by their share of
rows. ``uniform`` binning = 10 equal-width bins on [0, 1] (the headline ``ece``);
``quantile`` = 10 bins holding equal numbers of rows (``ece_quantile``), which resolves the
low-probability range where most leads of an 11 % base rate lie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CALIBRATION_METHODS",
    "ECE_BINNING",
    "Calibrator",
    "expected_calibration_error",
    "probability_metrics",
    "reliability_table",
]

CALIBRATION_METHODS = ("isotonic", "platt", "none")
ECE_BINNING = "10 equal-width bins on [0, 1], weighted by rows per bin"
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """Raw probability -> calibrated probability; see the module docstring."""

    method: str = "none"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression  # heavy: loads sklearn
        from sklearn.linear_model import LogisticRegression  # heavy: loads sklearn

        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration {method!r}; use one of {', '.join(CALIBRATION_METHODS)}")
        if method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
            return cls("isotonic", {"x": [round(float(v), 7) for v in iso.X_thresholds_],
                                    "y": [round(float(v), 7) for v in iso.y_thresholds_]})
        if method == "platt":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
            return cls("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
        return cls()

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(p, self.params["x"], self.params["y"])
        if self.method == "platt":
            z = self.params["a"] * _logit(p) + self.params["b"]
            return 1.0 / (1.0 + np.exp(-z))
        return p

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, **self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        method = data.get("method", "none")
        return cls(method, {k: v for k, v in data.items() if k != "method"})


def _bins(p: np.ndarray, bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, bins + 1))
    else:
        raise ValueError(f"unknown binning {strategy!r}; use uniform or quantile")
    return np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10,
                               strategy: str = "uniform") -> float:
    """Row-weighted mean of |mean predicted - observed rate| over `bins` bins."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    which = _bins(p, bins, strategy)
    total = 0.0
    for b in np.unique(which):
        mask = which == b
        total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(p)) if len(p) else math.nan


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins: count, mean predicted probability, observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = _bins(np.asarray(p), bins, "uniform")
    table = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "count": int(mask.sum()),
                          "mean_predicted": round(float(p[mask].mean()), 4),
                          "observed_rate": round(float(y[mask].mean()), 4)})
    return table


def probability_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), ECE (both binnings), Brier, log loss, rates."""
    from sklearn.metrics import (  # heavy: loads sklearn
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if both else math.nan,
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both else math.nan,
        "ece": round(expected_calibration_error(y, p), 4),
        "ece_quantile": round(expected_calibration_error(y, p, strategy="quantile"), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "log_loss": round(float(log_loss(y, np.clip(p, _EPS, 1 - _EPS), labels=[0, 1])), 4),
        "base_rate": round(float(y.mean()), 4),
        "mean_predicted": round(float(p.mean()), 4),
    }
