"""Lead-conversion model: synthetic data, training, calibration report, the dialer's loader."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from training.conversion.data import COLUMNS, generate_leads, write_sample
from training.conversion.model import ConversionModel, reliability_table, train_conversion
from training.errors import TrainingInputError
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("conv")
    data = write_sample(folder / "leads.csv", rows=3000, seed=1)
    registry = ModelRegistry(folder / "registry")
    return registry, train_conversion(registry, data, seed=0, rounds=200)


def test_sample_is_synthetic_reproducible_and_complete(tmp_path: Path) -> None:
    a = write_sample(tmp_path / "a.csv", rows=50, seed=3)
    b = write_sample(tmp_path / "b.csv", rows=50, seed=3)
    assert a.read_text() == b.read_text()
    rows = list(csv.DictReader(open(a)))
    assert tuple(rows[0]) == COLUMNS
    assert all(r["synthetic"] == "true" for r in rows)
    assert {r["converted"] for r in rows} <= {"0", "1"}
    assert generate_leads(50, seed=4) != generate_leads(50, seed=3)


def test_trained_version_has_auc_brier_and_calibration(trained) -> None:
    registry, info = trained
    assert registry.current("conversion") == info.version
    m = info.metrics
    assert 0.6 < m["test_auc"] <= 1.0
    assert 0.0 < m["test_brier"] < 0.25
    assert sum(row["count"] for row in m["reliability"]) == m["n_test"]
    assert (info.path / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert info.meta["synthetic_data"] is True


def test_dialer_can_rank_leads_by_probability(trained) -> None:
    registry, _ = trained
    model = ConversionModel.from_registry(registry)
    keen = {"offer": "premium_upgrade", "spending_tier": "vip", "discount_pct": 30,
            "last_outcome": "callback", "previous_calls": 1, "previous_answered": 1,
            "days_since_last_call": 2, "age_band": "35-44", "region": "west",
            "phone": "+15550100"}  # extra fields are ignored
    cold = {"offer": "premium_upgrade", "spending_tier": "low", "discount_pct": 0,
            "last_outcome": "not_interested", "previous_calls": 6, "previous_answered": 1,
            "days_since_last_call": 10, "age_band": "18-24", "region": "north"}
    p_keen, p_cold = model.predict(keen), model.predict(cold)
    assert 0.0 <= p_cold < p_keen <= 1.0
    assert 0.0 <= model.predict({"offer": "unheard_of"}) <= 1.0  # unknown values still score
    assert model.predict_many([keen, cold]) == pytest.approx([p_keen, p_cold])


def test_reliability_table_bins_predictions() -> None:
    import numpy as np

    table = reliability_table(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 0.91, 0.15]), bins=10)
    assert [row["bin"] for row in table] == ["0.0-0.1", "0.1-0.2", "0.9-1.0"]
    assert table[-1] == {"bin": "0.9-1.0", "count": 2, "mean_predicted": 0.93, "observed_rate": 1.0}


def test_bad_lead_files_are_explained(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "r")
    missing = tmp_path / "m.csv"
    missing.write_text("offer,converted\nbasic_plan,1\n")
    with pytest.raises(TrainingInputError, match="missing column"):
        train_conversion(registry, missing)
    bad = write_sample(tmp_path / "b.csv", rows=200)
    bad.write_text(bad.read_text().replace(",0,true", ",maybe,true", 1))
    with pytest.raises(TrainingInputError, match="must be 0 or 1"):
        train_conversion(registry, bad)
    assert registry.list("conversion") == []
