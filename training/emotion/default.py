"""Build the default emotion model: MiniLM sentence embeddings + logistic regression.

Fine-tuning is not needed for a 3-class text signal that is fused with acoustics anyway:
frozen mean-pooled all-MiniLM-L6-v2 embeddings and a class-balanced multinomial logistic
regression train in well under a minute on 2 CPU cores.

Training data: the GoEmotions sample (Reddit comments) plus the shop bot's in-domain
phone language from ``bots/data/shop_intents.yaml`` (its ``emotions:`` section, and the
utterances of the task intents as neutral), weighted `DOMAIN_WEIGHT`. Reddit alone misses
phone complaints ("I've been on hold for an hour") and calls plain requests ("cancel my
order") angry, which would escalate calm callers. The weights are stored as JSON (no
pickle), with a note of the encoder; `training.models.emotion` embeds the same way.
Evaluation uses GoEmotions dev.tsv mapped like the training sample when it is available,
else a stratified 15 % of the sample.

    python -m training.emotion.default --registry var/registry
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console

from training.emotion.goemotions import (
    DEFAULT_SAMPLE,
    EMOTION_CLASSES,
    default_goemotions_dir,
    read_goemotions,
    read_sample,
)
from training.models.encoder import SentenceEncoder
from training.models.loading import ENCODER_PACKAGE, encoder_package_version, torch_threads
from training.models.registry import ModelRegistry, VersionInfo, sha256_file
from training.progress import stage_bar

__all__ = ["DEFAULT_EMOTION_DATA", "build_default_emotion_model", "load_domain_examples"]

log = logging.getLogger("callfleet.training.emotion")

DEFAULT_EMOTION_DATA = DEFAULT_SAMPLE
DEFAULT_DOMAIN_DATA = Path(__file__).resolve().parents[2] / "bots" / "data" / "shop_intents.yaml"
#: intents whose utterances are calm requests, used as in-domain neutral examples
NEUTRAL_INTENTS = (
    "order_status",
    "address_change",
    "cancel_order",
    "refund_request",
    "store_hours",
    "deny",
    "goodbye",
)
DOMAIN_WEIGHT = 5.0
MAX_LENGTH = 64
BATCH_SIZE = 64
LR_C = 3.0

Progress = Callable[[str, float], None]


def build_default_emotion_model(
    registry: ModelRegistry,
    data_path: str | os.PathLike = DEFAULT_EMOTION_DATA,
    progress: Progress | None = None,
    cpu_threads: int = 2,
    eval_path: str | os.PathLike | None = None,
    seed: int = 0,
    domain_path: str | os.PathLike | None = DEFAULT_DOMAIN_DATA,
    rows: list[tuple[str, str]] | None = None,
    promote: bool = False,
    extra_config: dict | None = None,
) -> VersionInfo:
    """Train on `data_path` (``text<TAB>label``) plus `domain_path` (None = GoEmotions
    only), commit to `registry` and return the version.

    `rows` replaces the rows read from `data_path` (which is then only hashed into the
    metadata): `training.emotion.train` passes a balanced draw from the full GoEmotions
    train.tsv this way. `eval_path` defaults to GoEmotions ``dev.tsv`` (see
    `default_goemotions_dir`). The new version is promoted when `promote` is set or no
    emotion version is promoted yet.
    """
    from sklearn.linear_model import LogisticRegression  # heavy: loads sklearn
    from sklearn.metrics import (  # heavy: loads sklearn
        accuracy_score,
        classification_report,
        f1_score,
    )
    from sklearn.model_selection import train_test_split  # heavy: loads sklearn

    from training.models.emotion import CLASSIFIER_FILE  # heavy: loads torch

    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    report("loading data", 0.0)
    rows = read_sample(data_path) if rows is None else rows
    eval_file = Path(eval_path) if eval_path else default_goemotions_dir() / "dev.tsv"
    if eval_file.is_file():
        train_rows, eval_rows, eval_source = rows, read_goemotions(eval_file), str(eval_file)
    else:
        log.info("no %s; evaluating on a 15 %% split of the sample", eval_file)
        labels = [label for _, label in rows]
        train_rows, eval_rows = train_test_split(
            rows, test_size=0.15, stratify=labels, random_state=seed
        )
        eval_source = f"15% stratified split of {data_path}"
    domain_rows = load_domain_examples(domain_path) if domain_path else []

    with torch_threads(cpu_threads), registry.stage("emotion") as staged:
        version, staging = staged.version, staged.path
        report("loading MiniLM", 0.02)
        encoder = SentenceEncoder(max_length=MAX_LENGTH, batch_size=BATCH_SIZE, device="cpu")
        embeddings = _embed(encoder, [t for t, _ in train_rows + domain_rows + eval_rows], report)
        n_fit = len(train_rows) + len(domain_rows)
        x_fit, x_eval = embeddings[:n_fit], embeddings[n_fit:]
        y_fit = np.array([label for _, label in train_rows + domain_rows])
        y_eval = [label for _, label in eval_rows]
        weights = np.r_[np.ones(len(train_rows)), np.full(len(domain_rows), DOMAIN_WEIGHT)]

        def fit(rows: np.ndarray) -> LogisticRegression:
            model = LogisticRegression(
                C=LR_C, class_weight="balanced", max_iter=3000, random_state=seed
            )
            return model.fit(x_fit[rows], y_fit[rows], sample_weight=weights[rows])

        report("fitting classifier", 0.91)
        classifier = fit(np.arange(n_fit))
        predicted = classifier.predict(x_eval)
        domain_f1 = _domain_cv_macro_f1(fit, x_fit, y_fit, len(train_rows), seed)
        per_class = classification_report(y_eval, predicted, output_dict=True, zero_division=0)

        report("saving", 0.97)
        head = {
            "classes": [str(c) for c in classifier.classes_],
            "coef": classifier.coef_.tolist(),
            "intercept": classifier.intercept_.tolist(),
            "encoder": {
                "package": ENCODER_PACKAGE,
                "package_version": encoder_package_version(),
                "model": "sentence-transformers/all-MiniLM-L6-v2",
                "pooling": "mean",
                "normalize": True,
                "max_length": MAX_LENGTH,
            },
            "fusion": "training.models.emotion.fuse_arousal",
        }
        _check_head_matches(head, classifier, x_eval[:32])
        (staging / CLASSIFIER_FILE).write_text(json.dumps(head) + "\n")
        seconds = time.perf_counter() - started
        meta = {
            "base_model": f"all-MiniLM-L6-v2 ({ENCODER_PACKAGE}), frozen, mean pooling",
            "label_map": {str(i): c for i, c in enumerate(head["classes"])},
            "metrics": {
                "eval_macro_f1": round(float(f1_score(y_eval, predicted, average="macro")), 4),
                "eval_accuracy": round(float(accuracy_score(y_eval, predicted)), 4),
                "eval_f1_per_class": {
                    c: round(per_class[c]["f1-score"], 4) for c in EMOTION_CLASSES
                },
                "eval_source": eval_source,
                "domain_cv_macro_f1": domain_f1,
                "n_train": len(train_rows),
                "n_domain": len(domain_rows),
                "n_eval": len(eval_rows),
                "build_seconds": round(seconds, 1),
            },
            "training_config": {
                "classifier": "LogisticRegression",
                "C": LR_C,
                "class_weight": "balanced",
                "domain_weight": DOMAIN_WEIGHT,
                "neutral_intents": list(NEUTRAL_INTENTS),
                "max_length": MAX_LENGTH,
                "batch_size": BATCH_SIZE,
                "seed": seed,
                "cpu_threads": cpu_threads,
                **(extra_config or {}),
            },
            "data_sha256": sha256_file(data_path),
            "data_path": str(data_path),
            "domain_data_sha256": sha256_file(domain_path) if domain_path else None,
            "domain_data_path": str(domain_path) if domain_path else None,
        }
        info = staged.commit(meta, promote=promote)
    report("done", 1.0)
    log.info(
        "emotion model %s: macro-F1 %.3f in %.0f s",
        version,
        meta["metrics"]["eval_macro_f1"],
        seconds,
    )
    return info


def load_domain_examples(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(text, class) from a bot's YAML: its ``emotions:`` section plus its calm intents."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    rows = []
    for label, examples in (doc.get("emotions") or {}).items():
        if label not in EMOTION_CLASSES:
            raise ValueError(f"{path}: unknown emotion {label!r}; use {EMOTION_CLASSES}")
        rows += [(str(text), label) for text in examples]
    intents = doc.get("intents") or {}
    for name in NEUTRAL_INTENTS:
        rows += [(str(text), "neutral") for text in (intents.get(name) or {}).get("examples", [])]
    return rows


def _embed(encoder, texts: list[str], report: Progress) -> np.ndarray:
    chunks = []
    for start in range(0, len(texts), BATCH_SIZE):
        chunks.append(encoder.encode(texts[start : start + BATCH_SIZE]))
        report("embedding", 0.05 + 0.85 * min(1.0, (start + BATCH_SIZE) / len(texts)))
    return np.concatenate(chunks)


def _domain_cv_macro_f1(fit, x_fit, y_fit, n_general: int, seed: int) -> float | None:
    """5-fold CV over the in-domain rows (which follow the `n_general` GoEmotions rows);
    every fold keeps all GoEmotions rows in the fit. None when there is no domain data."""
    from sklearn.metrics import f1_score  # heavy: loads sklearn
    from sklearn.model_selection import StratifiedKFold  # heavy: loads sklearn

    y_domain = y_fit[n_general:]
    if len(y_domain) < 10:
        return None
    predicted = np.empty(len(y_domain), dtype=object)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for keep, held in folds.split(np.zeros(len(y_domain)), y_domain):
        predicted[held] = fit(np.r_[np.arange(n_general), n_general + keep]).predict(
            x_fit[n_general + held]
        )
    return round(float(f1_score(y_domain, list(predicted), average="macro")), 4)


def _check_head_matches(head: dict, classifier, sample: np.ndarray) -> None:
    """The JSON head must reproduce sklearn's probabilities (softmax of the logits)."""
    logits = sample.astype(np.float64) @ np.asarray(head["coef"]).T + np.asarray(head["intercept"])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    if not np.allclose(probs, classifier.predict_proba(sample), atol=1e-6):
        raise RuntimeError("exported emotion head does not match the trained classifier")


def main(argv: list[str] | None = None) -> int:


    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, required=True, help="model registry folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_EMOTION_DATA)
    parser.add_argument("--eval", type=Path, default=None, help="GoEmotions dev.tsv")
    parser.add_argument("--domain", type=Path, default=DEFAULT_DOMAIN_DATA, help="bot YAML")
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--promote", action="store_true", help="promote even if one is current")
    args = parser.parse_args(argv)

    registry = ModelRegistry(args.registry)
    console = Console()
    with stage_bar(console, label_width=20) as progress:
        info = build_default_emotion_model(
            registry,
            data_path=args.data,
            progress=progress,
            cpu_threads=args.cpu_threads,
            eval_path=args.eval,
            domain_path=args.domain,
            promote=args.promote,
        )
    metrics = info.meta["metrics"]
    console.print(
        f"emotion model [bold]{info.version}[/] at {info.path}: macro-F1 "
        f"{metrics['eval_macro_f1']:.3f} on {metrics['n_eval']} rows, built in "
        f"{metrics['build_seconds']:.0f} s; current = {registry.current('emotion')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
