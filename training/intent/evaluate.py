"""`callfleet eval intent`: score a version on a data file through the serving engine.

The rows are chosen by ``--split``: ``holdout`` re-carves the split the version was
trained without (same seed and fractions from its meta.json, and the file must be the
one it was trained on — checked by sha256); ``val`` is the file's own evaluation split
(CLINC150 ``val`` + ``oos_val``); ``all`` is every row. Predictions go through
`training.models.intent.IntentClassifier` (torch or ONNX), i.e. what serving does,
with the version's tuned out-of-scope threshold.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import TrainingInputError
from training.intent.data import LabelledTexts, carve_splits, read_intent_file
from training.intent.scoring import (
    decide,
    score_predictions,
    write_confusion_png,
    write_per_class_report,
)
from training.models.registry import ModelRegistry, sha256_file

__all__ = ["classifier_probs", "evaluate_intent", "resolve_model_dir", "select_rows"]

SPLITS = ("auto", "holdout", "val", "all")


def resolve_model_dir(value: str | os.PathLike, kind: str) -> Path:
    """A version folder as given, or the current `kind` version of a registry root."""
    path = Path(value).expanduser()
    if (path / "meta.json").is_file():
        return path
    if (path / kind).is_dir():
        return ModelRegistry(path).get(kind).path
    raise TrainingInputError(
        f"--model {path} is neither a model version folder (with meta.json) nor a registry "
        f"root with a {kind}/ folder"
    )


def select_rows(meta: dict[str, Any], data_path: Path, split: str) -> tuple[LabelledTexts, str]:
    """The rows to score and the name of the split actually used."""
    if split not in SPLITS:
        raise TrainingInputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    data = read_intent_file(data_path)
    trained_on_this = meta.get("data_sha256") == sha256_file(data_path)
    config = meta.get("training_config") or {}
    if split == "auto":
        if data.evaluation is not None:
            split = "val"
        elif trained_on_this and config.get("holdout"):
            split = "holdout"
        else:
            split = "all"
    if split == "val":
        if data.evaluation is None:
            raise TrainingInputError(
                f"{data_path} has no evaluation split of its own (only CLINC150-style JSON has "
                "'val'); use --split holdout or --split all"
            )
        return data.evaluation, split
    if split == "all":
        extra = data.evaluation or LabelledTexts([], [])
        return LabelledTexts(data.train.texts + extra.texts, data.train.labels + extra.labels), split
    if not trained_on_this:
        raise TrainingInputError(
            f"--split holdout needs the exact file the version was trained on "
            f"({meta.get('data_path', 'unknown')}, sha256 {str(meta.get('data_sha256'))[:12]}); "
            f"{data_path} differs"
        )
    if not config.get("holdout"):
        raise TrainingInputError(
            "this version was trained without a held-out split (holdout 0); use --split val or all"
        )
    splits = carve_splits(data.train.labels, float(config["validation"]), float(config["holdout"]),
                          int(config["seed"]))
    return data.train.subset(splits.holdout), split


def evaluate_intent(
    model_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    *,
    split: str = "auto",
    backend: str = "auto",
    report_dir: Path | None = None,
    cpu_threads: int = 2,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Score the version in `model_dir`; write per-class report + confusion PNG; return the
    summary (accuracy, macro_f1, n, and in_scope_accuracy / oos_recall when OOS rows exist)."""
    from training.models.intent import IntentClassifier  # heavy: loads torch

    started = time.perf_counter()
    model_dir, data_path = Path(model_dir), Path(data_path)
    meta = json.loads((model_dir / "meta.json").read_text())
    rows, used_split = select_rows(meta, data_path, split)
    if not len(rows):
        raise TrainingInputError(f"split {used_split!r} of {data_path} has no rows")
    classifier = IntentClassifier(model_dir, backend=backend, cpu_threads=cpu_threads)  # type: ignore[arg-type]
    threshold = meta.get("oos_threshold")  # None: plain argmax (the oos class may still win)
    probs = classifier_probs(classifier, rows.texts, batch_size)
    predicted = decide(probs, classifier.labels, threshold)
    scores = score_predictions(rows.labels, predicted)
    version = meta.get("version", model_dir.name)
    out = report_dir or Path("var") / "eval" / f"intent-{version}-{_slug(data_path.stem)}-{used_split}"
    csv_path, json_path = write_per_class_report(rows.labels, predicted, out)
    png = write_confusion_png(rows.labels, predicted, out / "confusion.png",
                              f"intent {version} on {data_path.name} ({used_split}, n={len(rows)})")
    unknown = sorted(set(rows.labels) - set(classifier.labels))
    result = {
        "version": version,
        "model": str(model_dir),
        "data": str(data_path),
        "split": used_split,
        "backend": classifier.backend,
        "oos_threshold": threshold,
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()},
        "unknown_labels": unknown[:20],
        "report_dir": str(out),
        "files": [str(csv_path), str(json_path), str(png)],
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def classifier_probs(classifier, texts: list[str], batch_size: int = 128) -> np.ndarray:
    """`classifier.predict_proba` over many texts in length-sorted batches, in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    probs = np.zeros((len(texts), len(classifier.labels)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        probs[index] = classifier.predict_proba([texts[i] for i in index])
    return probs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:40] or "data"
