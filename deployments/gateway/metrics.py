"""Per-turn timing and the gateway's call counts, as metrics.

Every turn's stage timings (end of speech → endpoint → ASR done → intent/emotion done →
bot decided → first audio out, in ms since the caller stopped speaking) are recorded as
the histogram ``callfleet_turn_stage_ms{stage=…}``, with the calls this replica runs now
(``callfleet_calls_active``) and counters for calls started and ended (by reason), to the
`Metrics` the gateway plugs in (Ray's, exported for Prometheus: docs/operations.md). A
bounded window of recent turns also gives p50/p95 per stage for ``GET /metrics/turns``
on the gateway and ``callfleet status``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from bots.script.state import DialogState
from telephony.call_data import STAGES, CallOutcome, ResumedCall, TurnRecord, percentile
from telephony.call_session import MAX_CALL_REASON, CallRecorder
from telephony.media_fork import ForkMetadata
from telephony.metrics import (
    CALLS_ACTIVE,
    CALLS_ENDED,
    CALLS_STARTED,
    NO_METRICS,
    TURN_STAGE,
    Metrics,
)

__all__ = ["MeteredRecorder", "end_reason_label"]

# the reasons `CallSession` and the fork runner (media_ws.py) end a call with
_END_REASONS = {
    "escalated": "escalated",
    "bot closed the call": "bot_closed",
    "caller hung up": "caller_hung_up",
    "connection lost": "connection_lost",
    MAX_CALL_REASON: "max_call_length",
}


def end_reason_label(reason: str | None) -> str:
    """A call's end reason as one of `telephony.metrics.CALL_END_REASONS` (free text, such
    as a protocol error's detail, never becomes a label)."""
    reason = reason or ""
    if reason.startswith("protocol error"):
        return "protocol_error"
    return _END_REASONS.get(reason, "other")


def _pct_ms(values: list[float], q: float) -> float | None:
    """The percentile as the summary shows it: to 0.1 ms."""
    value = percentile(values, q)
    return None if value is None else round(value, 1)


class MeteredRecorder:
    """A CallRecorder that also meters what it records; everything else is delegated."""

    def __init__(self, inner: CallRecorder, metrics: Metrics = NO_METRICS, window: int = 2000):
        self.inner = inner
        self.metrics = metrics
        self._recent: deque[dict[str, float]] = deque(maxlen=window)
        self._active: set[str] = set()  # call ids started and not ended on this replica
        metrics.set(CALLS_ACTIVE, 0)  # an idle replica shows 0, not nothing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def call_started(self, meta: ForkMetadata) -> ResumedCall | None:
        self.metrics.inc(CALLS_STARTED)
        self._active.add(meta.call_uuid)
        self.metrics.set(CALLS_ACTIVE, len(self._active))
        return await self.inner.call_started(meta)

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        sample = turn.timing.measured() if turn.timing is not None else {}
        for stage, value in sample.items():
            self.metrics.observe(TURN_STAGE, value, stage=stage.removesuffix("_ms"))
        if sample:
            self._recent.append(sample)
        await self.inner.turn(call_uuid, turn, state)

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None:
        self.metrics.inc(CALLS_ENDED, reason=end_reason_label(outcome.reason))
        self._active.discard(call_uuid)
        self.metrics.set(CALLS_ACTIVE, len(self._active))
        await self.inner.call_ended(call_uuid, outcome)

    def summary(self) -> dict[str, Any]:
        turns = list(self._recent)
        out: dict[str, Any] = {"turns": len(turns)}
        for stage in STAGES:
            values = [t[stage] for t in turns if stage in t]
            out[stage.removesuffix("_ms")] = {"p50_ms": _pct_ms(values, 0.5), "p95_ms": _pct_ms(values, 0.95)}
        return out
