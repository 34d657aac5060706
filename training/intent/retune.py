"""Re-tune the out-of-scope threshold of a trained intent version into a new version.

Versions are immutable (a serving replica may have one loaded), so a better threshold is
published as a new version that shares the weights (hard links when the file system
allows, else copies) and records ``derived_from``. The threshold is tuned on the same
validation split the version was trained with (re-carved from its meta.json; the data
file must be the one it was trained on), never on the reported split.

    callfleet train intent --data clinc150_train_val.json --retune-from v0002
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from training.errors import TrainingInputError
from training.intent.data import carve_splits, read_intent_file
from training.intent.evaluate import classifier_probs
from training.intent.scoring import decide, score_predictions, tune_oos_threshold
from training.models.registry import META_FILE, ModelRegistry, VersionInfo, sha256_file

__all__ = ["retune_threshold"]


def retune_threshold(
    registry: ModelRegistry,
    version: str,
    data_path: str | os.PathLike,
    max_in_scope_rejection: float = 0.02,
    promote: bool = False,
) -> VersionInfo:
    """Commit a copy of `version` whose ``oos_threshold`` is re-tuned; return it."""
    from training.models.intent import IntentClassifier  # heavy: loads torch

    started = time.perf_counter()
    source = registry.get("intent", version)
    meta, config = source.meta, dict(source.meta.get("training_config") or {})
    data_path = Path(data_path)
    if meta.get("data_sha256") != sha256_file(data_path):
        raise TrainingInputError(
            f"intent {source.version} was trained on {meta.get('data_path')}; {data_path} differs, "
            "so its validation split cannot be re-carved"
        )
    data = read_intent_file(data_path)
    splits = carve_splits(data.train.labels, float(config["validation"]),
                          float(config["holdout"]), int(config["seed"]))
    val, hold = data.train.subset(splits.validation), data.train.subset(splits.holdout)
    classifier = IntentClassifier(source.path, backend="auto", cpu_threads=2)
    labels = classifier.labels
    threshold, _ = tune_oos_threshold(classifier_probs(classifier, val.texts), labels, val.labels,
                                      max_in_scope_rejection)
    if threshold is None:
        raise TrainingInputError(f"{data_path}: the validation split has no out-of-scope rows to tune on")
    metrics: dict[str, Any] = {k: v for k, v in source.metrics.items()
                               if not k.startswith(("val_", "holdout_", "eval_"))}
    for name, part in (("val", val), ("holdout", hold), ("eval", data.evaluation)):
        if part is not None and len(part):
            probs = classifier_probs(classifier, part.texts)
            scores = score_predictions(part.labels, decide(probs, labels, threshold))
            metrics.update({f"{name}_{k}": (round(v, 4) if isinstance(v, float) else v)
                            for k, v in scores.items()})
    metrics["oos_threshold"] = threshold
    metrics["retune_seconds"] = round(time.perf_counter() - started, 1)
    with registry.stage("intent") as staged:
        staging = staged.path
        for item in source.path.iterdir():
            if item.is_file() and item.name != META_FILE:
                _link_or_copy(item, staging / item.name)
        new_meta = {k: v for k, v in meta.items() if k not in ("version", "kind", "created_at")}
        new_meta.update({
            "oos_threshold": threshold,
            "metrics": metrics,
            "derived_from": source.version,
            "training_config": {**config, "oos_max_in_scope_rejection": max_in_scope_rejection},
        })
        return staged.commit(new_meta, promote=promote, promote_if_first=False)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
