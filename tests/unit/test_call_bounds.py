"""The bounds on one call (`gateway.limits`, configs/media_security.py): caller events
waiting for the bot, key presses a second and kept in the record, turns kept (in the
session and, LTRIMmed, in Redis), the call's length (goodbye or handover), and caller audio
faster than real time (the fork is closed). Each bound acts on its own call only.
Plain objects: the real `CallSession`, fork runner and meters, fake models and records."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bots.script import ScriptBot, load_script_text
from bots.script.state import DialogState
from cluster.records.call_state import RedisCallRecorder, call_key
from configs.media_security import CallLimits
from configs.settings import GatewaySettings
from deployments.gateway.fork_admission import ForkAdmission
from deployments.gateway.media_ws import serve_media_fork
from telephony import media_fork
from telephony.call_data import TurnRecord
from telephony.call_limits import RateLimiter, RealTimeMeter
from telephony.call_session import MAX_CALL_REASON, CallSession
from telephony.media_fork import ForkMetadata
from tests.fakes.call import (
    FakeActionSink,
    FakeRecorder,
    FakeTurnModels,
    LineOut,
    dtmf,
    silence,
    until,
)
from tests.fakes.directory import FakeCallDirectory
from tests.fakes.fork_socket import FakeForkSocket

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

RATE = 8000
INTENTS = """
intents:
  affirm: {examples: ["yes", yeah, sure, correct, right]}
"""
SCRIPT = """
bot: front_desk
intents: intents.yaml
start: greet
global:
  - dtmf: "0"
    goto: handover
  - dtmf: "5"
    goto: greet
states:
  greet:
    ask: {prompt: "Hello, this is the front desk. How can I help?"}
    on:
      - dtmf: "1"
        goto: hours
  hours:
    ask: {prompt: "We are open nine to five. Anything else?"}
  handover:
    say: Connecting you now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
"""
GREETING = "Hello, this is the front desk. How can I help?"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bot(tmp_path: Path) -> ScriptBot:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    return ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", tmp_path))


def settings(**limits: Any) -> GatewaySettings:
    # model_copy, not validation: the tests use bounds below the schema's floors
    return GatewaySettings().model_copy(
        update={"limits": CallLimits().model_copy(update=limits)})


def session(bot: ScriptBot, elapsed_s: float = 0.0, **limits: Any) -> CallSession:
    meta = ForkMetadata("call-1", RATE, direction="inbound")
    return CallSession(meta, FakeTurnModels(), LineOut(), FakeRecorder(), settings(**limits),
                       bot, FakeActionSink(), elapsed_s=elapsed_s)


async def started(call: CallSession) -> CallSession:
    await call.start()
    await until(lambda: not call.playback.active)
    return call


# ---- the meters ---------------------------------------------------------------------------------


def test_the_key_rate_allows_a_burst_then_the_sustained_rate() -> None:
    clock = Clock()
    keys = RateLimiter(per_s=10, burst=3, clock=clock)
    assert [keys.allow() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.1  # one more key's worth
    assert [keys.allow(), keys.allow()] == [True, False]
    clock.now += 60  # refills up to the burst, no further
    assert sum(keys.allow() for _ in range(10)) == 3


def frames_over(meter: RealTimeMeter, clock: Clock, seconds: float, speed: float) -> bool:
    """Feed `seconds` of 20 ms frames arriving at `speed` x real time; True once tripped."""
    for _ in range(int(seconds / 0.02)):
        clock.now += 0.02 / speed
        if meter.add(160):
            return True
    return False


def test_real_time_audio_and_a_short_stall_pass_faster_audio_does_not() -> None:
    clock = Clock()
    live = RealTimeMeter(8000, factor=1.5, window_s=5.0, clock=clock)
    assert not frames_over(live, clock, 120, 1.0)  # two minutes of a live channel
    clock.now += 2.0  # a 2 s stall, then its audio all at once
    assert not any(live.add(160) for _ in range(100))
    assert not frames_over(live, clock, 30, 1.0)

    clock = Clock()
    fast = RealTimeMeter(8000, factor=1.5, window_s=5.0, clock=clock)
    assert not frames_over(fast, clock, 4.0 * 1.6, 1.6)  # within the first 4 s of wall time
    assert frames_over(fast, clock, 10, 1.6)  # caught within the window
    clock = Clock()
    flood = RealTimeMeter(8000, clock=clock)
    assert flood.add(8000 * 3)  # three seconds of audio in one frame, at once


# ---- events and keys ---------------------------------------------------------------------------------


async def test_events_beyond_the_queue_are_dropped_and_counted(bot: ScriptBot) -> None:
    call = await started(session(bot, max_pending_events=2))
    for _ in range(10):  # the bot cannot take any of them before they all arrive
        call.on_text(dtmf("5"))
    assert call.outcome.dropped == {"events": 8}
    assert call.outcome.dtmf == "5" * 10  # every key is in the record
    await call.close()
    assert call.recorder.ended["call-1"].dropped == {"events": 8}


async def test_keys_faster_than_the_rate_are_dropped_and_counted(bot: ScriptBot) -> None:
    call = await started(session(bot, dtmf_burst=3, dtmf_per_s=0.001))
    for _ in range(7):
        call.on_text(dtmf("1"))
    assert call.outcome.dtmf == "111" and call.outcome.dropped == {"dtmf_rate": 4}
    await call.close()


async def test_the_recorded_key_string_is_bounded_but_the_bot_still_gets_the_keys(
        bot: ScriptBot) -> None:
    call = await started(session(bot, max_dtmf_digits=2))
    for key in "5551":
        call.on_text(dtmf(key))
    await until(lambda: len(call.recorder.turns.get("call-1", [])) == 4)
    assert call.outcome.dtmf == "55" and call.outcome.dropped == {"dtmf_record": 2}
    assert call.state.state == "hours"  # the last key still moved the bot
    await call.close()


async def test_turns_kept_for_the_handover_are_bounded(bot: ScriptBot) -> None:
    call = await started(session(bot, max_stored_turns=2))
    for n in range(4):
        call.on_text(dtmf("5"))
        await until(lambda n=n: len(call.recorder.turns.get("call-1", [])) == n + 1)
    assert [t.n for t in call.turns] == [3, 4]
    call.on_text(dtmf("0"))
    await asyncio.wait_for(call.finished.wait(), 5)
    assert len(call.outcome.handover.turns) == 2
    await call.close()


# ---- the call's length ---------------------------------------------------------------------------------


async def test_at_the_time_limit_the_bot_says_so_and_hangs_up(bot: ScriptBot) -> None:
    call = await started(session(bot, max_call_s=0.3, max_call_message="Time is up. Goodbye."))
    await asyncio.wait_for(call.finished.wait(), 5)
    assert call.models.spoken == [GREETING, "Time is up. Goodbye."]
    assert call.outcome.reason == MAX_CALL_REASON and call.outcome.handover is None
    call.on_text(dtmf("1"))  # too late: no turn
    await asyncio.sleep(0.1)
    assert call.recorder.turns == {}
    await call.close()
    assert call.recorder.end_reason("call-1") == MAX_CALL_REASON


async def test_at_the_time_limit_the_call_can_go_to_a_person(bot: ScriptBot) -> None:
    call = await started(session(bot, max_call_s=0.3, on_max_call="handover"))
    await asyncio.wait_for(call.finished.wait(), 5)
    handover = call.outcome.handover
    assert handover is not None and handover.reason == MAX_CALL_REASON
    assert handover.rule == "max_call_length"
    await call.close()


async def test_a_call_that_comes_back_after_its_time_only_hears_the_goodbye(bot: ScriptBot) -> None:
    call = session(bot, max_call_s=60, elapsed_s=61)  # it lasted a minute on another replica
    await call.start()
    await asyncio.wait_for(call.finished.wait(), 5)
    assert call.models.spoken == [CallLimits().max_call_message]
    await call.close()


async def test_a_turn_in_progress_at_the_time_limit_finishes_first(bot: ScriptBot) -> None:
    models = FakeTurnModels(reply_seconds={"We are open nine to five. Anything else?": 0.5})
    meta = ForkMetadata("call-1", RATE)
    call = CallSession(meta, models, LineOut(), FakeRecorder(), settings(max_call_s=0.4), bot)
    await started(call)
    call.on_text(dtmf("1"))
    await asyncio.wait_for(call.finished.wait(), 5)
    assert [t.dtmf for t in call.recorder.turns["call-1"]] == ["1"]  # recorded, not cut
    assert models.spoken[-1] == CallLimits().max_call_message
    await call.close()


# ---- the Redis turn list --------------------------------------------------------------------------------


async def test_the_stored_turn_list_keeps_the_latest(redis_server) -> None:
    recorder = RedisCallRecorder(redis_server.url, max_turns=3)
    await recorder.call_started(ForkMetadata("trim-1", RATE))
    state = DialogState(script="front_desk", state="greet")
    for n in range(1, 6):
        state.seq = n
        await recorder.turn("trim-1", TurnRecord(n=n, bot=f"reply {n}", bot_state="greet",
                                                  dtmf="1"), state)
    stored = await recorder.redis.lrange(call_key("trim-1") + ":turns", 0, -1)
    assert [json.loads(t)["n"] for t in stored] == [3, 4, 5]
    await recorder.close()


# ---- audio faster than real time ---------------------------------------------------------------------------


async def test_audio_faster_than_real_time_closes_that_fork_only(bot: ScriptBot) -> None:
    limits = settings()
    admission = ForkAdmission(None, True, FakeCallDirectory())
    records = FakeRecorder()

    class Bots:
        async def for_call(self, meta):
            return bot

    def fork(call_uuid: str) -> tuple[FakeForkSocket, asyncio.Task[str]]:
        sock = FakeForkSocket()
        sock.feed(json.dumps({"callId": call_uuid, "sampleRate": RATE}))
        return sock, asyncio.create_task(serve_media_fork(
            sock, call_uuid, limits, FakeTurnModels(), records, Bots(), admission=admission))

    good, good_task = fork("call-good")
    flood, flood_task = fork("call-flood")
    await until(lambda: "mark" in flood.command_types() and "mark" in good.command_types())
    frame = silence(0.02, RATE)
    flood.feed(*[frame] * 500)  # 10 s of audio, at once
    reason = "audio arrives faster than real time (over 1.5x for 5 s)"
    assert await asyncio.wait_for(flood_task, 5) == f"protocol error: {reason}"
    assert flood.closed == (media_fork.CLOSE_POLICY, reason)
    good.feed(frame, frame)
    await asyncio.sleep(0.05)
    assert not good_task.done() and good.closed is None
    good.hang_up()
    assert await asyncio.wait_for(good_task, 5) == "caller hung up"
