"""What a simulated call run produced: per-call status and the run's summary figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telephony.call_data import percentile
from telephony.sim.fork_client import CallReport

__all__ = ["CallResult", "summarize"]


@dataclass
class CallResult:
    scenario: str
    report: CallReport

    @property
    def status(self) -> str:
        r = self.report
        if r.error:
            return "failed"
        if r.close_code not in (None, 1000, 1001) or any(x is None for x in r.turn_latency_s):
            return "dropped"
        return "completed"


def summarize(results: list[CallResult], wall_s: float) -> dict[str, Any]:
    latencies = [x for c in results for x in c.report.turn_latency_s if x is not None]
    statuses = [c.status for c in results]
    return {
        "calls": len(results),
        "completed": statuses.count("completed"),
        "failed": statuses.count("failed"),
        "dropped": statuses.count("dropped"),
        "turns_answered": len(latencies),
        "turn_latency_p50_s": round(percentile(latencies, 0.5) or 0.0, 3),
        "turn_latency_p95_s": round(percentile(latencies, 0.95) or 0.0, 3),
        "turns_over_1_5_s": sum(1 for x in latencies if x > 1.5),
        "wall_s": round(wall_s, 1),
    }
