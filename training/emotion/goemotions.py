"""Reproducibly sample GoEmotions into the 3-class set the emotion model trains on.

GoEmotions (google-research, Apache-2.0) labels Reddit comments with 27 emotions +
neutral. A call-centre cares about three: ``anger`` (anger, annoyance, disapproval,
disgust), ``positive`` (joy, amusement, approval, gratitude, love, optimism, admiration,
excitement, relief, caring, pride) and ``neutral``. A row is kept only when every one of
its labels maps to the same class; rows with any other emotion (sadness, confusion, ...)
or with labels in two classes are dropped as ambiguous. The sample takes the same number
of rows from each class (equal-allocation stratified sampling, fixed seed), so the rare
anger class is as well covered as the others.

    python -m training.emotion.goemotions --source /path/to/goemotions/train.tsv
"""

from __future__ import annotations

import argparse
import os
import random
from collections import defaultdict
from pathlib import Path

__all__ = [
    "CLASS_OF",
    "DEFAULT_SAMPLE",
    "EMOTION_CLASSES",
    "GOEMOTIONS_LABELS",
    "default_goemotions_dir",
    "map_labels",
    "read_goemotions",
    "read_sample",
    "sample_rows",
]

#: the 28 GoEmotions labels in id order (the dataset's emotions.txt).
GOEMOTIONS_LABELS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire "
    "disappointment disapproval disgust embarrassment excitement fear gratitude grief joy "
    "love nervousness optimism pride realization relief remorse sadness surprise neutral"
).split()

EMOTION_CLASSES = ("anger", "neutral", "positive")

CLASS_OF = {
    **dict.fromkeys(("anger", "annoyance", "disapproval", "disgust"), "anger"),
    **dict.fromkeys(
        (
            "joy amusement approval gratitude love optimism admiration excitement relief "
            "caring pride"
        ).split(),
        "positive",
    ),
    "neutral": "neutral",
}

DEFAULT_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "goemotions_sample.tsv"
PER_CLASS = 1334  # 3 x 1334 = 4002 rows, about 290 kB
SEED = 0


def default_goemotions_dir() -> Path:
    """Where the GoEmotions TSVs live: ``$GOEMOTIONS_DIR``, else the shared datasets folder
    beside this repository (``../shared/datasets/goemotions``)."""
    beside_repo = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "goemotions"
    return Path(os.environ.get("GOEMOTIONS_DIR", beside_repo))


def map_labels(label_ids: str) -> str | None:
    """``"2,3"`` -> ``"anger"``; None when a label is unmapped or the labels disagree."""
    classes = set()
    for raw in label_ids.split(","):
        name = GOEMOTIONS_LABELS[int(raw)]
        if name not in CLASS_OF:
            return None
        classes.add(CLASS_OF[name])
    return classes.pop() if len(classes) == 1 else None


def read_goemotions(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(text, class) for every usable row of a GoEmotions ``text<TAB>ids<TAB>id`` file."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            label = map_labels(parts[1])
            text = parts[0].strip()
            if label is not None and text:
                rows.append((text, label))
    return rows


def read_sample(path: str | os.PathLike = DEFAULT_SAMPLE) -> list[tuple[str, str]]:
    """(text, class) rows of a sample file written by this script (``text<TAB>label``)."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n")
        if header != "text\tlabel":
            raise ValueError(f"{path}: expected header 'text<TAB>label', got {header!r}")
        rows = [tuple(line.rstrip("\n").rsplit("\t", 1)) for line in fh if line.strip()]
    bad = [row for row in rows if len(row) != 2 or row[1] not in EMOTION_CLASSES]
    if bad:
        raise ValueError(f"{path}: {len(bad)} malformed rows, first {bad[0]!r}")
    return rows  # type: ignore[return-value]


def sample_rows(
    rows: list[tuple[str, str]], per_class: int = PER_CLASS, seed: int = SEED
) -> list[tuple[str, str]]:
    """Take `per_class` distinct texts from each class (all of a smaller class), shuffled."""
    by_class: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            by_class[label].append(text)
    rng = random.Random(seed)
    picked = [
        (text, label)
        for label in EMOTION_CLASSES
        for text in rng.sample(by_class[label], min(per_class, len(by_class[label])))
    ]
    rng.shuffle(picked)
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=default_goemotions_dir() / "train.tsv")
    parser.add_argument("--out", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    picked = sample_rows(read_goemotions(args.source), args.per_class, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("text\tlabel\n")
        for text, label in picked:
            fh.write(f"{' '.join(text.split())}\t{label}\n")
    counts = {c: sum(1 for _, label in picked if label == c) for c in EMOTION_CLASSES}
    print(f"wrote {len(picked)} rows to {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
