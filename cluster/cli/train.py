"""`callfleet train` and `callfleet eval` — build model versions and measure them.

    callfleet train intent --data FILE [--out DIR]       fine-tune an intent model
    callfleet train emotion [--data train.tsv] [--out DIR]
    callfleet train conversion --data FILE [--spec auto] [--out DIR]   calibrated XGBoost
    callfleet train conversion --generate-sample FILE    write synthetic demo leads
    callfleet eval intent --model DIR --data FILE [--split ...] [--json]
    callfleet eval emotion --model DIR [--data dev.tsv] [--json]
    callfleet eval conversion --model DIR --data FILE [--split ...] [--json]

``--out`` is the registry root (default: ``registry_path`` from the settings); every
build adds a version there. With ``--json`` the LAST line on stdout is one JSON object;
progress bars and messages go to stderr. Mistakes in what was asked (missing file, bad
format, unknown version) exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cluster.cli.common import console, model_registry, reports_errors
from training.conversion.calibration import CALIBRATION_METHODS
from training.conversion.data import write_sample
from training.conversion.evaluate import SPLITS as CONVERSION_SPLITS
from training.conversion.evaluate import evaluate_conversion
from training.conversion.features import SPECS
from training.conversion.model import train_conversion
from training.emotion.goemotions import default_goemotions_dir
from training.emotion.train import evaluate_emotion, train_emotion
from training.errors import USER_ERRORS, TrainingInputError
from training.intent.config import IntentTrainConfig
from training.intent.evaluate import evaluate_intent, resolve_model_dir
from training.intent.retune import retune_threshold
from training.progress import stage_bar

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval`` with their sub-commands to the top-level `subparsers`."""
    train = subparsers.add_parser(
        "train", help="train intent, emotion or conversion models into the registry",
        description="Train a model and add it to the registry as a new version (promoted "
        "only when none is current, or with --promote). See docs/training.md.",
    )
    kinds = train.add_subparsers(dest="train_kind", required=True, metavar="KIND")
    _add_train_intent(kinds)
    _add_train_emotion(kinds)
    _add_train_conversion(kinds)

    evaluate = subparsers.add_parser(
        "eval", help="evaluate a trained model version on a data file",
        description="Score a model version on labelled data; writes a per-class report and "
        "(intent) a confusion-matrix PNG; with --json the last stdout line is one JSON object.",
    )
    kinds = evaluate.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "intent", help="accuracy, macro-F1, OOS recall; per-class report and confusion matrix",
        description="Evaluate an intent version. --split holdout re-creates the exact held-out "
        "rows the version was trained without (same seed and fractions, from its meta.json).",
    )
    p.add_argument("--model", required=True, metavar="DIR",
                   help="a version folder (e.g. var/registry/intent/v0003) or a registry root "
                   "(its current intent version)")
    p.add_argument("--data", required=True, metavar="FILE",
                   help="CSV (text,category), JSONL, CLINC150 JSON or bot intents YAML")
    p.add_argument("--split", default="auto", choices=["auto", "holdout", "val", "all"],
                   help="holdout: the split carved at training; val: the file's own evaluation "
                   "split (CLINC150 val + oos_val); all: every row; auto (default): val when the "
                   "file has one, else holdout when the version was trained on this file, else all")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="inference backend (auto = ONNX when the version has model.onnx)")
    p.add_argument("--report-dir", metavar="DIR",
                   help="where per_class.csv/json and confusion.png go "
                   "(default var/eval/intent-<version>-<data>-<split>)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval_intent)

    p = kinds.add_parser(
        "emotion", help="macro-F1 and accuracy of an emotion version on GoEmotions-format data",
        description="Evaluate an emotion version on GoEmotions TSV (text, label ids, id) or a "
        "text<TAB>label sample file.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="version folder or registry root")
    p.add_argument("--data", metavar="FILE", help="default: GoEmotions dev.tsv (shared datasets)")
    p.add_argument("--report-dir", metavar="DIR", help="where per_class.csv/json go")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval_emotion)

    p = kinds.add_parser(
        "conversion", help="ROC AUC, PR AUC and calibration error of a conversion version",
        description="Score a conversion version on a labelled leads file (read under the "
        "version's own feature spec). ECE uses 10 equal-width probability bins, weighted by rows.",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="version folder or registry root")
    p.add_argument("--data", required=True, metavar="FILE", help="labelled leads CSV (',' or ';')")
    p.add_argument("--split", default="auto", choices=CONVERSION_SPLITS,
                   help="holdout: the test split carved at training (needs the training file); "
                   "all: every row; auto (default): holdout for the training file, else all")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval_conversion)


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR",
                   help="registry root to add the version to (default: registry_path from the settings)")
    p.add_argument("--promote", action="store_true", help="promote the new version even if one is current")
    p.add_argument("--json", action="store_true", help="print the new version's summary as one JSON line")


def _add_train_intent(kinds: argparse._SubParsersAction) -> None:

    d = IntentTrainConfig()
    p = kinds.add_parser(
        "intent", help="fine-tune MiniLM (or --base) on labelled utterances",
        description="Fine-tune a BERT-family encoder as an intent classifier: stratified seeded "
        "train/validation/held-out splits, early stopping on validation accuracy, OOS threshold "
        "tuned on validation. Runs in-process, or on Ray Train with --workers N (also under "
        "`ray job submit --working-dir . -- callfleet train intent ...`).",
    )
    p.add_argument("--data", required=True, metavar="FILE",
                   help="CSV (text,category), JSONL (text,label), CLINC150 JSON or bot intents YAML")
    _out_arg(p)
    p.add_argument("--base", metavar="PATH", help="local transformers model folder (default: MiniLM)")
    p.add_argument("--workers", type=int, metavar="N", help="train on N Ray Train CPU workers (gloo)")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster for --workers (default: RAY_ADDRESS or a local one)")
    p.add_argument("--storage-path", metavar="PATH",
                   help="Ray Train checkpoint storage every node can reach (NFS path or s3:// URI; "
                   "default ~/ray_results, fine for one machine)")
    p.add_argument("--onnx", action="store_true", help="also export model.onnx and check it against torch")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum epochs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--max-length", type=int, default=d.max_length, help=f"tokens (default {d.max_length})")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"epochs without validation gain before stopping (default {d.patience})")
    p.add_argument("--validation", type=float, default=d.validation,
                   help=f"validation share (default {d.validation})")
    p.add_argument("--holdout", type=float, default=None,
                   help="held-out share (default 0.1, or 0 when the file has its own val split)")
    p.add_argument("--pooling", choices=["mean", "cls"], default=d.pooling,
                   help=f"classification head: mean of the token vectors or the [CLS] token "
                   f"(default {d.pooling})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    p.add_argument("--cpu-threads", type=int, default=d.cpu_threads, help=f"torch threads (default {d.cpu_threads})")
    p.add_argument("--oos-max-rejection", type=float, default=d.oos_max_in_scope_rejection,
                   help="OOS threshold tuning: at most this share of in-scope validation rows may "
                   f"be flagged out of scope (default {d.oos_max_in_scope_rejection})")
    p.add_argument("--retune-from", metavar="VERSION",
                   help="no training: publish a copy of VERSION (trained on --data) with its OOS "
                   "threshold re-tuned on its validation split (see --oos-max-rejection)")
    p.set_defaults(func=cmd_train_intent)


def _add_train_emotion(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "emotion", help="MiniLM embeddings + logistic regression on GoEmotions (anger/neutral/positive)",
        description="Train the 3-class emotion model on GoEmotions mapped to anger / neutral / "
        "positive (see training/emotion/goemotions.py), plus the shop bot's in-domain phrases; "
        "reports macro-F1 on GoEmotions dev.",
    )
    p.add_argument("--data", metavar="FILE",
                   help="GoEmotions train.tsv or a text<TAB>label sample (default: the shared train.tsv)")
    p.add_argument("--eval", metavar="FILE", help="GoEmotions dev.tsv (default: beside --data)")
    p.add_argument("--per-class", type=int, default=4000,
                   help="rows per class drawn from GoEmotions (balanced; default 4000, 0 = all)")
    _out_arg(p)
    p.add_argument("--cpu-threads", type=int, default=2, help="torch threads (default 2)")
    p.set_defaults(func=cmd_train_emotion)


def _add_train_conversion(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "conversion", help="XGBoost lead-conversion model (AUC, calibration); or write sample data",
        description="Train an XGBoost model predicting a lead's conversion probability from the "
        "pre-dial columns a feature spec names (see docs/training.md), with tree depth and count "
        "chosen by k-fold CV and a calibration fitted on a held-out split. Reports ROC/PR AUC, "
        "ECE, Brier and a reliability table on a 20 %% test split, and writes a calibration PNG.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE",
                        help="labelled leads CSV (',' or ';'): synthetic leads (0/1 'converted') "
                        "or UCI Bank Marketing (yes/no 'y')")
    p.add_argument("--spec", default="auto", choices=["auto", *SPECS],
                   help="feature spec (default auto: chosen from the file's header)")
    p.add_argument("--calibration", default="platt", choices=CALIBRATION_METHODS,
                   help="probability calibration fitted on the calibration split (default platt)")
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold CV (default 5)")
    source.add_argument("--generate-sample", metavar="FILE",
                        help="write SYNTHETIC demo leads to FILE and exit (no training)")
    p.add_argument("--rows", type=int, default=20000, help="rows for --generate-sample (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, the model and the generator")
    _out_arg(p)
    p.set_defaults(func=cmd_train_conversion)


# -- plumbing -------------------------------------------------------------------------------


def _training_errors() -> tuple[type[Exception], ...]:
    """Unusable data or options, unknown versions: the input was wrong (status 2)."""

    return USER_ERRORS


@contextmanager
def _progress(label_width: int):
    """A live bar on a terminal; in a log file (nohup, ray job logs) one line per stage."""

    if console.is_terminal:
        with stage_bar(console, label_width=label_width) as progress:
            yield progress
        return
    started, last = time.monotonic(), [""]

    def lines(stage: str, fraction: float) -> None:
        if stage != last[0]:
            last[0] = stage
            elapsed = int(time.monotonic() - started)
            console.print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {fraction:4.0%} {stage}",
                          markup=False, highlight=False)

    yield lines


def _existing_file(value: str | None, what: str) -> Path:

    if not value:
        raise TrainingInputError(f"{what} is required")
    path = Path(value).expanduser()
    if not path.is_file():
        raise TrainingInputError(f"{what} {path} does not exist or is not a file")
    return path


def _finish(args: argparse.Namespace, summary: dict[str, Any], line: str) -> int:
    console.print(line, highlight=False)
    if getattr(args, "json", False):
        print(json.dumps(summary, default=str))
    return 0


def _version_summary(info, registry) -> dict[str, Any]:
    return {"kind": info.kind, "version": info.version, "path": str(info.path),
            "current": registry.current(info.kind), "metrics": info.metrics}


# -- commands ---------------------------------------------------------------------------------


@reports_errors(_training_errors)
def cmd_train_intent(args: argparse.Namespace) -> int:

    from training.intent.build import (  # heavy: loads torch, transformers, scipy
        IntentBuildOptions,
        train_intent,
    )
    data = _existing_file(args.data, "--data")
    if args.retune_from:
        return _retune(args, data)
    try:
        config = IntentTrainConfig(
            epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length,
            patience=args.patience, validation=args.validation, holdout=args.holdout,
            seed=args.seed, cpu_threads=args.cpu_threads, pooling=args.pooling,
            oos_max_in_scope_rejection=args.oos_max_rejection,
        )
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        raise TrainingInputError(f"bad training options: {problems}") from None
    if args.workers is not None and args.workers < 1:
        raise TrainingInputError(f"--workers must be at least 1, got {args.workers}")
    options = IntentBuildOptions(
        base=Path(args.base).expanduser() if args.base else None, workers=args.workers,
        promote=args.promote, onnx=args.onnx, ray_address=args.ray_address,
        storage_path=args.storage_path,
    )
    registry = model_registry(args, "out")
    with _progress(28) as progress:
        info = train_intent(registry, data, config, options, progress)
    m = info.metrics
    parts = [f"{k.split('_', 1)[1] if k.startswith('eval_') else k} {m[k]:.4f}"
             for k in ("holdout_accuracy", "eval_in_scope_accuracy", "eval_oos_recall") if k in m]
    line = (f"intent [bold]{info.version}[/] at {info.path}: " + ", ".join(parts or ["no held-out split"])
            + f"; {m['epochs_run']} epochs in {m['train_seconds']:.0f} s; current = {registry.current('intent')}")
    return _finish(args, _version_summary(info, registry), line)


def _retune(args: argparse.Namespace, data: Path) -> int:

    if not 0 <= args.oos_max_rejection <= 1:
        raise TrainingInputError(f"--oos-max-rejection must be in [0, 1], got {args.oos_max_rejection}")
    registry = model_registry(args, "out")
    version = f"v{int(args.retune_from):04d}" if args.retune_from.isdigit() else args.retune_from
    with console.status(f"re-tuning the OOS threshold of intent {version}"):
        info = retune_threshold(registry, version, data, args.oos_max_rejection, promote=args.promote)
    m = info.metrics
    shown = ", ".join(f"{k} {m[k]:.4f}" for k in ("eval_in_scope_accuracy", "eval_oos_recall",
                                                   "val_in_scope_accuracy", "val_oos_recall") if k in m)
    line = (f"intent [bold]{info.version}[/] (weights of {version}) threshold {info.meta['oos_threshold']}: "
            f"{shown}; current = {registry.current('intent')}")
    return _finish(args, _version_summary(info, registry), line)


@reports_errors(_training_errors)
def cmd_train_emotion(args: argparse.Namespace) -> int:

    data = _existing_file(args.data or str(default_goemotions_dir() / "train.tsv"), "--data")
    eval_path = _existing_file(args.eval, "--eval") if args.eval else None
    registry = model_registry(args, "out")
    with _progress(20) as progress:
        info = train_emotion(registry, data, eval_path=eval_path, per_class=args.per_class,
                             cpu_threads=args.cpu_threads, promote=args.promote, progress=progress)
    m = info.metrics
    line = (f"emotion [bold]{info.version}[/] at {info.path}: macro-F1 {m['eval_macro_f1']:.4f} on "
            f"{m['n_eval']} dev rows; current = {registry.current('emotion')}")
    return _finish(args, _version_summary(info, registry), line)


@reports_errors(_training_errors)
def cmd_train_conversion(args: argparse.Namespace) -> int:
    if args.generate_sample:

        path = write_sample(args.generate_sample, rows=args.rows, seed=args.seed)
        return _finish(args, {"sample": str(path), "rows": args.rows, "synthetic": True},
                       f"wrote {args.rows} SYNTHETIC leads to {path}")

    data = _existing_file(args.data, "--data")
    registry = model_registry(args, "out")
    with console.status("cross-validating and training"):
        info = train_conversion(registry, data, spec=args.spec, seed=args.seed, promote=args.promote,
                                calibration=args.calibration, folds=args.folds)
    m = info.metrics
    line = (f"conversion [bold]{info.version}[/] ({info.meta['training_config']['spec']}) at "
            f"{info.path}: test ROC AUC {m['test_auc']:.4f}, PR AUC {m['test_pr_auc']:.4f}, ECE "
            f"{m['test_ece']:.4f}, Brier {m['test_brier']:.4f} (CV AUC {m['cv_auc_mean']:.4f}); "
            f"current = {registry.current('conversion')}")
    return _finish(args, _version_summary(info, registry), line)


@reports_errors(_training_errors)
def cmd_eval_conversion(args: argparse.Namespace) -> int:
    model_dir = resolve_model_dir(args.model, "conversion")
    data = _existing_file(args.data, "--data")
    result = evaluate_conversion(model_dir, data, split=args.split)
    line = (f"conversion {result['version']} ({result['spec']}, {result['calibration']} calibration) "
            f"on {data.name} ({result['split']}, n={result['n']}, base rate {result['base_rate']:.3f}): "
            f"ROC AUC {result['roc_auc']:.4f}, PR AUC {result['pr_auc']:.4f}, ECE {result['ece']:.4f} "
            f"(10 equal-width bins; equal-count {result['ece_quantile']:.4f}), Brier {result['brier']:.4f}")
    if not args.json:
        for row in result["reliability"]:
            line += (f"\n  p {row['bin']}: {row['count']:>6} leads, predicted "
                     f"{row['mean_predicted']:.3f}, observed {row['observed_rate']:.3f}")
    return _finish(args, result, line)


@reports_errors(_training_errors)
def cmd_eval_intent(args: argparse.Namespace) -> int:

    model_dir = resolve_model_dir(args.model, "intent")
    data = _existing_file(args.data, "--data")
    with console.status("scoring"):
        result = evaluate_intent(model_dir, data, split=args.split, backend=args.backend,
                                 report_dir=Path(args.report_dir) if args.report_dir else None)
    shown = ", ".join(f"{k} {result[k]:.4f}" for k in
                      ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall") if k in result)
    line = (f"intent {result['version']} on {data.name} ({result['split']}, n={result['n']}): {shown}; "
            f"reports in {result['report_dir']}")
    return _finish(args, result, line)


@reports_errors(_training_errors)
def cmd_eval_emotion(args: argparse.Namespace) -> int:

    model_dir = resolve_model_dir(args.model, "emotion")
    data = _existing_file(args.data or str(default_goemotions_dir() / "dev.tsv"), "--data")
    with console.status("scoring"):
        result = evaluate_emotion(model_dir, data,
                                  report_dir=Path(args.report_dir) if args.report_dir else None)
    line = (f"emotion {result['version']} on {data.name} (n={result['n']}): macro-F1 "
            f"{result['macro_f1']:.4f}, accuracy {result['accuracy']:.4f}")
    return _finish(args, result, line)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="callfleet")
    register(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    sys.exit(ns.func(ns))
