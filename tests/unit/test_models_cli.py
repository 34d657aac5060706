"""`callfleet models`: listing, showing, promoting and rolling back registry versions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cluster.cli.models import HISTORY_FILE, register
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.unit


def _meta(accuracy: float, sha: str) -> dict:
    return {
        "base_model": "tiny-test-encoder",
        "label_map": {"0": "billing", "1": "cancel", "10": "other"},
        "metrics": {
            "holdout_accuracy": accuracy,
            "n_train": 120,
            "recall_per_intent": {"billing": 0.5},  # nested: only `show` prints it
            "eval_source": "synthetic",
        },
        "training_config": {"epochs": 1},
        "data_sha256": sha * 64,
    }


def _build(registry: ModelRegistry, kind: str, accuracy: float, sha: str) -> str:
    version, folder = registry.new_version_dir(kind)
    (folder / "weights.bin").write_bytes(b"\0" * 2048)
    return registry.commit(kind, version, _meta(accuracy, sha)).version


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry")
    for accuracy, sha in ((0.81234, "a"), (0.85, "b"), (0.9, "c")):
        _build(reg, "intent", accuracy, sha)
    for accuracy, sha in ((0.6, "d"), (0.7, "e")):
        _build(reg, "emotion", accuracy, sha)
    reg.promote("intent", "v0001")
    reg.promote("emotion", "v0002")
    return reg


def _run(registry: ModelRegistry, *argv: str) -> int:
    """Parse and dispatch the way cluster/cli.py does (`args.func(args)`)."""
    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["models", "--registry", str(registry.root), *argv])
    return args.func(args)


def test_list_shows_versions_metrics_and_current(registry, capsys) -> None:
    assert _run(registry, "list") == 0
    out = capsys.readouterr().out
    assert "intent models" in out and "emotion models" in out
    for version in ("v0001", "v0002", "v0003"):
        assert version in out
    assert "holdout_accuracy" in out and "0.812" in out and "0.900" in out
    assert "n_train" in out and "recall_per_intent" not in out
    current_rows = [line for line in out.splitlines() if "*" in line]
    assert any("v0001" in line for line in current_rows)  # intent current
    assert "aaaaaaaaaaaa" in out and "a" * 13 not in out  # short sha


def test_list_json_marks_current(registry, capsys) -> None:
    assert _run(registry, "list", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    intent = report["kinds"]["intent"]
    assert intent["current"] == "v0001"
    assert [v["version"] for v in intent["versions"]] == ["v0001", "v0002", "v0003"]
    assert [v["current"] for v in intent["versions"]] == [True, False, False]
    assert intent["versions"][2]["metrics"] == {"holdout_accuracy": 0.9, "n_train": 120}
    assert report["kinds"]["emotion"]["current"] == "v0002"


def test_list_one_kind_and_extra_kind_folders(registry, capsys) -> None:
    _build(registry, "sentiment", 0.5, "f")
    assert _run(registry, "list", "--json") == 0
    assert set(json.loads(capsys.readouterr().out)["kinds"]) == {"intent", "emotion", "sentiment"}
    assert _run(registry, "list", "emotion", "--json") == 0
    assert list(json.loads(capsys.readouterr().out)["kinds"]) == ["emotion"]


def test_show_defaults_to_current_and_prints_everything(registry, capsys) -> None:
    assert _run(registry, "show", "intent") == 0
    out = capsys.readouterr().out
    assert "intent v0001" in out and "(current)" in out
    assert "tiny-test-encoder" in out and "billing" in out and "other" in out
    assert "recall_per_intent" in out and "0.812" in out
    assert str(registry.root / "intent" / "v0001") in out and "KiB" in out
    assert _run(registry, "show", "intent", "3", "--json") == 0  # "3" means v0003
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == "v0003" and shown["current"] is False
    assert shown["meta"]["metrics"]["holdout_accuracy"] == 0.9
    assert shown["size_bytes"] >= 2048


def test_promote_switches_current_and_records_history(registry, capsys) -> None:
    assert _run(registry, "promote", "intent", "v0003") == 0
    out = capsys.readouterr().out
    assert registry.current("intent") == "v0003"
    assert "v0001 -> v0003" in out and "0.812 -> 0.900" in out and "callfleet up" in out
    lines = (registry.root / "intent" / HISTORY_FILE).read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["from"] == "v0001" and record["to"] == "v0003" and record["at"]


def test_promote_current_version_changes_nothing(registry, capsys) -> None:
    assert _run(registry, "promote", "intent", "v0001") == 0
    assert "already current" in capsys.readouterr().out
    assert not (registry.root / "intent" / HISTORY_FILE).exists()


def test_rollback_walks_back_through_promotions(registry, capsys) -> None:
    assert _run(registry, "promote", "intent", "v0002") == 0
    assert _run(registry, "promote", "intent", "v0003") == 0
    assert _run(registry, "rollback", "intent") == 0
    assert registry.current("intent") == "v0002"
    assert "v0003 -> v0002" in capsys.readouterr().out
    assert _run(registry, "rollback", "intent") == 0  # further back, not a toggle
    assert registry.current("intent") == "v0001"
    assert _run(registry, "rollback", "intent") == 2
    assert "already been rolled back" in capsys.readouterr().err
    assert registry.current("intent") == "v0001"


def test_rollback_without_history_exits_2(registry, capsys) -> None:
    assert _run(registry, "rollback", "emotion") == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: no promotion history for emotion")
    assert len(captured.err.strip().splitlines()) == 1
    assert registry.current("emotion") == "v0002"


def test_unknown_version_exits_2_listing_available(registry, capsys) -> None:
    assert _run(registry, "promote", "intent", "v0009") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "v0009" in err and "available versions: v0001, v0002, v0003" in err
    assert registry.current("intent") == "v0001"


def test_unknown_kind_exits_2_listing_kinds(registry, capsys) -> None:
    assert _run(registry, "show", "sentiment") == 2
    err = capsys.readouterr().err
    assert "unknown model kind 'sentiment'" in err and "emotion, intent" in err
    assert _run(registry, "list", "Not-A-Kind") == 2


def test_empty_registry_lists_served_kinds_with_build_hint(tmp_path, capsys) -> None:
    empty = ModelRegistry(tmp_path / "nothing-here")
    assert _run(empty, "list") == 0
    assert "intent: no versions yet" in capsys.readouterr().out
    assert _run(empty, "show", "intent") == 2
    assert "no intent version is promoted" in capsys.readouterr().err


def test_registry_path_comes_from_settings(registry, tmp_path, capsys) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"registry_path: {registry.root}\n")
    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--config", str(config), "models", "list", "intent", "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["registry"] == str(registry.root.resolve())


def test_registry_option_is_accepted_after_the_action(registry, capsys) -> None:
    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "list", "--registry", str(registry.root), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["kinds"]["intent"]["current"] == "v0001"
