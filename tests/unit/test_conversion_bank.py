"""The conversion model on bank-marketing-shaped leads (invented rows, a few hundred): what
the pre-dial feature spec may read, how bad files are told, train -> calibrate -> evaluate,
and the CLI's JSON line."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest

from cluster.cli.train import register
from training.conversion.calibration import Calibrator, expected_calibration_error
from training.conversion.data import write_sample
from training.conversion.evaluate import evaluate_conversion
from training.conversion.features import (
    BANK_MARKETING,
    BANK_MARKETING_NO_CALENDAR,
    SPECS,
    SYNTHETIC_LEADS,
    FeatureSpec,
    Numeric,
    read_labelled,
)
from training.conversion.model import ConversionModel, train_conversion
from training.errors import TrainingInputError
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.unit

BANK_HEADER = ("age", "job", "marital", "education", "default", "balance", "housing", "loan",
               "contact", "day", "month", "duration", "campaign", "pdays", "previous",
               "poutcome", "y")


def bank_rows(n: int, seed: int = 0) -> list[list[str]]:
    """Bank-full-shaped rows; a success in the previous campaign and a cellular contact
    make a yes likelier, so a model has something to find."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        poutcome = rng.choice(("failure", "other", "success", "unknown", "unknown", "unknown"))
        contact = rng.choice(("cellular", "telephone", "unknown"))
        chance = 0.08 + 0.5 * (poutcome == "success") + 0.1 * (contact == "cellular")
        pdays = "-1" if poutcome == "unknown" else str(rng.randint(1, 400))
        rows.append([
            str(rng.randint(18, 90)), rng.choice(BANK_MARKETING.categorical["job"]),
            rng.choice(("divorced", "married", "single")), rng.choice(("primary", "secondary", "tertiary", "unknown")),
            rng.choice(("no", "yes")), str(rng.randint(-500, 20000)), rng.choice(("no", "yes")),
            rng.choice(("no", "yes")), contact, str(rng.randint(1, 31)),
            rng.choice(BANK_MARKETING.categorical["month"]), str(rng.randint(0, 900)),
            str(rng.randint(1, 8)), pdays, "0" if pdays == "-1" else str(rng.randint(1, 5)),
            poutcome, "yes" if rng.random() < chance else "no",
        ])
    return rows


def write_bank(path: Path, rows: list[list[str]], delimiter: str = ",", quoted: bool = False) -> Path:
    def cell(v: str) -> str:
        return f'"{v}"' if quoted else v

    lines = [delimiter.join(cell(c) for c in BANK_HEADER)]
    lines += [delimiter.join(cell(c) for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_pre_dial_spec_never_reads_the_call_duration() -> None:
    for spec in (BANK_MARKETING, BANK_MARKETING_NO_CALENDAR):
        assert "duration" in spec.post_call
        assert "duration" not in spec.columns
        assert not any(name.startswith("duration") for name in spec.feature_names())
    # the previous campaigns' history is known before dialling and is used
    assert {"pdays", "previous", "poutcome", "campaign"} <= set(BANK_MARKETING.columns)
    assert not {"day", "month"} & set(BANK_MARKETING_NO_CALENDAR.columns)


def test_a_spec_refuses_a_post_call_column_as_a_feature() -> None:
    with pytest.raises(ValueError, match="duration is known only after the call"):
        FeatureSpec(name="leaky", target="y", positive="yes", negative="no",
                    features=(Numeric("age"), Numeric("duration")), post_call=("duration",))


def test_changing_the_duration_does_not_change_the_features(tmp_path: Path) -> None:
    rows = bank_rows(150)
    short = read_labelled(write_bank(tmp_path / "a.csv", rows))
    for row in rows:
        row[BANK_HEADER.index("duration")] = "4000"
    long = read_labelled(write_bank(tmp_path / "b.csv", rows))
    assert np.array_equal(BANK_MARKETING.encode(short.rows), BANK_MARKETING.encode(long.rows),
                          equal_nan=True)


def test_uci_semicolon_quoted_files_and_the_spec_are_detected(tmp_path: Path) -> None:
    data = read_labelled(write_bank(tmp_path / "bank-full.csv", bank_rows(120), ";", quoted=True))
    assert data.spec is BANK_MARKETING and data.delimiter == ";"
    assert len(data.rows) == 120 and set(np.unique(data.y)) == {0, 1}
    x = data.spec.encode(data.rows)
    pdays = data.spec.feature_names().index("pdays")
    never = [i for i, r in enumerate(data.rows) if r["pdays"] == "-1"]
    assert never and np.isnan(x[never, pdays]).all()  # -1 = never contacted before: no value


def test_synthetic_files_keep_their_spec(tmp_path: Path) -> None:
    data = read_labelled(write_sample(tmp_path / "s.csv", rows=150))
    assert data.spec is SYNTHETIC_LEADS
    assert read_labelled(tmp_path / "s.csv", "synthetic_leads").spec is SYNTHETIC_LEADS
    assert set(SPECS) == {"synthetic_leads", "bank_marketing", "bank_marketing_no_calendar"}


def test_bad_rows_name_line_and_column_but_not_the_value(tmp_path: Path) -> None:
    rows = bank_rows(150)
    rows[2][BANK_HEADER.index("balance")] = "+1 555 0100 PRIVATE"  # line 4
    rows[5][BANK_HEADER.index("job")] = "astronaut-jane-doe"  # line 7
    rows[8][-1] = "maybe"  # line 10
    rows[9] = rows[9][:5]  # line 11: a short row
    path = write_bank(tmp_path / "bad.csv", rows)
    with pytest.raises(TrainingInputError) as caught:
        read_labelled(path)
    message = str(caught.value)
    assert "4 bad value(s)" in message
    assert "line 4, column 'balance': not a number" in message
    assert "line 7, column 'job': not one of the 12 known values" in message
    assert "line 10, column 'y': must be no or yes" in message
    assert "line 11: 5 fields, the header has 17" in message
    assert "555" not in message and "PRIVATE" not in message and "jane" not in message


def test_files_matching_no_spec_or_too_small_are_explained(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("phone,outcome\n+15550100,yes\n")
    with pytest.raises(TrainingInputError, match="matches no feature spec"):
        read_labelled(odd)
    with pytest.raises(TrainingInputError, match="missing column.*for spec bank_marketing"):
        read_labelled(odd, "bank_marketing")
    with pytest.raises(TrainingInputError, match="unknown feature spec"):
        read_labelled(odd, "nope")
    with pytest.raises(TrainingInputError, match="at least 100 rows"):
        read_labelled(write_bank(tmp_path / "few.csv", bank_rows(20)))


def test_scoring_is_lenient_for_the_dialers_leads() -> None:
    x = BANK_MARKETING.encode([{"job": "astronaut", "age": "n/a", "phone": "+15550100"}, {}])
    assert x.shape == (2, len(BANK_MARKETING.feature_names()))
    assert not x[:, :len(BANK_MARKETING.feature_names()) - len(BANK_MARKETING.numeric)].any()
    assert np.isnan(x[:, -len(BANK_MARKETING.numeric):]).all()
    assert FeatureSpec.from_json(BANK_MARKETING.to_json()).feature_names() == BANK_MARKETING.feature_names()


# -- train, calibrate, evaluate ---------------------------------------------------------------

SMALL_GRID = ({"max_depth": 2, "min_child_weight": 1},)


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("bank")
    data = write_bank(folder / "bank.csv", bank_rows(400, seed=3), ";")
    registry = ModelRegistry(folder / "registry")
    info = train_conversion(registry, data, seed=0, rounds=60, folds=3, grid=SMALL_GRID)
    return data, registry, info


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="callfleet")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_a_bank_file_trains_a_calibrated_version_without_duration(bank) -> None:
    _, registry, info = bank
    config, m = info.meta["training_config"], info.metrics
    assert config["spec"] == "bank_marketing" and config["calibration"] == "platt"
    assert "duration" not in config["features"] and config["post_call_excluded"] == ["duration"]
    assert m["n_train"] + m["n_calibration"] + m["n_test"] == 400
    assert 0.6 < m["test_auc"] <= 1.0 and 0.0 <= m["test_ece"] < 0.3
    assert m["cv_candidates"][0]["max_depth"] == 2 and m["trees"] >= 1
    assert (info.path / "calibration.json").is_file()
    model = ConversionModel.from_registry(registry)
    lead = {"poutcome": "success", "contact": "cellular", "pdays": "30", "phone": "+15550100"}
    cold = {"poutcome": "failure", "contact": "unknown", "pdays": "-1"}
    assert model.predict({**lead, "duration": "1"}) == model.predict({**lead, "duration": "3000"})
    assert 0.0 <= model.predict(cold) < model.predict(lead) <= 1.0


def test_eval_re_carves_the_held_out_split_and_matches_training(bank, tmp_path: Path) -> None:
    data, _, info = bank
    result = evaluate_conversion(info.path, data)
    assert result["split"] == "holdout" and result["n"] == info.metrics["n_test"]
    assert result["roc_auc"] == pytest.approx(info.metrics["test_auc"], abs=1e-3)
    assert result["ece"] == pytest.approx(info.metrics["test_ece"], abs=1e-3)
    other = write_bank(tmp_path / "other.csv", bank_rows(150, seed=9))
    assert evaluate_conversion(info.path, other)["split"] == "all"
    with pytest.raises(TrainingInputError, match="needs the file"):
        evaluate_conversion(info.path, other, split="holdout")


def test_cli_eval_prints_one_json_object_last(bank, capsys) -> None:
    data, registry, info = bank
    assert _run("eval", "conversion", "--model", str(registry.root), "--data", str(data),
                "--json") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["version"] == info.version and result["split"] == "holdout"
    assert {"roc_auc", "pr_auc", "ece", "ece_quantile", "ece_binning"} <= set(result)
    assert "equal-width" in result["ece_binning"]
    assert _run("eval", "conversion", "--model", str(info.path), "--data", str(data)) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "ROC AUC" in captured.err and "PR AUC" in captured.err


def test_cli_train_takes_the_bank_file_and_bad_requests_exit_2(tmp_path: Path, capsys) -> None:
    data = write_bank(tmp_path / "bank.csv", bank_rows(300, seed=4))
    assert _run("train", "conversion", "--data", str(data), "--out", str(tmp_path / "reg"),
                "--folds", "2", "--json") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kind"] == "conversion" and 0.5 < summary["metrics"]["test_auc"] <= 1
    assert _run("train", "conversion", "--data", str(data), "--out", str(tmp_path / "reg"),
                "--spec", "synthetic_leads") == 2
    assert "missing column" in capsys.readouterr().err
    assert _run("eval", "conversion", "--model", str(tmp_path / "reg"), "--data",
                str(tmp_path / "nope.csv")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_calibration_and_ece() -> None:
    rng = np.random.default_rng(0)
    p_true = rng.uniform(0, 0.4, 4000)
    y = (rng.uniform(size=4000) < p_true).astype(int)
    overconfident = np.clip(p_true * 2, 0, 1)
    assert expected_calibration_error(y, p_true) < 0.02 < expected_calibration_error(y, overconfident)
    for method in ("isotonic", "platt"):
        fitted = Calibrator.fit(overconfident, y, method)
        again = Calibrator.from_json(json.loads(json.dumps(fitted.to_json())))
        assert expected_calibration_error(y, again.apply(overconfident)) < 0.02
    assert expected_calibration_error(y, p_true, strategy="quantile") < 0.03
