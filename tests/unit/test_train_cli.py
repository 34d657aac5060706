"""`callfleet train` / `callfleet eval`: what a user sees for good and bad requests."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cluster.cli.train import register

pytestmark = pytest.mark.unit


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_conversion_sample_then_training_ends_with_a_json_line(tmp_path: Path, capsys) -> None:
    sample = tmp_path / "leads.csv"
    assert _run("train", "conversion", "--generate-sample", str(sample), "--rows", "1500",
                "--json") == 0
    captured = capsys.readouterr()
    assert "SYNTHETIC" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1]) == {
        "sample": str(sample), "rows": 1500, "synthetic": True}
    assert _run("train", "conversion", "--data", str(sample), "--out", str(tmp_path / "reg"),
                "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "conversion" and summary["version"] == "v0001"
    assert summary["current"] == "v0001" and 0.5 < summary["metrics"]["test_auc"] <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "intent", "--data", "{tmp}/missing.csv", "--out", "{tmp}/r"], "does not exist"),
        (["train", "intent", "--data", "{tmp}/d.csv", "--out", "{tmp}/r", "--epochs", "0"],
         "--epochs"),
        (["train", "intent", "--data", "{tmp}/d.csv", "--out", "{tmp}/r", "--workers", "0"],
         "--workers must be at least 1"),
        (["train", "intent", "--data", "{tmp}/d.txt", "--out", "{tmp}/r"], "unknown format"),
        (["eval", "intent", "--model", "{tmp}", "--data", "{tmp}/d.csv"],
         "neither a model version folder"),
        (["eval", "intent", "--model", "{tmp}/r", "--data", "{tmp}/d.csv"], "no intent model"),
    ],
)
def test_mistakes_exit_2_with_one_clear_line(tmp_path: Path, capsys, argv, message) -> None:
    (tmp_path / "d.csv").write_text("text,category\nhi,greet\nbye,leave\n")
    (tmp_path / "d.txt").write_text("hi")
    (tmp_path / "r" / "intent").mkdir(parents=True)
    assert _run(*(a.replace("{tmp}", str(tmp_path)) for a in argv)) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", "") and "Traceback" not in err


def test_help_lists_every_training_kind(capsys) -> None:
    with pytest.raises(SystemExit):
        _run("train", "--help")
    out = capsys.readouterr().out
    for kind in ("intent", "emotion", "conversion"):
        assert kind in out
