"""Score intent predictions the way the bot acts on them, and write the reports.

Out of scope (OOS) is decided as in serving (`training.models.intent`): the top class
is `OOS_LABEL`, or its probability is below the version's threshold. The threshold is
tuned on the validation split carved from the training rows (`tune_oos_threshold`), never
on the split that is reported.

Figures: ``accuracy`` counts a row right when the final decision (an intent, or
out of scope) equals the gold label; ``in_scope_accuracy`` and ``oos_recall`` are the
CLINC150 paper's two numbers (in-scope rows answered with the right intent; out-of-scope
rows flagged).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from training.intent.data import OOS_LABEL

__all__ = [
    "decide",
    "score_predictions",
    "tune_oos_threshold",
    "write_confusion_png",
    "write_per_class_report",
]


def decide(probs: np.ndarray, labels: Sequence[str], threshold: float | None) -> list[str]:
    """Final labels: argmax, replaced by `OOS_LABEL` when the top probability < threshold."""
    top = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= (threshold or 0.0)
    return [labels[k] if ok else OOS_LABEL for k, ok in zip(top, confident, strict=True)]


def score_predictions(
    gold: Sequence[str], predicted: Sequence[str], *, oos_label: str = OOS_LABEL
) -> dict[str, Any]:
    """accuracy, macro_f1 (over the gold and predicted classes), n; plus in-scope accuracy,
    OOS recall and precision when the gold labels contain out-of-scope rows."""
    from sklearn.metrics import f1_score  # heavy: loads sklearn

    gold_arr, pred_arr = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    if len(gold_arr) != len(pred_arr):
        raise ValueError(f"{len(gold_arr)} gold labels but {len(pred_arr)} predictions")
    if len(gold_arr) == 0:
        raise ValueError("nothing to score: no rows")
    result: dict[str, Any] = {
        "accuracy": float(np.mean(gold_arr == pred_arr)),
        "macro_f1": float(f1_score(list(gold_arr), list(pred_arr), average="macro", zero_division=0)),
        "n": int(len(gold_arr)),
    }
    is_oos = gold_arr == oos_label
    if is_oos.any():
        flagged = pred_arr == oos_label
        result["oos_recall"] = float(np.mean(flagged[is_oos]))
        result["oos_precision"] = float(np.mean(is_oos[flagged])) if flagged.any() else 0.0
        result["n_oos"] = int(is_oos.sum())
        if (~is_oos).any():
            result["in_scope_accuracy"] = float(np.mean(gold_arr[~is_oos] == pred_arr[~is_oos]))
    return result


def tune_oos_threshold(
    probs: np.ndarray, labels: Sequence[str], gold: Sequence[str],
    max_in_scope_rejection: float = 0.02,
) -> tuple[float | None, dict[str, Any]]:
    """Threshold on the top probability for the out-of-scope decision.

    The highest threshold that flags at most `max_in_scope_rejection` of the in-scope
    validation rows as out of scope (on top of those the ``oos`` class already takes): a
    fixed false-rejection budget, spent entirely to catch as many off-topic requests as
    it can. The budget is estimated on the many in-scope rows, so it holds on new data;
    the few out-of-scope validation rows (CLINC150: 8) are far too few to trade against
    in-scope accuracy directly — maximising accuracy + OOS recall on them lets one row
    decide the threshold. Returns (None, {}) when `gold` has no out-of-scope rows (nothing
    to tune on; serving keeps its configured value); else the threshold and its scores.
    """
    gold_arr = np.asarray(gold, dtype=object)
    is_oos = gold_arr == OOS_LABEL
    if not is_oos.any() or is_oos.all():
        return None, {}
    candidates = np.unique(np.r_[np.linspace(0.0, 0.99, 100), probs.max(axis=1)])
    floor = None
    best_t, best_scores = 0.0, {}
    for t in candidates:  # ascending: rejections only grow
        decided = decide(probs, labels, float(t))
        rejected = float(np.mean(np.asarray(decided, dtype=object)[~is_oos] == OOS_LABEL))
        floor = rejected if floor is None else floor
        if rejected > floor + max_in_scope_rejection + 1e-12:
            break
        best_t = float(t)
        best_scores = {**score_predictions(gold, decided), "in_scope_rejected": rejected}
    return round(best_t, 4), best_scores


def write_per_class_report(
    gold: Sequence[str], predicted: Sequence[str], out_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """``per_class.csv`` and ``per_class.json``: precision, recall, F1 and support per intent."""
    from sklearn.metrics import precision_recall_fscore_support  # heavy: loads sklearn

    classes = sorted(set(gold) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        list(gold), list(predicted), labels=classes, zero_division=0
    )
    rows = [
        {"class": c, "precision": round(float(p), 4), "recall": round(float(r), 4),
         "f1": round(float(f), 4), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "per_class.csv", out / "per_class.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return csv_path, json_path


def write_confusion_png(
    gold: Sequence[str], predicted: Sequence[str], path: str | os.PathLike, title: str
) -> Path:
    """Row-normalised confusion matrix; for many classes a large figure without cell numbers."""

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    from sklearn.metrics import confusion_matrix  # heavy: loads sklearn

    classes = sorted(set(gold) | set(predicted))
    matrix = confusion_matrix(list(gold), list(predicted), labels=classes).astype(float)
    matrix /= np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    n = len(classes)
    size = min(40.0, max(6.0, 0.22 * n + 3))
    font = 10 if n <= 20 else max(3.0, 9 - n / 25)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j] >= 0.005:
                    colour = "white" if matrix[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center",
                            fontsize=font - 2, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="share of the true class")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
