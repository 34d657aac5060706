"""`callfleet train emotion` / `eval emotion` on a small GoEmotions draw (real MiniLM)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from training.models.registry import ModelRegistry

pytestmark = pytest.mark.models


def _run_cli(*argv: str) -> int:
    from cluster.cli.train import register

    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_train_and_evaluate_emotion(shared_datasets: Path, tmp_path: Path, capsys) -> None:
    from training.models.emotion import EmotionClassifier

    dev = tmp_path / "dev_small.tsv"
    lines = (shared_datasets / "goemotions" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    dev.write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")
    registry = tmp_path / "registry"
    assert _run_cli("train", "emotion", "--data", str(shared_datasets / "goemotions" / "train.tsv"),
                    "--eval", str(dev), "--per-class", "60", "--out", str(registry), "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "emotion" and summary["current"] == summary["version"]
    metrics = summary["metrics"]
    assert 0.0 < metrics["eval_macro_f1"] <= 1.0 and metrics["n_train"] == 180

    # the deployment's engine loads it from the registry unchanged
    classifier = EmotionClassifier.from_registry(ModelRegistry(registry), cpu_threads=2)
    assert classifier.version == summary["version"]
    assert classifier.predict_batch(["thank you so much, that's wonderful"])[0].label == "positive"

    assert _run_cli("eval", "emotion", "--model", str(registry), "--data", str(dev),
                    "--report-dir", str(tmp_path / "report"), "--json") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["macro_f1"] == pytest.approx(metrics["eval_macro_f1"], abs=1e-4)
    assert result["n"] == metrics["n_eval"]
    assert (tmp_path / "report" / "per_class.csv").is_file()
