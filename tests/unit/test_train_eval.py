"""Scoring intent predictions (what the bot does with them) and the evaluation reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from training.intent.scoring import (
    decide,
    score_predictions,
    tune_oos_threshold,
    write_confusion_png,
    write_per_class_report,
)

pytestmark = pytest.mark.unit

LABELS = ["balance", "oos", "transfer"]


def test_low_confidence_becomes_out_of_scope() -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]])
    assert decide(probs, LABELS, None) == ["balance", "balance", "oos"]
    assert decide(probs, LABELS, 0.5) == ["balance", "oos", "oos"]


def test_scores_in_scope_accuracy_and_oos_recall() -> None:
    gold = ["balance", "transfer", "oos", "oos", "balance"]
    pred = ["balance", "oos", "oos", "balance", "transfer"]
    scores = score_predictions(gold, pred)
    assert scores["n"] == 5
    assert scores["accuracy"] == pytest.approx(2 / 5)
    assert scores["in_scope_accuracy"] == pytest.approx(1 / 3)
    assert scores["oos_recall"] == pytest.approx(1 / 2)
    assert scores["oos_precision"] == pytest.approx(1 / 2)
    assert 0 < scores["macro_f1"] < 1


def test_no_oos_rows_means_no_oos_figures() -> None:
    scores = score_predictions(["a", "b"], ["a", "a"])
    assert "oos_recall" not in scores and scores["accuracy"] == 0.5


def test_threshold_is_tuned_to_separate_unsure_off_topic_rows() -> None:
    # in-scope rows are confident, off-topic ones spread their probability
    probs = np.array([[0.95, 0.0, 0.05], [0.1, 0.0, 0.9], [0.8, 0.0, 0.2],
                      [0.5, 0.1, 0.4], [0.35, 0.3, 0.35]])
    gold = ["balance", "transfer", "balance", "oos", "oos"]
    threshold, scores = tune_oos_threshold(probs, LABELS, gold)
    assert threshold is not None and 0.5 < threshold <= 0.8
    assert scores["oos_recall"] == 1.0 and scores["in_scope_accuracy"] == 1.0
    assert decide(probs, LABELS, threshold) == gold


def test_nothing_to_tune_without_oos_rows() -> None:
    assert tune_oos_threshold(np.eye(3), LABELS, ["balance", "transfer", "balance"]) == (None, {})


def test_reports_are_written(tmp_path: Path) -> None:
    gold = ["a", "b", "b", "c"]
    pred = ["a", "b", "c", "c"]
    csv_path, json_path = write_per_class_report(gold, pred, tmp_path / "r")
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    assert float(rows[1]["recall"]) == 0.5 and int(rows[1]["support"]) == 2
    assert json.loads(json_path.read_text())[2]["precision"] == 0.5
    png = write_confusion_png(gold, pred, tmp_path / "r" / "confusion.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_png_for_many_classes_stays_bounded(tmp_path: Path) -> None:
    gold = [f"intent_{i:03d}" for i in range(151)]
    png = write_confusion_png(gold, gold[1:] + gold[:1], tmp_path / "big.png", "151 classes")
    assert 50_000 < png.stat().st_size < 5_000_000


def test_threshold_spends_only_the_in_scope_rejection_budget() -> None:
    # 100 in-scope rows with confidences 0.50..0.995 (all right), 2 off-topic rows
    conf = np.linspace(0.5, 0.995, 100)
    probs = np.c_[conf, np.zeros(100), 1 - conf]
    probs = np.r_[probs, [[0.9, 0.0, 0.1], [0.3, 0.3, 0.4]]]
    gold = ["balance"] * 100 + ["oos", "oos"]
    threshold, scores = tune_oos_threshold(probs, LABELS, gold, max_in_scope_rejection=0.05)
    # catching the confident off-topic row would reject ~80 % of the in-scope rows
    assert 0.4 < threshold < 0.53
    assert scores["in_scope_rejected"] <= 0.05 and scores["oos_recall"] == 0.5
    assert scores["in_scope_accuracy"] >= 0.95
