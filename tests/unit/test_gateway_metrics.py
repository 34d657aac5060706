"""Turn metrics on the gateway (`deployments.gateway.metrics.MeteredRecorder`): p50/p95 per
stage over the recent window (what `GET /metrics/turns` and `callfleet status` show), the
turn-stage histogram, active calls and call counters as recorded to the metrics interface
(an in-memory recorder here), and that every record still reaches the real recorder. One
test keeps Ray's own metrics and checks they need no Ray worker (nothing starts Ray here)."""

from __future__ import annotations

import pytest
import ray

from bots.script.state import DialogState
from cluster.actors.metrics import RayMetrics
from deployments.gateway.metrics import MeteredRecorder, end_reason_label
from telephony.call_data import STAGES, CallOutcome, Handover, ResumedCall, TurnRecord, TurnTiming
from telephony.call_session import MAX_CALL_REASON
from telephony.media_fork import ForkMetadata
from telephony.metrics import CALLS_ACTIVE, CALLS_ENDED, CALLS_STARTED, TURN_STAGE
from tests.fakes.call import FakeRecorder
from tests.fakes.metrics import MemoryMetrics

pytestmark = pytest.mark.unit

META = ForkMetadata(call_uuid="call-1", sample_rate=8000)
STATE = DialogState(script="shop")
STAGE_NAMES = [s.removesuffix("_ms") for s in STAGES]


@pytest.fixture
def exported() -> MemoryMetrics:
    return MemoryMetrics()


def speech_turn(n: int, ms: float, first_audio: bool = True) -> TurnRecord:
    """A spoken turn whose stages end `ms`, 2·ms, … after the caller stopped."""
    timing = TurnTiming(endpoint_ms=ms, prep_ms=2 * ms, asr_ms=3 * ms, asr_engine_ms=ms,
                        nlu_ms=4 * ms, bot_ms=5 * ms,
                        first_audio_ms=6 * ms if first_audio else None)
    return TurnRecord(n=n, bot="ok", bot_state="s", caller="hi", timing=timing)


# ---- p50 / p95 per stage ------------------------------------------------------------------------


async def test_the_summary_gives_p50_and_p95_per_stage_over_recent_turns(exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported)
    for i in range(1, 101):  # endpoint 1..100 ms, first audio 6..600 ms
        await recorder.turn("call-1", speech_turn(i, float(i)), STATE)
    summary = recorder.summary()
    assert summary["turns"] == 100
    assert list(summary) == ["turns", *STAGE_NAMES]
    assert summary["endpoint"] == {"p50_ms": 50.5, "p95_ms": 95.0}
    assert summary["asr"] == {"p50_ms": 151.5, "p95_ms": 285.1}
    assert summary["first_audio"] == {"p50_ms": 303.0, "p95_ms": 570.3}


async def test_the_window_keeps_only_the_latest_turns(exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported, window=10)
    for ms in [5000.0] * 50 + [100.0] * 10:  # a slow start, then ten quick turns
        await recorder.turn("call-1", speech_turn(1, ms), STATE)
    summary = recorder.summary()
    assert summary["turns"] == 10
    assert summary["endpoint"] == {"p50_ms": 100.0, "p95_ms": 100.0}


async def test_keys_silence_and_unmeasured_stages_do_not_skew_the_figures(exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported)
    assert recorder.summary() == {"turns": 0, **{s: {"p50_ms": None, "p95_ms": None}
                                                  for s in STAGE_NAMES}}
    await recorder.turn("call-1", TurnRecord(n=1, bot="Hours?", bot_state="s", dtmf="1"), STATE)
    await recorder.turn("call-1", TurnRecord(n=1, bot="Hello?", bot_state="s", no_input=True),
                        STATE)
    await recorder.turn("call-1", speech_turn(2, 10.0, first_audio=False), STATE)  # cut short
    await recorder.turn("call-1", speech_turn(3, 30.0), STATE)
    summary = recorder.summary()
    assert summary["turns"] == 2
    assert summary["endpoint"] == {"p50_ms": 20.0, "p95_ms": 29.0}
    assert summary["first_audio"] == {"p50_ms": 180.0, "p95_ms": 180.0}  # only the one heard


# ---- what Prometheus gets -------------------------------------------------------------------------


async def test_each_measured_stage_is_observed_in_the_histogram(exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported)
    await recorder.turn("call-1", speech_turn(1, 10.0, first_audio=False), STATE)
    await recorder.turn("call-1", TurnRecord(n=2, bot="x", bot_state="s", dtmf="5"), STATE)
    assert TURN_STAGE.boundaries[0] == 50
    assert exported.by_label(TURN_STAGE, "stage") == {
        "endpoint": [10.0], "prep": [20.0], "asr": [30.0], "asr_engine": [10.0], "nlu": [40.0],
        "bot": [50.0]}


async def test_calls_started_and_ended_are_counted_with_a_reason_from_a_closed_set(
        exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported)
    for reason in ("escalated", "caller hung up", "escalated", "",
                   "protocol error: " + "x" * 80, MAX_CALL_REASON):
        await recorder.call_started(META)
        await recorder.call_ended("call-1", CallOutcome(reason=reason))
    assert exported.count(CALLS_STARTED) == 6
    assert {k: len(v) for k, v in exported.by_label(CALLS_ENDED, "reason").items()} == {
        "escalated": 2, "caller_hung_up": 1, "other": 1, "protocol_error": 1,
        "max_call_length": 1}


async def test_active_calls_follow_calls_starting_and_ending(exported) -> None:
    recorder = MeteredRecorder(FakeRecorder(), exported)
    assert exported.gauge(CALLS_ACTIVE) == 0  # an idle replica shows 0
    for n in range(3):
        await recorder.call_started(ForkMetadata(call_uuid=f"call-{n}", sample_rate=8000))
    assert exported.gauge(CALLS_ACTIVE) == 3
    await recorder.call_ended("call-1", CallOutcome(reason="caller hung up"))
    await recorder.call_ended("call-1", CallOutcome(reason="caller hung up"))  # twice: once
    assert exported.gauge(CALLS_ACTIVE) == 2
    await recorder.call_ended("call-unknown", CallOutcome())
    assert exported.gauge(CALLS_ACTIVE) == 2


def test_end_reasons_become_labels_without_free_text() -> None:
    assert end_reason_label("bot closed the call") == "bot_closed"
    assert end_reason_label("connection lost") == "connection_lost"
    assert end_reason_label("protocol error: frame of 3 bytes") == "protocol_error"
    assert end_reason_label(None) == end_reason_label("anything else") == "other"


# ---- delegation ----------------------------------------------------------------------------------


async def test_every_record_reaches_the_real_recorder_unchanged(exported) -> None:
    resumed = ResumedCall(DialogState(script="shop", state="order"), ())
    inner = FakeRecorder({"call-1": resumed})
    inner.redis = "the inner recorder's client"  # e.g. what the gateway's health check pings
    recorder = MeteredRecorder(inner, exported)
    assert await recorder.call_started(META) is resumed
    turn = speech_turn(1, 10.0)
    await recorder.turn("call-1", turn, STATE)
    outcome = CallOutcome("escalated", Handover("caller pressed zero"), turns=1)
    await recorder.call_ended("call-1", outcome)
    assert inner.started == ["call-1"] and inner.turns == {"call-1": [turn]}
    assert inner.endings == [("call-1", outcome)]
    assert recorder.redis == "the inner recorder's client"


async def test_rays_metric_objects_work_without_a_ray_worker() -> None:
    # the real ray.util.metrics, in a process that has not joined a cluster (when another
    # test in this worker process has, it must at least not be changed by recording)
    joined = ray.is_initialized()
    recorder = MeteredRecorder(FakeRecorder(), RayMetrics())
    await recorder.call_started(META)
    await recorder.turn("call-1", speech_turn(1, 10.0), STATE)
    await recorder.call_ended("call-1", CallOutcome())
    assert recorder.summary()["turns"] == 1
    assert ray.is_initialized() == joined  # recording did not start or join a cluster
