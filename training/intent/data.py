"""Read labelled utterances for intent training and carve reproducible splits from them.

Formats (chosen by the file name):

* ``.csv`` with a header naming a text column (``text``) and a label column
  (``category``, ``label`` or ``intent``) — BANKING77's ``train.csv`` is this.
* ``.jsonl`` — one object per line with ``text`` and ``label`` / ``intent`` / ``category``.
* ``.json`` — CLINC150's ``data_full.json`` layout: ``{"train": [[text, intent], ...],
  "val": [...], "oos_train": [...], "oos_val": [...]}``. ``oos`` rows become the
  out-of-scope class `OOS_LABEL`.
* ``.yaml`` / ``.yml`` — a bot's intents file (``intents: {name: {examples: [...]}}``).

A file either brings its own evaluation split (CLINC150: ``val`` + ``oos_val``) or only
training rows (BANKING77); then a held-out split is carved from it with `carve_splits`,
stratified and seeded, so that ``callfleet eval intent --split holdout`` reproduces exactly
the rows the model never saw.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from training.errors import TrainingInputError

__all__ = [
    "OOS_LABEL",
    "IntentDataError",
    "LabelledTexts",
    "Splits",
    "carve_splits",
    "read_intent_file",
]

OOS_LABEL = "oos"
_TEXT_KEYS = ("text", "utterance", "sentence")
_LABEL_KEYS = ("category", "label", "intent")
_CLINC_TRAIN = ("train", "oos_train")
_CLINC_EVAL = ("val", "oos_val")


class IntentDataError(TrainingInputError):
    """A data file is not usable; the message names the file, the place and what was expected."""


@dataclass(frozen=True)
class LabelledTexts:
    """Parallel lists of utterances and their intent names."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def has_oos(self) -> bool:
        return OOS_LABEL in self.labels

    def subset(self, rows: list[int]) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in rows], [self.labels[i] for i in rows])


@dataclass(frozen=True)
class IntentFile:
    """What a data file holds: training rows and, when it ships one, an evaluation split."""

    train: LabelledTexts
    evaluation: LabelledTexts | None
    format: str


def read_intent_file(path: str | os.PathLike) -> IntentFile:
    """Parse `path` by its suffix; raises IntentDataError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise IntentDataError(f"intent data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            result = IntentFile(_read_csv(path), None, "csv")
        elif suffix == ".jsonl":
            result = IntentFile(_read_jsonl(path), None, "jsonl")
        elif suffix == ".json":
            result = _read_clinc(path)
        elif suffix in (".yaml", ".yml"):
            result = IntentFile(_read_yaml(path), None, "yaml")
        else:
            raise IntentDataError(
                f"{path}: unknown format {suffix!r}; expected .csv (text,category), .jsonl, "
                ".json (CLINC150 layout) or .yaml (bot intents file)"
            )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise IntentDataError(f"cannot read {path}: {exc}") from exc
    if len(result.train) == 0:
        raise IntentDataError(f"{path}: no training rows found")
    if len(set(result.train.labels)) < 2:
        raise IntentDataError(f"{path}: need at least 2 intents, found {set(result.train.labels)}")
    return result


def _read_csv(path: Path) -> LabelledTexts:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        text_key = next((k for k in _TEXT_KEYS if k in fields), None)
        label_key = next((k for k in _LABEL_KEYS if k in fields), None)
        if text_key is None or label_key is None:
            raise IntentDataError(
                f"{path}: header {reader.fieldnames} lacks a text column ({'/'.join(_TEXT_KEYS)}) "
                f"or a label column ({'/'.join(_LABEL_KEYS)})"
            )
        original = {f.strip().lower(): f for f in reader.fieldnames or []}
        rows = [
            (row.get(original[text_key]), row.get(original[label_key]), line)
            for line, row in enumerate(reader, start=2)
        ]
    return _collect(path, rows)


def _read_jsonl(path: Path) -> LabelledTexts:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IntentDataError(f"{path}:{line_no}: not JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise IntentDataError(f"{path}:{line_no}: expected an object with text and label")
            text = next((obj[k] for k in _TEXT_KEYS if k in obj), None)
            label = next((obj[k] for k in _LABEL_KEYS if k in obj), None)
            rows.append((text, label, line_no))
    return _collect(path, rows)


def _read_clinc(path: Path) -> IntentFile:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "train" not in doc:
        raise IntentDataError(
            f"{path}: expected CLINC150's layout, an object with 'train' (and 'val', 'oos_train', "
            "'oos_val') lists of [text, intent]"
        )

    def section(names: tuple[str, ...]) -> LabelledTexts | None:
        rows = []
        present = [name for name in names if name in doc]
        if not present:
            return None
        for name in present:
            for index, item in enumerate(doc[name]):
                if not (isinstance(item, list) and len(item) == 2):
                    raise IntentDataError(f"{path}: {name}[{index}] is not a [text, intent] pair")
                rows.append((item[0], item[1], f"{name}[{index}]"))
        return _collect(path, rows)

    return IntentFile(section(_CLINC_TRAIN), section(_CLINC_EVAL), "clinc150-json")


def _read_yaml(path: Path) -> LabelledTexts:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    intents = doc.get("intents") if isinstance(doc, dict) else None
    if not isinstance(intents, dict) or not intents:
        raise IntentDataError(f"{path}: expected a top-level 'intents' mapping")
    rows = []
    for name, spec in intents.items():
        for index, text in enumerate((spec or {}).get("examples") or []):
            rows.append((text, name, f"intents.{name}.examples[{index}]"))
    return _collect(path, rows)


def _collect(path: Path, rows: list[tuple[object, object, object]]) -> LabelledTexts:
    """Keep rows with a non-empty text and label; reject the file if any row is malformed."""
    texts: list[str] = []
    labels: list[str] = []
    bad: list[str] = []
    for text, label, where in rows:
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str | int):
            bad.append(str(where))
            continue
        label = str(label).strip()
        if not label:
            bad.append(str(where))
            continue
        texts.append(" ".join(text.split()))
        labels.append(label)
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise IntentDataError(
            f"{path}: {len(bad)} row(s) without a text or a label (at {shown}); every row needs both"
        )
    return LabelledTexts(texts, labels)


@dataclass(frozen=True)
class Splits:
    """Row indices into the training rows: train / validation (early stopping, OOS
    threshold) / holdout (reported, never seen during training or tuning)."""

    train: list[int]
    validation: list[int]
    holdout: list[int]


def carve_splits(
    labels: list[str], validation: float, holdout: float, seed: int
) -> Splits:
    """Stratified, seeded split; the same arguments always give the same rows.

    Classes too small to stratify (fewer than 2 rows in a split) go to training whole,
    so a rare intent never vanishes from the training rows.
    """
    from sklearn.model_selection import train_test_split  # heavy: loads sklearn

    if not 0 <= validation < 1 or not 0 <= holdout < 1 or validation + holdout >= 0.9:
        raise IntentDataError(
            f"bad split fractions validation={validation} holdout={holdout}: each in [0, 1), "
            "together below 0.9"
        )
    counts = Counter(labels)
    small = {label for label, n in counts.items() if n < 6}
    usable = [i for i, label in enumerate(labels) if label not in small]
    always_train = [i for i, label in enumerate(labels) if label in small]

    def split(rows: list[int], fraction: float) -> tuple[list[int], list[int]]:
        if fraction <= 0 or not rows:
            return rows, []
        keep, held = train_test_split(
            rows, test_size=fraction, stratify=[labels[i] for i in rows], random_state=seed
        )
        return sorted(keep), sorted(held)

    rest, held_out = split(usable, holdout)
    val_fraction = validation / (1 - holdout) if holdout else validation
    train, val = split(rest, val_fraction)
    return Splits(sorted(train + always_train), val, held_out)
