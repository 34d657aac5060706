"""Lead priority from the registered conversion model."""

from __future__ import annotations

import pytest

from cluster.dialer.leads import Lead
from cluster.dialer.scoring import registered_scorer
from training.conversion.data import write_sample
from training.conversion.model import train_conversion
from training.models.registry import ModelRegistry

pytestmark = pytest.mark.unit


def lead(i: int, **variables: str) -> Lead:
    return Lead(id=f"L{i}", phone=f"+1212555{i:04d}", timezone="UTC", tz_source="column",
                region="north", tier=variables.pop("tier", "mid"), variables=variables)


def test_no_conversion_model_means_tags_only(tmp_path) -> None:
    assert registered_scorer(tmp_path / "registry") is None


def test_the_registered_model_scores_leads(tmp_path) -> None:
    data = write_sample(tmp_path / "leads.csv", rows=1500, seed=2)
    registry = ModelRegistry(tmp_path / "registry")
    version = train_conversion(registry, data, seed=0, rounds=50)
    registry.promote("conversion", version.version)
    score = registered_scorer(registry.root)
    assert score is not None
    keen = score(lead(1, offer="premium_upgrade", discount_pct="30", previous_answered="3",
                      last_outcome="callback", tier="high"))
    cold = score(lead(2, offer="premium_upgrade", discount_pct="0", previous_answered="0",
                      last_outcome="not_interested", tier="low"))
    assert 0.0 <= cold <= 1.0 and 0.0 <= keen <= 1.0
    assert keen != cold  # the features reach the model
