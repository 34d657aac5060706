"""Reading intent data files and carving reproducible splits from them."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from training.intent.data import OOS_LABEL, IntentDataError, carve_splits, read_intent_file

pytestmark = pytest.mark.unit


def _csv(path: Path, rows: list[tuple[str, str]], header: str = "text,category") -> Path:
    path.write_text(header + "\n" + "".join(f'"{t}",{c}\n' for t, c in rows), encoding="utf-8")
    return path


def test_reads_banking77_style_csv(tmp_path: Path) -> None:
    data = read_intent_file(_csv(tmp_path / "d.csv", [("My card, it is lost", "lost_card"),
                                                       ("top  up failed", "top_up_failed")]))
    assert data.train.texts == ["My card, it is lost", "top up failed"]
    assert data.train.labels == ["lost_card", "top_up_failed"]
    assert data.evaluation is None


def test_reads_jsonl_with_label_or_intent_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hi", "label": "greet"}\n\n{"text": "bye", "intent": "goodbye"}\n')
    data = read_intent_file(path)
    assert list(zip(data.train.texts, data.train.labels, strict=True)) == [("hi", "greet"), ("bye", "goodbye")]


def test_reads_clinc150_layout_with_oos_and_val(tmp_path: Path) -> None:
    doc = {"train": [["play a song", "play_music"], ["set an alarm", "alarm"]],
           "oos_train": [["how tall is everest", "oos"]],
           "val": [["play jazz", "play_music"]], "oos_val": [["who won the cup", "oos"]]}
    path = tmp_path / "clinc.json"
    path.write_text(json.dumps(doc))
    data = read_intent_file(path)
    assert data.train.labels == ["play_music", "alarm", OOS_LABEL]
    assert data.evaluation is not None and data.evaluation.labels == ["play_music", OOS_LABEL]
    assert data.train.has_oos and data.format == "clinc150-json"


def test_reads_bot_intents_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("intents:\n  greet:\n    examples: [hi, hello]\n  bye:\n    examples: [bye]\n")
    data = read_intent_file(path)
    assert Counter(data.train.labels) == {"greet": 2, "bye": 1}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", "sentence_only\nhello\n", "lacks a text column"),
        ("d.csv", "text,category\nhello,\n,greet\n", "2 row(s) without a text or a label"),
        ("d.jsonl", '{"text": "hi", "label": "a"}\nnot json\n', "d.jsonl:2: not JSON"),
        ("d.json", '{"rows": []}', "CLINC150's layout"),
        ("d.txt", "hello", "unknown format '.txt'"),
        ("d.csv", "text,category\nhi,greet\nhello,greet\n", "at least 2 intents"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(IntentDataError, match=re.escape(message)):
        read_intent_file(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(IntentDataError, match="does not exist"):
        read_intent_file(tmp_path / "nope.csv")


def test_splits_are_reproducible_disjoint_and_stratified() -> None:
    labels = [f"intent{i % 5}" for i in range(500)]
    first = carve_splits(labels, validation=0.1, holdout=0.2, seed=7)
    again = carve_splits(labels, validation=0.1, holdout=0.2, seed=7)
    other = carve_splits(labels, validation=0.1, holdout=0.2, seed=8)
    assert first == again
    assert first.holdout != other.holdout
    parts = [set(first.train), set(first.validation), set(first.holdout)]
    assert sum(map(len, parts)) == 500 and set().union(*parts) == set(range(500))
    assert len(first.holdout) == 100 and len(first.validation) == 50
    assert Counter(labels[i] for i in first.holdout) == {f"intent{k}": 20 for k in range(5)}


def test_rare_intents_stay_in_training_rows() -> None:
    labels = ["common"] * 50 + ["rare"] * 3
    splits = carve_splits(labels, validation=0.1, holdout=0.1, seed=0)
    assert {50, 51, 52} <= set(splits.train)


def test_bad_fractions_are_rejected() -> None:
    with pytest.raises(IntentDataError, match="bad split fractions"):
        carve_splits(["a", "b"] * 10, validation=0.5, holdout=0.5, seed=0)
