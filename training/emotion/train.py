"""`callfleet train emotion` / `callfleet eval emotion` on GoEmotions.

Training draws a balanced, seeded sample from the full GoEmotions ``train.tsv`` mapped to
anger / neutral / positive (`training.emotion.goemotions` says which emotions map where and
why ambiguous rows are dropped), adds the shop bot's in-domain phrases, and fits the same
frozen-MiniLM + logistic-regression head as the default build
(`training.emotion.default`), so the emotion deployment loads it unchanged. Macro-F1 on
GoEmotions ``dev.tsv`` (mapped the same way) goes into the version's metrics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.emotion.default import build_default_emotion_model
from training.emotion.goemotions import EMOTION_CLASSES, read_goemotions, read_sample, sample_rows
from training.errors import TrainingInputError
from training.intent.scoring import write_per_class_report
from training.models.registry import ModelRegistry, VersionInfo

__all__ = ["evaluate_emotion", "read_emotion_rows", "train_emotion"]

Progress = Callable[[str, float], None]


def read_emotion_rows(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(text, class) rows from GoEmotions TSV (text, label ids, id) or a ``text<TAB>label``
    sample file; the format is told by the first line."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline().rstrip("\n")
        rows = read_sample(path) if first == "text\tlabel" else read_goemotions(path)
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise TrainingInputError(
            f"cannot read emotion data {path}: {exc} (expected GoEmotions TSV: text, label ids, "
            "id; or a text<TAB>label file)"
        ) from exc
    if not rows:
        raise TrainingInputError(f"{path}: no usable rows (anger / neutral / positive)")
    return rows


def train_emotion(
    registry: ModelRegistry,
    data_path: str | os.PathLike,
    *,
    eval_path: str | os.PathLike | None = None,
    per_class: int = 4000,
    cpu_threads: int = 2,
    promote: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> VersionInfo:
    """Train on a balanced draw of `per_class` rows per class (0 = every row)."""

    data_path = Path(data_path)
    rows = read_emotion_rows(data_path)
    if per_class > 0:
        rows = sample_rows(rows, per_class=per_class, seed=seed)
    if eval_path is None and (data_path.parent / "dev.tsv").is_file():
        eval_path = data_path.parent / "dev.tsv"
    return build_default_emotion_model(
        registry, data_path=data_path, rows=rows, eval_path=eval_path, cpu_threads=cpu_threads,
        seed=seed, progress=progress, promote=promote,
        extra_config={"per_class": per_class, "sampled_rows": len(rows)},
    )


def evaluate_emotion(
    model_dir: str | os.PathLike, data_path: str | os.PathLike, *, report_dir: Path | None = None
) -> dict[str, Any]:
    """Text-only macro-F1 / accuracy / per-class report of an emotion version."""
    from sklearn.metrics import (  # heavy: loads sklearn
        accuracy_score,
        f1_score,
    )

    from training.models.emotion import EmotionClassifier  # heavy: loads torch

    started = time.perf_counter()
    model_dir, data_path = Path(model_dir), Path(data_path)
    rows = read_emotion_rows(data_path)
    classifier = EmotionClassifier(model_dir, cpu_threads=2)
    texts = [t for t, _ in rows]
    gold = [label for _, label in rows]
    predicted = []
    for start in range(0, len(texts), 128):
        for scores in classifier.text_scores(texts[start : start + 128]):
            predicted.append(max(EMOTION_CLASSES, key=lambda k: scores[k]))
    out = report_dir or Path("var") / "eval" / f"emotion-{classifier.version}-{data_path.stem}"
    csv_path, json_path = write_per_class_report(gold, predicted, out)
    result = {
        "version": classifier.version,
        "model": str(model_dir),
        "data": str(data_path),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro")), 4),
        "accuracy": round(float(accuracy_score(gold, predicted)), 4),
        "n": len(rows),
        "report_dir": str(out),
        "files": [str(csv_path), str(json_path)],
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
