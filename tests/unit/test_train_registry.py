"""Registry additions for training: metrics recorded after a build, `models compare`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cluster.cli.models import register
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.unit

META = {"base_model": "t", "label_map": {"0": "a"}, "training_config": {}, "data_sha256": "0" * 64}


def _build(registry: ModelRegistry, **metrics) -> str:
    version, folder = registry.new_version_dir("intent")
    (folder / "config.json").write_text("{}")
    return registry.commit("intent", version, {**META, "metrics": metrics}).version


def test_update_meta_merges_metrics_and_keeps_the_rest(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = _build(registry, holdout_accuracy=0.9)
    registry.update_meta("intent", version, {"onnx_max_abs_diff": 2e-7})
    info = registry.get("intent", version)
    assert info.metrics == {"holdout_accuracy": 0.9, "onnx_max_abs_diff": 2e-7}
    assert info.meta["base_model"] == "t" and info.meta["version"] == version


def test_compare_puts_versions_side_by_side(tmp_path: Path, capsys) -> None:
    registry = ModelRegistry(tmp_path)
    _build(registry, holdout_accuracy=0.91, train_seconds=300.0)
    _build(registry, holdout_accuracy=0.93, onnx_max_abs_diff=1e-7)
    registry.promote("intent", "v0002")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> int:
        args = parser.parse_args(["models", "--registry", str(tmp_path), *argv])
        return args.func(args)

    assert run("compare", "intent", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["current"] == "v0002"
    assert report["metrics"]["v0001"] == {"holdout_accuracy": 0.91, "train_seconds": 300.0}
    assert run("compare", "intent") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "holdout_accuracy" in line)
    assert "0.910" in row and "0.930" in row and "v0002 *" in out
    assert run("compare", "intent", "v9") == 2
