"""`benchmarks/dialer_sim.py`: it drives the real pacing code, prints the promised JSON,
and predictive pacing keeps slots busier than progressive within the abandonment cap."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SIM_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "dialer_sim.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("dialer_sim", SIM_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["dialer_sim"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("dialer_sim", None)


def test_json_output_has_every_strategy_and_figure(sim, capsys):
    assert sim.main(["--json", "--hours", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    strategies = json.loads(last)["strategies"]
    assert set(strategies) == {"progressive", "fixed_ratio", "predictive"}
    for figures in strategies.values():
        assert {"occupancy", "abandonment", "connects_per_hour"} <= set(figures)
        assert 0 <= figures["occupancy"] <= 1 and 0 <= figures["abandonment"] <= 1


def test_predictive_beats_progressive_within_the_cap(sim):
    scenario = sim.Scenario(hours=2.0)
    results = sim.run_all(scenario)
    assert results["progressive"]["abandonment"] == 0.0  # never dials beyond free slots
    assert results["predictive"]["occupancy"] > results["progressive"]["occupancy"] + 0.1
    assert results["predictive"]["abandonment"] <= 0.03
    assert results["predictive"]["connects_per_hour"] > results["progressive"]["connects_per_hour"]


def test_the_simulation_is_seeded(sim):
    scenario = sim.Scenario(hours=0.5, seed=3)
    assert sim.run_all(scenario) == sim.run_all(scenario)


def test_it_uses_the_dialer_pacing_code(sim):
    from cluster.dialer import pacing

    assert sim.plan_dials is pacing.plan_dials
