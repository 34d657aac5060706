"""`callfleet train intent` / `eval intent` end to end on tiny real data (MiniLM, 1-2 epochs).

Small subsets of BANKING77 and CLINC150 keep this to well under a minute; the figures
that matter (accuracy targets) are the benchmarks' job, not these tests'.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training.intent.build import IntentBuildOptions, train_intent
from training.intent.config import IntentTrainConfig
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.models

FAST = IntentTrainConfig(epochs=2, lr=2e-4, batch_size=16, max_length=32, validation=0.15,
                         holdout=0.2, cpu_threads=2)


def _run_cli(*argv: str) -> int:
    from cluster.cli.train import register

    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def banking_subset(shared_datasets: Path, tmp_path_factory) -> Path:
    rows = list(csv.DictReader(open(shared_datasets / "banking77" / "train.csv", encoding="utf-8")))
    keep = {"card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"}
    taken: Counter[str] = Counter()
    out = tmp_path_factory.mktemp("banking") / "subset.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        for row in rows:
            if row["category"] in keep and taken[row["category"]] < 30:
                taken[row["category"]] += 1
                writer.writerow(row)
    return out


@pytest.fixture(scope="module")
def banking_version(banking_subset: Path, tmp_path_factory):
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    info = train_intent(registry, banking_subset, FAST, IntentBuildOptions(onnx=True))
    return registry, info


def test_version_records_everything_needed_to_reproduce_it(banking_version, banking_subset) -> None:
    registry, info = banking_version
    assert registry.current("intent") == info.version
    for name in ("config.json", "model.safetensors", "tokenizer.json", "model.onnx", "meta.json"):
        assert (info.path / name).is_file(), name
    meta = info.meta
    assert sorted(meta["label_map"].values()) == [
        "card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]
    assert meta["training_config"]["seed"] == 0 and meta["training_config"]["holdout"] == 0.2
    assert meta["training_config"]["pooling"] == "mean"  # the default head
    assert json.loads((info.path / "config.json").read_text())["model_type"] == "callfleet-meanpool-bert"
    assert len(meta["data_sha256"]) == 64
    m = info.metrics
    assert m["n_holdout"] == 24 and m["n_train"] + m["n_val"] + m["n_holdout"] == 120
    assert 0.0 <= m["holdout_accuracy"] <= 1.0 and m["epochs_run"] <= 2
    assert m["onnx_max_abs_diff"] <= 1e-4


def test_onnx_and_torch_engines_agree(banking_version) -> None:
    from training.models.intent import IntentClassifier

    _, info = banking_version
    texts = ["my card has not arrived yet", "what rate do you use for euros", "", "top up failed"]
    onnx = IntentClassifier(info.path, backend="onnx", cpu_threads=2)
    torch_ = IntentClassifier(info.path, backend="torch", cpu_threads=2)
    assert onnx.backend == "onnx" and torch_.backend == "torch"
    spoken = [t for t in texts if t]
    assert np.abs(onnx.predict_proba(spoken) - torch_.predict_proba(spoken)).max() < 1e-4
    assert [r.label for r in onnx.predict_batch(texts)] == [r.label for r in torch_.predict_batch(texts)]


def test_eval_reproduces_the_holdout_and_ends_with_json(banking_version, banking_subset, tmp_path,
                                                        capsys) -> None:
    _, info = banking_version
    report = tmp_path / "report"
    code = _run_cli("eval", "intent", "--model", str(info.path), "--data", str(banking_subset),
                    "--split", "holdout", "--report-dir", str(report), "--json")
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == info.metrics["n_holdout"] and result["split"] == "holdout"
    assert result["accuracy"] == pytest.approx(info.metrics["holdout_accuracy"], abs=1e-4)
    assert {"accuracy", "macro_f1", "n"} <= set(result) and "oos_recall" not in result
    assert (report / "confusion.png").stat().st_size > 1000
    assert len(json.loads((report / "per_class.json").read_text())) == 4


def test_eval_refuses_holdout_of_a_different_file(banking_version, tmp_path, capsys) -> None:
    _, info = banking_version
    other = tmp_path / "other.csv"
    other.write_text("text,category\nhello,a\nbye,b\n")
    assert _run_cli("eval", "intent", "--model", str(info.path), "--data", str(other),
                    "--split", "holdout") == 2
    assert "needs the exact file" in capsys.readouterr().err.replace("\n", "")


def test_clinc_layout_with_out_of_scope_rows(shared_datasets: Path, tmp_path: Path, capsys) -> None:
    doc = json.loads((shared_datasets / "clinc150" / "clinc150_train_val.json").read_text())
    keep = {"alarm", "weather", "translate"}

    def pick(section: str, n: int) -> list:
        rows = [r for r in doc[section] if r[1] in keep or section.startswith("oos")]
        counts: Counter[str] = Counter()
        out = []
        for text, label in rows:
            if counts[label] < n:
                counts[label] += 1
                out.append([text, label])
        return out

    small = {"train": pick("train", 30), "oos_train": pick("oos_train", 30),
             "val": pick("val", 10), "oos_val": pick("oos_val", 10)}
    data = tmp_path / "clinc_small.json"
    data.write_text(json.dumps(small))
    registry = ModelRegistry(tmp_path / "registry")
    info = train_intent(registry, data, FAST.model_copy(update={"holdout": None}), IntentBuildOptions())
    assert "oos" in info.meta["label_map"].values()
    assert info.metrics["n_holdout"] == 0  # CLINC150 brings its own val split
    assert "eval_oos_recall" in info.metrics and "eval_in_scope_accuracy" in info.metrics
    assert _run_cli("eval", "intent", "--model", str(registry.root), "--data", str(data),
                    "--json") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["split"] == "val" and result["n"] == 40 and result["n_oos"] == 10
    assert {"oos_recall", "in_scope_accuracy", "accuracy", "macro_f1"} <= set(result)
    assert result["oos_recall"] == pytest.approx(info.metrics["eval_oos_recall"], abs=1e-4)
