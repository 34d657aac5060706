"""Seeded discrete-event simulation of an outbound floor, driving the real pacing code.

Every simulated second the dialer tick asks `cluster.dialer.pacing.plan_dials` (the same
function the dialer actor calls) how many numbers to dial, with the same
`CallStatistics` and `AbandonmentBudget` the actor keeps. Each dialled number is answered
with probability `answer_rate` after a log-normal ring time (or rings out at the ring
timeout, or is busy); an answered call takes a free slot (bot or agent), or waits up to
the connect limit (2 s) for one and is abandoned (hears the information message)
otherwise. A connected call holds its slot for a log-normal handle time.

    python benchmarks/dialer_sim.py                 # table: progressive, fixed 3:1, predictive
    python benchmarks/dialer_sim.py --json          # last line: {"strategies": {...}}
    python benchmarks/dialer_sim.py --sweep         # the same across answer rates 10-60 %

Occupancy = slot time spent on calls / slot time available; abandonment = abandoned /
live-answered calls; connects per hour = calls handed to a slot per simulated hour.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.dialer.campaign import ComplianceConfig, PacingConfig  # noqa: E402
from cluster.dialer.pacing import (  # noqa: E402
    AbandonmentBudget,
    CallStatistics,
    PacingSnapshot,
    plan_dials,
)

STRATEGIES = {
    "progressive": {"mode": "progressive"},
    "fixed_ratio": {"mode": "fixed_ratio", "ratio": 3.0},
    "predictive": {"mode": "predictive"},
}


@dataclass(frozen=True)
class Scenario:
    """The default scenario: 20 slots, 30 % answer rate, ~8 s to answer, 25 s ring-out,
    2-minute calls, 8 simulated hours."""

    slots: int = 20
    answer_rate: float = 0.30
    ring_mean_s: float = 8.0
    ring_sigma: float = 0.5
    ring_timeout_s: float = 25.0
    busy_share: float = 0.10  # of unanswered calls: a busy signal after busy_s
    busy_s: float = 4.0
    handle_mean_s: float = 120.0
    handle_sigma: float = 0.6
    hours: float = 8.0
    tick_s: float = 1.0
    seed: int = 7


def _lognormal(rng: random.Random, mean: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


def simulate(scenario: Scenario, pacing: PacingConfig,
             compliance: ComplianceConfig | None = None) -> dict[str, float]:
    """Run one strategy on one scenario; returns the figures for that run."""
    compliance = compliance or ComplianceConfig(ring_timeout_s=int(scenario.ring_timeout_s))
    rng = random.Random(scenario.seed)
    end = scenario.hours * 3600.0
    events: list[tuple[float, int, str, int]] = []
    seq = 0
    stats = CallStatistics()
    ringing: dict[int, float] = {}  # call -> dial time
    busy: dict[int, float] = {}  # call -> connect time
    waiting: dict[int, float] = {}  # answered call -> answer time (waiting for a slot)
    counts = {"dials": 0, "answered": 0, "abandoned": 0, "connected": 0}
    busy_time = 0.0
    next_call = 0

    def push(at: float, kind: str, call: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, kind, call))

    def connect(call: int, now: float) -> None:
        nonlocal busy_time
        counts["connected"] += 1
        busy[call] = now
        handle = _lognormal(rng, scenario.handle_mean_s, scenario.handle_sigma)
        busy_time += max(0.0, min(now + handle, end) - now)
        push(now + handle, "hangup", call)

    push(0.0, "tick", -1)
    while events:
        now, _, kind, call = heapq.heappop(events)
        if now >= end:
            break
        if kind == "tick":
            snapshot = PacingSnapshot(
                free_slots=scenario.slots - len(busy) - len(waiting),
                busy_elapsed_s=[now - t for t in busy.values()],
                ringing_elapsed_s=[now - t for t in ringing.values()],
            )
            budget = AbandonmentBudget(counts["answered"], counts["abandoned"])
            for _ in range(plan_dials(pacing, compliance, snapshot, stats, budget).dials):
                next_call += 1
                counts["dials"] += 1
                ringing[next_call] = now
                if rng.random() < scenario.answer_rate:
                    ring = _lognormal(rng, scenario.ring_mean_s, scenario.ring_sigma)
                    if ring < scenario.ring_timeout_s:
                        push(now + ring, "answer", next_call)
                        continue
                fail = scenario.busy_s if rng.random() < scenario.busy_share else scenario.ring_timeout_s
                push(now + fail, "no_answer", next_call)
            push(now + scenario.tick_s, "tick", -1)
        elif kind == "answer":
            stats.dial_resolved(True, now - ringing.pop(call))
            counts["answered"] += 1
            if len(busy) < scenario.slots:
                connect(call, now)
            else:
                waiting[call] = now
                push(now + compliance.connect_limit_s, "give_up", call)
        elif kind == "no_answer":
            stats.dial_resolved(False, None)
            ringing.pop(call)
        elif kind == "give_up":
            if waiting.pop(call, None) is not None:
                counts["abandoned"] += 1  # hears the information message
        elif kind == "hangup":
            stats.call_finished(now - busy.pop(call))
            if waiting:
                first = min(waiting, key=waiting.__getitem__)
                waiting.pop(first)
                connect(first, now)
    hours = scenario.hours
    return {
        "occupancy": round(busy_time / (scenario.slots * end), 4),
        "abandonment": round(counts["abandoned"] / counts["answered"], 4) if counts["answered"] else 0.0,
        "connects_per_hour": round(counts["connected"] / hours, 1),
        "dials_per_hour": round(counts["dials"] / hours, 1),
        "answered": counts["answered"],
        "abandoned": counts["abandoned"],
    }


def run_all(scenario: Scenario) -> dict[str, dict[str, float]]:
    return {name: simulate(scenario, PacingConfig(**settings)) for name, settings in STRATEGIES.items()}


def main(argv: list[str] | None = None) -> int:
    defaults = Scenario()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=defaults.slots, help="bot slots / agents")
    parser.add_argument("--answer-rate", type=float, default=defaults.answer_rate)
    parser.add_argument("--ring-mean", type=float, default=defaults.ring_mean_s,
                        help="mean seconds to answer (answered calls)")
    parser.add_argument("--handle-mean", type=float, default=defaults.handle_mean_s,
                        help="mean call length in seconds")
    parser.add_argument("--hours", type=float, default=defaults.hours, help="simulated hours")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--sweep", action="store_true", help="answer rates 10-60 %% per strategy")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if not (0 < args.answer_rate <= 1 and args.slots >= 1 and args.hours > 0):
        parser.error("need 0 < --answer-rate <= 1, --slots >= 1, --hours > 0")
    scenario = replace(defaults, slots=args.slots, answer_rate=args.answer_rate,
                       ring_mean_s=args.ring_mean, handle_mean_s=args.handle_mean,
                       hours=args.hours, seed=args.seed)
    if args.sweep:
        sweep = {f"{rate:.2f}": run_all(replace(scenario, answer_rate=rate))
                 for rate in (0.10, 0.20, 0.30, 0.40, 0.50, 0.60)}
        if not args.json:
            _print_sweep(sweep)
        out = {"scenario": asdict(scenario), "sweep": sweep}
    else:
        strategies = run_all(scenario)
        if not args.json:
            _print_table(scenario, strategies)
        out = {"scenario": asdict(scenario), "strategies": strategies}
    if args.json:
        print(json.dumps(out))
    return 0


def _print_table(scenario: Scenario, strategies: dict[str, dict[str, float]]) -> None:
    print(f"{scenario.slots} slots, answer rate {scenario.answer_rate:.0%}, ring ~{scenario.ring_mean_s:g}s, "
          f"handle ~{scenario.handle_mean_s:g}s, {scenario.hours:g} h, seed {scenario.seed}")
    print(f"{'strategy':<12} {'occupancy':>9} {'abandon':>8} {'connects/h':>10} {'dials/h':>8}")
    for name, r in strategies.items():
        print(f"{name:<12} {r['occupancy']:>9.1%} {r['abandonment']:>8.2%} "
              f"{r['connects_per_hour']:>10.1f} {r['dials_per_hour']:>8.1f}")


def _print_sweep(sweep: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"{'answer':>6} " + " ".join(f"{name:>28}" for name in STRATEGIES))
    print(f"{'rate':>6} " + " ".join(f"{'occ   abandon  connects/h':>28}" for _ in STRATEGIES))
    for rate, strategies in sweep.items():
        cells = [f"{r['occupancy']:>8.1%} {r['abandonment']:>8.2%} {r['connects_per_hour']:>10.1f}"
                 for r in strategies.values()]
        print(f"{float(rate):>6.0%} " + " ".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    sys.exit(main())
