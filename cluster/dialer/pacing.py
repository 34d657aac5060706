"""How many numbers to dial now: progressive, fixed ratio and predictive pacing, with
abandonment control. Plain Python + numpy; the dialer engine and `benchmarks/dialer_sim.py`
both call `plan_dials`.

Predictive pacing is a small probabilistic model of the next few seconds. A call dialled
now, if answered, needs a slot about one answered-ring-time later (plus the connect
limit). Over that horizon:

* answers  A = one Bernoulli per call still ringing (its chance of still being answered,
  given how long it has rung) + Binomial(n, p) for the n new dials;
* capacity K = the free slots + one Bernoulli per busy call (its chance of ending within
  the horizon, given how long it has lasted, from the measured call lengths).

The expected overflow E[max(0, A - K)] is what would be abandoned. The pacer picks the
largest n whose overflow stays under `target x E[A]`, where the target is a share
(`safety`) of the abandonment cap, tapered linearly to zero as the campaign's rolling
rate climbs from `taper_from x cap` to the cap. At or above the cap every mode dials only
what can be connected for certain (free slots minus calls ringing), i.e. progressively;
fixed ratio, which cannot taper, does so from `safety x cap` already.
Free human agents bound the pace too: expected escalations of the answered calls must
fit the free agents (+ `escalation_slack`).

Measured rates start from the campaign's priors (`PacingConfig.initial_*`) weighted as
`prior_weight` calls, so a new campaign neither stalls nor over-dials on three samples.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cluster.dialer.campaign import ComplianceConfig, PacingConfig

__all__ = [
    "AbandonmentBudget",
    "CallStatistics",
    "PacingDecision",
    "PacingSnapshot",
    "plan_dials",
]

MIN_SAMPLES = 20  # below this many samples a distribution falls back to its prior mean
SAMPLE_WINDOW = 500


@dataclass(frozen=True)
class PacingSnapshot:
    """What the floor looks like now, for one campaign's share of the capacity."""

    free_slots: int
    busy_elapsed_s: Sequence[float] = ()
    ringing_elapsed_s: Sequence[float] = ()
    free_agents: int | None = None  # None: no human agents in the picture


@dataclass(frozen=True)
class AbandonmentBudget:
    """The campaign's rolling-window counts of live-answered and abandoned calls."""

    answered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    def target(self, compliance: ComplianceConfig, pacing: PacingConfig) -> float:
        """Expected-overflow share the pacer may risk now (0 = none)."""
        cap = compliance.abandon_cap
        if cap <= 0 or self.rate >= cap:
            return 0.0
        start = pacing.taper_from * cap
        taper = 1.0 if self.rate <= start else (cap - self.rate) / (cap - start)
        return cap * pacing.safety * max(0.0, min(1.0, taper))


@dataclass
class CallStatistics:
    """Measured answer rate, ring time of answered calls, call length and escalation
    rate of one campaign, blended with its priors. Bounded: the last SAMPLE_WINDOW
    samples of each distribution."""

    dials: int = 0
    answered: int = 0
    connected: int = 0
    escalated: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    ring_s: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    handle_s: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))

    def dial_resolved(self, answered: bool, ring_s: float | None) -> None:
        self.dials += 1
        self.recent.append(bool(answered))
        if answered:
            self.answered += 1
            if ring_s is not None:
                self.ring_s.append(max(0.0, float(ring_s)))

    def call_finished(self, handle_s: float, escalated: bool = False) -> None:
        self.connected += 1
        self.escalated += int(escalated)
        self.handle_s.append(max(0.0, float(handle_s)))

    # -- estimates ------------------------------------------------------------------
    def answer_rate(self, pacing: PacingConfig) -> float:
        """Answer rate over the last SAMPLE_WINDOW dials, blended with the prior."""
        w, n = pacing.prior_weight, len(self.recent)
        if n + w == 0:
            return pacing.initial_answer_rate
        return (sum(self.recent) + pacing.initial_answer_rate * w) / (n + w)

    def answer_rate_high(self, pacing: PacingConfig) -> float:
        """`answer_rate` plus `answer_rate_margin` standard errors: the rate the
        abandonment risk is judged at, so a rate that is higher than measured (or rising)
        does not turn into abandoned calls."""
        p = self.answer_rate(pacing)
        n = len(self.recent) + pacing.prior_weight
        return min(1.0, p + pacing.answer_rate_margin * math.sqrt(p * (1 - p) / max(n, 1)))

    def escalation_rate(self, pacing: PacingConfig) -> float:
        w = pacing.prior_weight
        total = self.connected + w
        return (self.escalated + pacing.initial_escalation_rate * w) / total if total else 0.0

    def mean_ring_s(self, pacing: PacingConfig) -> float:
        return _blend_mean(self.ring_s, pacing.initial_ring_s, pacing.prior_weight)

    def mean_handle_s(self, pacing: PacingConfig) -> float:
        return _blend_mean(self.handle_s, pacing.initial_handle_s, pacing.prior_weight)

    # -- checkpoint -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"dials": self.dials, "answered": self.answered, "connected": self.connected,
                "escalated": self.escalated, "recent": [int(x) for x in self.recent],
                "ring_s": list(self.ring_s),
                "handle_s": list(self.handle_s)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallStatistics:
        stats = cls(dials=int(data.get("dials", 0)), answered=int(data.get("answered", 0)),
                    connected=int(data.get("connected", 0)),
                    escalated=int(data.get("escalated", 0)))
        stats.recent.extend(bool(x) for x in data.get("recent", ()))
        stats.ring_s.extend(float(x) for x in data.get("ring_s", ()))
        stats.handle_s.extend(float(x) for x in data.get("handle_s", ()))
        return stats


@dataclass(frozen=True)
class PacingDecision:
    """How many to dial now and why (the reason shows in `campaign status`)."""

    dials: int
    mode: str
    reason: str
    answer_rate: float = 0.0
    target_overflow: float = 0.0
    expected_overflow: float = 0.0


def plan_dials(pacing: PacingConfig, compliance: ComplianceConfig, snapshot: PacingSnapshot,
               stats: CallStatistics, budget: AbandonmentBudget) -> PacingDecision:
    """The number of new calls to place now (never negative)."""
    ringing = len(snapshot.ringing_elapsed_s)
    free = max(0, snapshot.free_slots)
    line_room = max(0, min(pacing.max_lines - ringing, pacing.max_dials_per_tick))
    p = stats.answer_rate(pacing)
    target = budget.target(compliance, pacing)
    warming = pacing.mode == "predictive" and stats.dials < pacing.warmup_dials
    if pacing.mode == "progressive" or target <= 0.0 or warming:
        if pacing.mode == "progressive":
            reason = "progressive"
        elif target <= 0.0:
            reason = f"abandonment {budget.rate:.2%} at/over the cap: dialling only for free slots"
        else:
            reason = f"warming up: {stats.dials}/{pacing.warmup_dials} dials measured, progressive"
        return PacingDecision(min(line_room, max(0, free - ringing)), pacing.mode, reason, p, target)
    if pacing.mode == "fixed_ratio":
        if budget.rate >= compliance.abandon_cap * pacing.safety:
            # a fixed ratio cannot taper: hold it back before the cap, not at it
            return PacingDecision(min(line_room, max(0, free - ringing)), pacing.mode,
                                  f"abandonment {budget.rate:.2%} near the cap: one line per "
                                  "free slot until it falls", p, target)
        wanted = math.floor(pacing.ratio * free + 1e-9) - ringing
        return PacingDecision(min(line_room, max(0, wanted)), pacing.mode,
                              f"{pacing.ratio:g} lines per free slot", p, target)
    return _predictive(pacing, compliance, snapshot, stats, target, line_room, p)


def _predictive(pacing: PacingConfig, compliance: ComplianceConfig, snapshot: PacingSnapshot,
                stats: CallStatistics, target: float, line_room: int, p: float) -> PacingDecision:
    ring_mean = stats.mean_ring_s(pacing)
    horizon = ring_mean + compliance.connect_limit_s
    ring_cdf = _Distribution(stats.ring_s, ring_mean, cap=compliance.ring_timeout_s)
    handle = _Distribution(stats.handle_s, stats.mean_handle_s(pacing))
    free = max(0, snapshot.free_slots)

    still = [_still_answers(p, ring_cdf, e) for e in snapshot.ringing_elapsed_s]
    frees = [handle.ends_within(e, horizon) for e in snapshot.busy_elapsed_s]
    p_risk = stats.answer_rate_high(pacing)
    answers = _poisson_binomial(_still_answers(p_risk, ring_cdf, e) for e in snapshot.ringing_elapsed_s)
    capacity = np.zeros(free + 1)
    capacity[free] = 1.0
    capacity = np.convolve(capacity, _poisson_binomial(frees))

    expected_capacity = free + sum(frees)
    limit = min(line_room, _ratio_room(pacing, expected_capacity, len(still)))
    esc = stats.escalation_rate(pacing)
    agent_answers = math.inf
    if snapshot.free_agents is not None and esc > 0:
        agent_answers = (snapshot.free_agents + pacing.escalation_slack) / esc

    chosen, overflow = 0, _overflow(answers, capacity)
    bernoulli = np.array([1.0 - p_risk, p_risk])
    for n in range(1, limit + 1):
        answers = np.convolve(answers, bernoulli)
        expected_answers = sum(still) + n * p
        if expected_answers > agent_answers:
            break
        o = _overflow(answers, capacity)
        if o > target * expected_answers:
            break
        chosen, overflow = n, o
    reason = (f"predictive: p={p:.2f}, ring {ring_mean:.1f}s, handle {handle.mean:.0f}s, "
              f"~{expected_capacity:.1f} slots in {horizon:.1f}s")
    return PacingDecision(chosen, "predictive", reason, p, target, overflow)


def _ratio_room(pacing: PacingConfig, expected_capacity: float, ringing: int) -> int:
    return max(0, math.floor(pacing.max_ratio * max(expected_capacity, 1.0)) - ringing)


def _overflow(answers: np.ndarray, capacity: np.ndarray) -> float:
    """E[max(0, A - K)] for independent A and K given as PMFs over 0..len-1."""
    diff = np.convolve(answers, capacity[::-1])  # index i <-> A - K = i - (len(K) - 1)
    offset = len(capacity) - 1
    positive = diff[offset + 1:]
    return float(np.dot(positive, np.arange(1, len(positive) + 1)))


def _poisson_binomial(probabilities: Iterable[float]) -> np.ndarray:
    pmf = np.ones(1)
    for q in probabilities:
        pmf = np.convolve(pmf, np.array([1.0 - q, q]))
    return pmf


def _still_answers(p: float, ring: _Distribution, elapsed: float) -> float:
    """P(answered eventually | not answered after `elapsed` s of ringing)."""
    unanswered = 1.0 - p * ring.cdf(elapsed)
    return 0.0 if unanswered <= 0 else p * (1.0 - ring.cdf(elapsed)) / unanswered


def _blend_mean(samples: Sequence[float], prior: float, weight: int) -> float:
    n = len(samples)
    if n == 0:
        return prior
    w = min(weight, MIN_SAMPLES)
    return (sum(samples) + prior * w) / (n + w)


class _Distribution:
    """A duration distribution: empirical once MIN_SAMPLES are known, else exponential
    with the (prior-blended) mean. `cap` truncates (ringing stops at the ring timeout)."""

    def __init__(self, samples: Sequence[float], mean: float, cap: float | None = None):
        self.mean = max(mean, 1e-3)
        self.cap = cap
        self.sorted = sorted(samples) if len(samples) >= MIN_SAMPLES else None

    def cdf(self, t: float) -> float:
        if t <= 0:
            return 0.0
        if self.cap is not None and t >= self.cap:
            return 1.0
        if self.sorted is not None:
            return bisect.bisect_right(self.sorted, t) / len(self.sorted)
        return 1.0 - math.exp(-t / self.mean)

    def ends_within(self, elapsed: float, window: float) -> float:
        """P(ends by elapsed + window | still going at elapsed)."""
        survive = 1.0 - self.cdf(elapsed)
        if survive <= 1e-9:
            return 1.0  # lasted longer than anything seen: expect it to end soon
        return max(0.0, min(1.0, (self.cdf(elapsed + window) - self.cdf(elapsed)) / survive))
