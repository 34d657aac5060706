"""SYNTHETIC lead data for the conversion-model demo — not real customers, not real outcomes.

`generate_leads` draws leads with the features the dialer knows before a call (offer,
discount, age band, region, spending tier, call history) and a 0/1 ``converted`` outcome
from a hand-written logistic model plus noise. The effects are invented but plausible,
so a trained model has something to find and the demo can order leads by it:

* a bigger discount helps, with diminishing returns;
* premium offers convert better with high spenders, basic plans with low spenders;
* a callback requested last time helps a lot, "not interested" hurts, and every
  unanswered attempt lowers the odds a little;
* age and region shift the base rate slightly.

Every row carries ``synthetic=true`` so a sample file is never mistaken for real data.

    callfleet train conversion --generate-sample var/leads_synthetic.csv --rows 20000
"""

from __future__ import annotations

import csv
import math
import os
import random
from pathlib import Path

__all__ = ["CATEGORIES", "COLUMNS", "NUMERIC", "generate_leads", "write_sample"]

CATEGORIES: dict[str, tuple[str, ...]] = {
    "offer": ("basic_plan", "family_pack", "loyalty_bundle", "premium_upgrade"),
    "age_band": ("18-24", "25-34", "35-44", "45-54", "55-64", "65+"),
    "region": ("central", "east", "north", "south", "west"),
    "spending_tier": ("low", "mid", "high", "vip"),
    "last_outcome": ("none", "no_answer", "callback", "not_interested"),
}
#: numeric features; ``days_since_last_call`` is empty when the lead was never called
NUMERIC = ("discount_pct", "previous_calls", "previous_answered", "days_since_last_call")
COLUMNS = ("lead_id", *CATEGORIES, *NUMERIC, "converted", "synthetic")

_OFFER = {"basic_plan": 0.0, "family_pack": 0.15, "loyalty_bundle": 0.25, "premium_upgrade": -0.2}
_TIER = {"low": -0.4, "mid": 0.0, "high": 0.3, "vip": 0.5}
_AGE = {"18-24": -0.3, "25-34": 0.1, "35-44": 0.2, "45-54": 0.1, "55-64": -0.1, "65+": -0.3}
_REGION = {"central": 0.0, "east": 0.1, "north": -0.15, "south": 0.05, "west": 0.15}
_LAST = {"none": 0.0, "no_answer": -0.2, "callback": 1.1, "not_interested": -1.4}


def _lead(rng: random.Random, number: int) -> dict[str, object]:
    tier = rng.choices(CATEGORIES["spending_tier"], weights=(35, 40, 18, 7))[0]
    offer = rng.choice(CATEGORIES["offer"])
    age = rng.choices(CATEGORIES["age_band"], weights=(12, 22, 22, 18, 14, 12))[0]
    region = rng.choice(CATEGORIES["region"])
    discount = rng.choice((0, 0, 5, 10, 10, 15, 20, 25, 30, 40))
    calls = min(int(rng.expovariate(0.7)), 8)
    answered = sum(rng.random() < 0.45 for _ in range(calls))
    if calls == 0:
        last, days = "none", None
    else:
        last = rng.choices(("no_answer", "callback", "not_interested"),
                           weights=(calls - answered + 0.01, answered * 0.4 + 0.01, answered * 0.6 + 0.01))[0]
        days = rng.randint(1, 120)
    logit = -2.2 + _OFFER[offer] + _TIER[tier] + _AGE[age] + _REGION[region] + _LAST[last]
    logit += 0.9 * math.log1p(discount / 10)
    if offer == "premium_upgrade":
        logit += {"low": -0.6, "mid": 0.0, "high": 0.7, "vip": 1.1}[tier]
    if offer == "basic_plan" and tier == "low":
        logit += 0.4
    logit -= 0.15 * (calls - answered)
    if days is not None and last == "callback":
        logit -= 0.01 * days  # a callback goes cold
    logit += rng.gauss(0.0, 0.5)
    converted = int(rng.random() < 1 / (1 + math.exp(-logit)))
    return {
        "lead_id": f"SYN{number:07d}", "offer": offer, "age_band": age, "region": region,
        "spending_tier": tier, "last_outcome": last, "discount_pct": discount,
        "previous_calls": calls, "previous_answered": answered,
        "days_since_last_call": "" if days is None else days,
        "converted": converted, "synthetic": "true",
    }


def generate_leads(rows: int, seed: int = 0) -> list[dict[str, object]]:
    """`rows` synthetic leads; the same seed always gives the same file."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = random.Random(seed)
    return [_lead(rng, i + 1) for i in range(rows)]


def write_sample(path: str | os.PathLike, rows: int = 20000, seed: int = 0) -> Path:
    """Write a synthetic leads CSV (header `COLUMNS`) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(generate_leads(rows, seed))
    return path
