"""Which script variant wins an A/B test: conversion per variant with a confidence
interval, a significance test, and the rule that may stop the test.

Counts come from the per-campaign variant counters (`cluster.records.conversations.
RedisConversionCounter`: calls a variant took, and those the script marked converted).

* Each variant's conversion rate gets a Wilson score interval (it stays inside 0..1 and
  behaves at small counts, unlike the normal approximation).
* All variants together: a chi-square test of independence on the k×2 table of
  converted / not converted (Fisher's exact test for two variants when an expected count
  is under 5).
* The best variant against each other one: two-sided Fisher's exact test, p-values
  Holm-corrected for the number of comparisons.

A variant **wins** when every variant has at least ``min_calls_per_variant`` calls and the
best one beats each other variant at the corrected ``alpha``. With the campaign's
``ab_test.auto_stop`` the dialer then sends every further call to the winner (the
``callfleet_variant`` channel variable, which the gateway hands to the bot): the test is
stopped, the winner recorded with its report (`pin_winner`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bots.script.variants import VariantStats
from cluster.dialer.campaign import ABTestConfig
from cluster.records.conversations import RedisConversionCounter

__all__ = ["ABReport", "VariantResult", "ab_report", "settle_ab_test", "wilson_interval"]


def wilson_interval(conversions: int, calls: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """The Wilson score interval of a conversion rate; (0, 1) without calls."""
    from scipy import stats as scipy_stats  # heavy: scipy, only when a report is made

    if calls <= 0:
        return 0.0, 1.0
    z = float(scipy_stats.norm.ppf(0.5 + confidence / 2))
    p = conversions / calls
    denominator = 1 + z * z / calls
    centre = (p + z * z / (2 * calls)) / denominator
    half = z * math.sqrt(p * (1 - p) / calls + z * z / (4 * calls * calls)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class VariantResult:
    variant: str
    calls: int
    conversions: int
    rate: float
    ci_low: float
    ci_high: float
    p_vs_best: float | None = None  # Holm-corrected; None for the best itself


@dataclass(frozen=True)
class ABReport:
    """The test's state: per-variant results (best first), the overall test, the verdict."""

    campaign: str
    variants: list[VariantResult]
    test: str  # chi-square | fisher | none
    p_value: float | None
    alpha: float
    min_calls_per_variant: int
    best: str | None
    winner: str | None
    reason: str
    confidence: float = 0.95
    pinned: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _holm(p_values: Mapping[str, float]) -> dict[str, float]:
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    m, running, adjusted = len(ordered), 0.0, {}
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[name] = running
    return adjusted


def _overall(table: list[list[int]]) -> tuple[str, float | None]:
    from scipy import stats as scipy_stats  # heavy: scipy, only when a report is made

    columns = [sum(row[i] for row in table) for i in (0, 1)]
    if len(table) < 2 or 0 in columns:  # nobody converted (or everybody did): no test
        return "none", None
    total = sum(columns)
    expected = [sum(row) * c / total for row in table for c in columns]
    if len(table) == 2 and min(expected) < 5:
        return "fisher", float(scipy_stats.fisher_exact(table)[1])
    _, p, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    return "chi-square", float(p)


def ab_report(campaign: str, counts: Mapping[str, VariantStats], alpha: float = 0.05,
              min_calls_per_variant: int = 200, confidence: float = 0.95) -> ABReport:
    """The report for one campaign's variant counts (see the module docstring)."""
    from scipy import stats as scipy_stats  # heavy: scipy, only when a report is made

    ranked = sorted(counts.items(), key=lambda item: (-item[1].rate, -item[1].calls, item[0]))
    table = [[s.conversions, max(0, s.calls - s.conversions)] for _, s in ranked]
    test, p_value = _overall(table)
    best = ranked[0][0] if ranked else None
    pairwise: dict[str, float] = {}
    if best is not None and len(ranked) > 1:
        top = counts[best]
        raw = {name: float(scipy_stats.fisher_exact(
            [[top.conversions, top.calls - top.conversions],
             [s.conversions, s.calls - s.conversions]])[1])
            for name, s in ranked[1:]}
        pairwise = _holm(raw)
    results = [VariantResult(name, s.calls, s.conversions, round(s.rate, 4),
                             *(round(x, 4) for x in wilson_interval(s.conversions, s.calls,
                                                                    confidence)),
                             p_vs_best=None if name == best else round(pairwise[name], 6))
               for name, s in ranked]
    winner, reason = None, ""
    if len(ranked) < 2:
        reason = "an A/B test needs at least two variants with calls"
    elif (short := [n for n, s in ranked if s.calls < min_calls_per_variant]):
        reason = (f"too few calls: {', '.join(short)} below {min_calls_per_variant} per variant")
    elif all(p < alpha for p in pairwise.values()):
        winner = best
        reason = (f"{best} converts better than every other variant (Holm-corrected p "
                  f"<= {max(pairwise.values()):.4g} < {alpha})")
    else:
        worst = max(pairwise, key=pairwise.get)
        reason = (f"no significant winner yet: {best} vs {worst} p = {pairwise[worst]:.4g} "
                  f"(alpha {alpha})")
    return ABReport(campaign, results, test, None if p_value is None else round(p_value, 6),
                    alpha, min_calls_per_variant, best, winner, reason, confidence)


async def settle_ab_test(counter: RedisConversionCounter, campaign_id: str,
                         rule: ABTestConfig) -> str | None:
    """The variant further calls of the campaign go to: the pinned winner, or — with
    ``auto_stop`` — the winner the report names now (pinned here, once); None while the
    test runs."""
    pinned = await counter.winner(campaign_id)
    if pinned:
        return str(pinned["variant"])
    if not rule.auto_stop:
        return None
    report = ab_report(campaign_id, await counter.report(campaign_id), rule.alpha,
                       rule.min_calls_per_variant)
    if report.winner is None:
        return None
    await counter.pin_winner(campaign_id, report.winner, report.to_dict())
    pinned = await counter.winner(campaign_id)  # another dialer may have pinned first
    return str(pinned["variant"]) if pinned else report.winner
