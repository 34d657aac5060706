"""Lead priority by predicted conversion: the registered conversion model (issue 6,
`callfleet train conversion`) as the dialer's `ConversionScorer`, when there is one."""

from __future__ import annotations

import logging
from pathlib import Path

from cluster.dialer.leads import Lead
from training.conversion.model import ConversionModel
from training.models.registry import ModelRegistry

log = logging.getLogger("callfleet.dialer.scoring")


def registered_scorer(registry_path: str | Path | None):
    """`(lead) -> probability` from the current conversion version, or None when no
    conversion model is registered (leads are then ordered by their tags only)."""
    if registry_path is None:
        return None

    registry = ModelRegistry(registry_path)
    if not registry.current("conversion"):
        return None
    try:
        model = ConversionModel.from_registry(registry)
    except Exception as exc:  # a broken model must not stop an import
        log.warning("conversion model not usable, ordering leads by tags: %s", exc)
        return None

    def score(lead: Lead) -> float:
        features = {**lead.variables, "region": lead.region, "spending_tier": lead.tier,
                    "tier": lead.tier, "vip": lead.vip}
        return model.predict(features)

    return score
