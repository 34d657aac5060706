"""Per-turn timing exported as metrics.

Every turn's stage timings (end of speech → endpoint → ASR done → intent/emotion done →
bot decided → first audio out, in ms since the caller stopped speaking) go to Ray's
metrics (Prometheus, scraped from each node's metrics export port) as the histogram
``callfleet_turn_stage_ms{stage=…}``, with counters for calls started and ended (by
reason). A bounded window of recent turns also gives p50/p95 per stage for
``GET /metrics/turns`` on the gateway and ``callfleet status``.
"""

from collections import deque
from typing import Any

from ray.util import metrics

from bots.script.state import DialogState
from telephony.call_data import STAGES, CallOutcome, ResumedCall, TurnRecord, percentile
from telephony.media_fork import ForkMetadata

_BOUNDARIES = [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000]


def _pct_ms(values: list[float], q: float) -> float | None:
    """The percentile as the summary shows it: to 0.1 ms."""
    value = percentile(values, q)
    return None if value is None else round(value, 1)


class MeteredRecorder:
    """A CallRecorder that also meters what it records; everything else is delegated."""

    def __init__(self, inner, window: int = 2000):
        self.inner = inner
        self._recent: deque[dict[str, float]] = deque(maxlen=window)
        self._stage = metrics.Histogram(
            "callfleet_turn_stage_ms", description="ms from end of caller speech to each stage",
            boundaries=_BOUNDARIES, tag_keys=("stage",))
        self._started = metrics.Counter("callfleet_calls_started", description="media forks opened")
        self._ended = metrics.Counter("callfleet_calls_ended", description="calls ended",
                                      tag_keys=("reason",))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def call_started(self, meta: ForkMetadata) -> ResumedCall | None:
        self._started.inc()
        return await self.inner.call_started(meta)

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        sample = turn.timing.measured() if turn.timing is not None else {}
        for stage, value in sample.items():
            self._stage.observe(value, tags={"stage": stage.removesuffix("_ms")})
        if sample:
            self._recent.append(sample)
        await self.inner.turn(call_uuid, turn, state)

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None:
        reason = str(outcome.reason or "unknown")[:40]
        self._ended.inc(tags={"reason": reason})
        await self.inner.call_ended(call_uuid, outcome)

    def summary(self) -> dict[str, Any]:
        turns = list(self._recent)
        out: dict[str, Any] = {"turns": len(turns)}
        for stage in STAGES:
            values = [t[stage] for t in turns if stage in t]
            out[stage.removesuffix("_ms")] = {"p50_ms": _pct_ms(values, 0.5), "p95_ms": _pct_ms(values, 0.95)}
        return out
