"""Pacing decisions: progressive dials one per free slot, fixed ratio N per slot,
predictive dials more when answers are rare and calls are about to end, fewer when the
abandonment rate nears the cap, none beyond certainty at the cap, and respects agents."""

from __future__ import annotations

import pytest

from cluster.dialer.campaign import ComplianceConfig, PacingConfig
from cluster.dialer.pacing import AbandonmentBudget, CallStatistics, PacingSnapshot, plan_dials

pytestmark = pytest.mark.unit

COMPLIANCE = ComplianceConfig()
CLEAN = AbandonmentBudget(answered=1000, abandoned=0)


def measured(answer_rate: float, dials: int = 400, ring_s: float = 8.0,
             handle_s: float = 120.0) -> CallStatistics:
    stats = CallStatistics()
    answered = round(dials * answer_rate)
    for i in range(dials):
        stats.dial_resolved(i < answered, ring_s if i < answered else None)
    for _ in range(100):
        stats.call_finished(handle_s)
    return stats


def decide(mode: str = "predictive", snapshot: PacingSnapshot | None = None,
           stats: CallStatistics | None = None, budget: AbandonmentBudget = CLEAN, **pacing):
    return plan_dials(PacingConfig(mode=mode, **pacing), COMPLIANCE,
                      snapshot or PacingSnapshot(free_slots=5), stats or measured(0.3), budget)


def test_progressive_dials_one_per_free_slot_minus_calls_ringing():
    assert decide("progressive", PacingSnapshot(free_slots=5)).dials == 5
    assert decide("progressive", PacingSnapshot(free_slots=5, ringing_elapsed_s=[1, 2])).dials == 3
    assert decide("progressive", PacingSnapshot(free_slots=0)).dials == 0


def test_fixed_ratio_keeps_ratio_lines_per_free_slot():
    assert decide("fixed_ratio", PacingSnapshot(free_slots=4), ratio=3).dials == 12
    assert decide("fixed_ratio", PacingSnapshot(free_slots=4, ringing_elapsed_s=[0] * 10),
                  ratio=3).dials == 2


def test_limits_cap_every_mode():
    assert decide("fixed_ratio", PacingSnapshot(free_slots=100), ratio=5,
                  max_dials_per_tick=7).dials == 7
    assert decide("fixed_ratio", PacingSnapshot(free_slots=100, ringing_elapsed_s=[0] * 8),
                  ratio=5, max_lines=10).dials == 2


def test_predictive_dials_more_when_fewer_people_answer():
    snapshot = PacingSnapshot(free_slots=5)
    rare = decide(snapshot=snapshot, stats=measured(0.1)).dials
    common = decide(snapshot=snapshot, stats=measured(0.6)).dials
    assert rare > common >= 5
    assert rare > 5 / 0.6  # more than one expected answer per slot's worth


def test_predictive_counts_calls_about_to_end_as_capacity():
    busy_long = PacingSnapshot(free_slots=0, busy_elapsed_s=[300.0] * 10)
    busy_fresh = PacingSnapshot(free_slots=0, busy_elapsed_s=[1.0] * 10)
    stats = CallStatistics()
    for i in range(400):
        stats.dial_resolved(i % 3 == 0, 8.0 if i % 3 == 0 else None)
    for length in range(60, 310, 10):  # calls last 60-300 s
        stats.call_finished(float(length))
    assert decide(snapshot=busy_long, stats=stats).dials > decide(snapshot=busy_fresh, stats=stats).dials
    assert decide("progressive", snapshot=busy_long).dials == 0


def test_predictive_tapers_as_abandonment_nears_the_cap_and_stops_risking_at_it():
    snapshot = PacingSnapshot(free_slots=10)
    low = decide(snapshot=snapshot, budget=AbandonmentBudget(1000, 5)).dials  # 0.5 %
    near = decide(snapshot=snapshot, budget=AbandonmentBudget(1000, 27)).dials  # 2.7 %
    at_cap = decide(snapshot=snapshot, budget=AbandonmentBudget(1000, 30))  # 3 %
    assert low > near >= at_cap.dials == 10
    assert "cap" in at_cap.reason
    fixed = decide("fixed_ratio", snapshot, ratio=3, budget=AbandonmentBudget(1000, 31))
    assert fixed.dials == 10  # over the cap even fixed ratio falls back to one per slot


def test_predictive_warms_up_progressively():
    fresh = CallStatistics()
    decision = decide(snapshot=PacingSnapshot(free_slots=4), stats=fresh)
    assert decision.dials == 4 and "warming up" in decision.reason


def test_escalations_are_bounded_by_free_agents():
    stats = measured(0.2)
    for _ in range(100):
        stats.call_finished(120.0, escalated=True)  # half the calls escalate
    snapshot = PacingSnapshot(free_slots=20)
    unbounded = decide(snapshot=snapshot, stats=stats).dials
    no_agents = decide(snapshot=PacingSnapshot(free_slots=20, free_agents=0), stats=stats).dials
    assert no_agents < unbounded
    assert no_agents * 0.2 * 0.5 <= 1.0 + 0.2  # expected escalations within the slack


def test_statistics_survive_a_checkpoint():
    stats = measured(0.25, dials=50)
    again = CallStatistics.from_dict(stats.to_dict())
    pacing = PacingConfig()
    assert again.answer_rate(pacing) == stats.answer_rate(pacing)
    assert again.mean_handle_s(pacing) == stats.mean_handle_s(pacing)
    assert again.dials == 50
