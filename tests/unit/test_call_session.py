"""The heart of a call, `CallSession`, driven through its ports: caller audio (speech-like
L16 frames the real webrtcvad endpointer takes for speech) and module text frames in; a
real bot script; fake models (`TurnModels`), records (`CallRecorder`) and side effects
(`ActionSink`); what went back down the line read from the `AudioOut`. No Ray, no model,
no Redis. Asserts what a caller (and the people reading the records) would notice."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bots.script import ScriptBot, Ticket, Transfer, TurnInput, load_script_text
from configs.settings import GatewaySettings
from telephony.call_data import STAGES, HandoverTurn, ResumedCall, TurnRecord
from telephony.call_session import CallSession
from telephony.media_fork import ForkMetadata
from tests.fakes.call import (
    FakeActionSink,
    FakeRecorder,
    FakeTurnModels,
    LineOut,
    ModelDown,
    dtmf,
    frames,
    playout,
    silence,
    speech,
    until,
)
from training.models.outputs import EmotionResult, IntentResult

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

RATE = 8000

INTENTS = """
intents:
  order_status: {examples: [where is my order, has my parcel shipped, track my order]}
  affirm: {examples: ["yes", yeah, sure, correct, right]}
"""

SCRIPT = """
bot: front_desk
intents: intents.yaml
start: greet
global:
  - dtmf: "0"
    goto: handover
states:
  greet:
    ask:
      prompt: "Hello, this is the front desk. How can I help?"
      no_input: ["Are you still there?"]
    on:
      - intent: order_status
        goto: order
      - dtmf: "1"
        goto: hours
  order:
    say: Your order has shipped.
    enter:
      - ticket: {queue: orders, subject: Where is my order, priority: normal}
    ask: {prompt: "Anything else?"}
  hours:
    ask: {prompt: "We are open nine to five. Anything else?"}
  handover:
    say: Connecting you now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
"""

GREETING = "Hello, this is the front desk. How can I help?"
ORDER_REPLY = "Your order has shipped. Anything else?"
SORRY = "Sorry, I had a problem there. Could you say that again?"
ORDER = IntentResult("order_status", 0.93, [("order_status", 0.93), ("affirm", 0.03)],
                     model_version="v0007")
UPSET = EmotionResult("anger", {"anger": 0.7, "neutral": 0.2, "positive": 0.1}, arousal=0.8)


@pytest.fixture
def bot(tmp_path: Path) -> ScriptBot:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    return ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", tmp_path))


class Call:
    """One call on a session: the ports' fakes and the caller's side of the line."""

    def __init__(self, bot: ScriptBot, models: FakeTurnModels, *, no_input_s: float = 30.0,
                 recorder: FakeRecorder | None = None, call_uuid: str = "call-1",
                 **meta: Any) -> None:
        # below the schema's 1 s floor, so the no-input tests take a fraction of a second
        settings = GatewaySettings().model_copy(update={"no_input_s": no_input_s})
        self.meta = ForkMetadata(call_uuid=call_uuid, sample_rate=RATE, direction="inbound",
                                 caller="+15551230000", **meta)
        self.models = models
        self.line = LineOut()
        self.records = recorder or FakeRecorder()
        self.sink = FakeActionSink()
        self.session = CallSession(self.meta, models, self.line, self.records, settings, bot,
                                   self.sink)

    async def say(self, seconds: float = 0.6, then_quiet_s: float = 0.6) -> None:
        """The caller speaks for `seconds`, then is quiet long enough to end the utterance."""
        for frame in frames(speech(seconds, RATE) + silence(then_quiet_s, RATE), RATE):
            await self.session.on_audio(frame)

    async def quiet(self, seconds: float) -> None:
        for frame in frames(silence(seconds, RATE), RATE):
            await self.session.on_audio(frame)

    def turns(self) -> list[TurnRecord]:
        return self.records.turns.get(self.meta.call_uuid, [])


@pytest.fixture
async def started(bot: ScriptBot) -> AsyncIterator[Callable[..., Any]]:
    """Start calls on sessions; whatever a test leaves open is closed after it."""
    calls: list[Call] = []

    async def start(models: FakeTurnModels | None = None, *, heard_out: bool = True,
                    **kwargs: Any) -> Call:
        call = Call(bot, models or FakeTurnModels(), **kwargs)
        calls.append(call)
        await call.session.start()
        if heard_out:  # wait until the greeting has been played out (fake replies: 40 ms)
            await until(lambda: not call.session.playback.active)
        return call

    yield start
    for call in calls:
        if not call.records.endings:
            await call.session.close()


# ---- the greeting ---------------------------------------------------------------------------


async def test_the_call_opens_with_the_greeting_before_anything_else(started) -> None:
    call = await started()
    assert call.records.started == ["call-1"]
    assert call.sink.calls == [("call-1", None)]  # told once that the call started
    assert call.models.spoken == [GREETING]
    assert call.line.audio == FakeTurnModels.pcm_of(GREETING, RATE)
    assert isinstance(call.line.sent[0][1], bytes)  # the first thing on the line is its audio
    assert call.line.command_types() == ["mark"]  # then the mark that it has been played
    assert call.turns() == [] and call.sink.carried == []


async def test_a_call_that_moved_here_mid_call_resumes_where_it_was(bot: ScriptBot, started) -> None:
    # what another replica left: the caller asked about an order, the bot is in `order`
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)
    earlier = TurnRecord(n=1, bot=ORDER_REPLY, bot_state="order", caller="where is my order",
                         intent=ORDER)
    await bot.on_turn(state, TurnInput("where is my order", ORDER))
    call = await started(recorder=FakeRecorder({"call-1": ResumedCall(state, (earlier,))}))
    # a short apology (gateway.resume_prompt), then the current question, not the greeting
    assert call.models.spoken == [GatewaySettings().resume_prompt, "Anything else?"]
    assert call.sink.calls == []  # not a new call: not counted again
    call.session.on_text(dtmf("0"))
    await asyncio.wait_for(call.session.finished.wait(), 5)
    handover = call.session.outcome.handover
    assert handover is not None
    assert [t.caller for t in handover.turns] == ["where is my order", None]  # both replicas'


# ---- a spoken turn --------------------------------------------------------------------------


async def test_an_utterance_becomes_one_turn_with_what_the_models_said(started) -> None:
    models = FakeTurnModels([" where is my order "], {"where is my order": ORDER},
                            {"where is my order": UPSET})
    call = await started(models)
    await call.say(0.6)
    await until(lambda: len(call.turns()) == 1)

    # the models were asked once each, with the utterance and its transcript
    assert len(models.heard) == 1
    heard_s = len(models.heard[0]) / 2 / 16000  # resampled to 16 kHz for ASR
    assert 0.6 <= heard_s <= 0.6 + 0.2 + 0.45  # the speech, pre-roll at most, hang-over
    assert models.intent_asked == ["where is my order"]
    assert [text for text, _, _ in models.emotion_asked] == ["where is my order"]

    (turn,) = call.turns()
    assert turn.kind == "speech"
    assert (turn.caller, turn.intent, turn.emotion) == ("where is my order", ORDER, UPSET)
    assert (turn.n, turn.bot, turn.bot_state) == (1, ORDER_REPLY, "order")
    assert turn.prosody is not None and turn.prosody.loudness_db > -30
    assert turn.actions == (Ticket("orders", "Where is my order", "normal", {}),)
    assert call.records.states["call-1"][-1].state == "order"

    # every stage timed, cumulative from the end of speech, ASR's own share as reported
    timing = turn.timing
    assert timing is not None and set(timing.measured()) == set(STAGES)
    cumulative = [timing.endpoint_ms, timing.prep_ms, timing.asr_ms, timing.nlu_ms,
                  timing.bot_ms, timing.first_audio_ms]
    assert cumulative == sorted(cumulative) and cumulative[0] >= 0
    assert timing.asr_engine_ms == 50.0

    # the answer is spoken and its action handed to the sink once
    assert models.spoken == [GREETING, ORDER_REPLY]
    await until(lambda: call.line.audio.endswith(FakeTurnModels.pcm_of(ORDER_REPLY, RATE)))
    assert call.sink.actions == [Ticket("orders", "Where is my order", "normal", {})]
    assert not call.session.finished.is_set()


async def test_noise_that_asr_finds_no_words_in_gets_no_answer(started) -> None:
    models = FakeTurnModels(["  "])
    call = await started(models)
    await call.say(0.4)
    await until(lambda: len(models.heard) == 1)
    await asyncio.sleep(0.05)
    assert call.turns() == [] and models.intent_asked == [] and models.spoken == [GREETING]


async def test_a_second_utterance_is_measured_against_the_callers_own_voice(started) -> None:
    models = FakeTurnModels(["where is my order", "track my order"],
                            {"where is my order": ORDER, "track my order": ORDER})
    call = await started(models)
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 1)
    await until(lambda: not call.session.playback.active)
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 2)
    first, second = (z for _, z, _ in models.emotion_asked)
    assert first is None  # no baseline yet
    assert second is not None  # the same voice again: a z-score against the first


# ---- barge-in ----------------------------------------------------------------------------------


async def test_speech_while_the_bot_talks_stops_its_audio_at_once(started) -> None:
    models = FakeTurnModels(["where is my order"], {"where is my order": ORDER},
                            reply_seconds={GREETING: 3.0})
    call = await started(models, heard_out=False)
    assert call.session.playback.active
    await call.say(0.4, then_quiet_s=0.0)  # the caller talks over the greeting
    await until(lambda: "killAudio" in call.line.command_types())
    killed_at = len(call.line.sent)
    assert call.session.outcome.barge_ins == 1
    assert not call.session.playback.active
    await asyncio.sleep(0.06)  # three frames: the paced pump would have sent more by now
    assert call.line.audio_since(killed_at) == b""  # not another frame of the greeting
    assert len(call.line.audio) < len(FakeTurnModels.pcm_of(GREETING, RATE, 3.0)) // 2

    await call.quiet(0.6)  # ...and finishes the sentence: answered as usual
    await until(lambda: len(call.turns()) == 1)
    assert call.turns()[0].caller == "where is my order"
    outcome = await call.session.close()
    assert outcome.barge_ins == 1 and outcome.cut == (GREETING,)
    assert GREETING not in outcome.heard


async def test_speech_while_the_bot_is_quiet_is_not_a_barge_in(started) -> None:
    call = await started(FakeTurnModels(["where is my order"], {"where is my order": ORDER}))
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 1)
    assert call.session.outcome.barge_ins == 0
    assert "killAudio" not in call.line.command_types()


HOURS = "We are open nine to five. Anything else?"


class SpeakingInSentences(FakeTurnModels):
    """TTS that streams HOURS in two sentences (the first one long), the second only once
    `second_ready` is set, and notes how many turns the records held when the stream was
    closed."""

    def __init__(self, records: FakeRecorder) -> None:
        super().__init__()
        self.records = records
        self.second_ready = asyncio.Event()
        self.turns_when_closed: int | None = None

    async def speak(self, text: str, sample_rate: int) -> AsyncGenerator[tuple[str, bytes], None]:
        if text != HOURS:
            async for item in super().speak(text, sample_rate):
                yield item
            return
        try:
            yield "We are open nine to five.", self.pcm_of(text, sample_rate, 1.0)
            await self.second_ready.wait()  # still being synthesized
            yield "Anything else?", self.pcm_of("Anything else?", sample_rate)
        finally:
            self.turns_when_closed = len(self.records.turns.get("call-1", []))


async def test_a_reply_cut_short_closes_its_speech_stream_at_once(started) -> None:
    records = FakeRecorder()
    models = SpeakingInSentences(records)
    call = await started(models, recorder=records)
    call.session.on_text(dtmf("1"))
    await until(lambda: call.line.audio_since(3) != b"")  # the first sentence is playing
    await call.say(0.4, then_quiet_s=0.0)  # the caller talks over it
    await until(lambda: call.session.outcome.barge_ins == 1)
    models.second_ready.set()  # the next sentence arrives after the barge-in
    await until(lambda: len(call.turns()) == 1)
    # closed by the session before it went on (so the TTS work requested ahead is
    # cancelled then), not whenever the garbage collector gets to it
    assert models.turns_when_closed == 0
    assert call.session.playback.cut == ["We are open nine to five."]
    assert FakeTurnModels.pcm_of("Anything else?", RATE) not in call.line.audio  # not queued


# ---- keys and silence ------------------------------------------------------------------------


async def test_a_key_press_reaches_the_bot(started) -> None:
    call = await started()
    call.session.on_text(dtmf("1"))
    await until(lambda: len(call.turns()) == 1)
    (turn,) = call.turns()
    assert (turn.kind, turn.dtmf, turn.bot_state) == ("dtmf", "1", "hours")
    assert turn.bot == "We are open nine to five. Anything else?"
    assert call.models.spoken[-1] == turn.bot
    assert call.session.outcome.dtmf == "1"
    assert call.models.heard == []  # keys never go to ASR


async def test_the_module_reporting_a_segment_played_counts_it_as_heard(started) -> None:
    call = await started()
    mark = call.line.commands()[0]
    call.session.on_text(playout(mark.data["name"]))
    outcome = await call.session.close()
    assert outcome.heard == (GREETING,) and outcome.cut == ()


async def test_a_silent_caller_hears_the_no_input_prompt(started) -> None:
    call = await started(no_input_s=0.1)
    await call.quiet(0.5)  # the line stays silent
    await until(lambda: len(call.turns()) == 1, timeout_s=3)
    (turn,) = call.turns()
    assert (turn.kind, turn.bot, turn.bot_state) == ("no_input", "Are you still there?", "greet")
    assert call.models.spoken == [GREETING, "Are you still there?"]
    assert call.records.states["call-1"][-1].no_input == 1


async def test_the_no_input_prompt_waits_the_full_timeout_after_the_bot_finished(
        started) -> None:
    no_input_s, greeting_s = 0.2, 0.36
    models = FakeTurnModels(reply_seconds={GREETING: greeting_s})
    call = await started(models, heard_out=False, no_input_s=no_input_s)
    first_frame_at = call.line.sent[0][0]
    await until(lambda: "Are you still there?" in models.speaking_at, timeout_s=3)
    greeting_heard_at = first_frame_at + greeting_s
    silent_for = models.speaking_at["Are you still there?"] - greeting_heard_at
    assert silent_for >= no_input_s - 0.05


# ---- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["asr", "intent", "emotion"])
async def test_a_model_failure_costs_one_apology_not_the_call(started, broken: str) -> None:
    said = "where is my order"
    models = FakeTurnModels(
        [ModelDown("asr down") if broken == "asr" else said, said],
        {said: ModelDown("intent down") if broken == "intent" else ORDER},
        {said: ModelDown("emotion down") if broken == "emotion" else UPSET})
    call = await started(models)
    await call.say(0.5)
    await until(lambda: SORRY in models.spoken)
    assert call.turns() == []  # nothing half-done is recorded
    assert call.records.states.get("call-1") is None
    assert not call.session.finished.is_set()

    # the caller says it again; this time the models answer (the broken one is fixed)
    models.intents[said], models.emotions[said] = ORDER, UPSET
    await until(lambda: not call.session.playback.active)
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 1)
    assert call.turns()[0].caller == said and call.turns()[0].bot_state == "order"
    assert models.spoken == [GREETING, SORRY, ORDER_REPLY]
    outcome = await call.session.close()
    assert outcome.reason == "caller hung up" and outcome.turns == 1


async def test_a_tts_failure_on_the_handover_turn_still_hands_the_call_over(started) -> None:
    call = await started(FakeTurnModels(fail_speaking=["Connecting you now."]))
    call.session.on_text(dtmf("0"))
    await until(lambda: "Connecting you now." in call.models.speaking_at)
    await asyncio.wait_for(call.session.finished.wait(), 0.1)
    assert call.session.outcome.handover is not None
    assert [t.dtmf for t in call.turns()] == ["0"]  # the turn is in the records
    assert SORRY not in call.models.speaking_at  # no apology once the bot's part is over


async def test_a_tts_failure_on_an_ordinary_turn_still_counts_the_turn(started) -> None:
    models = FakeTurnModels(["where is my order"], {"where is my order": ORDER},
                            fail_speaking=[ORDER_REPLY])
    call = await started(models)
    await call.say(0.5)
    await until(lambda: SORRY in models.spoken)
    # the bot has moved on either way: the records and its ticket follow it
    (turn,) = call.turns()
    assert (turn.bot_state, turn.timing.first_audio_ms) == ("order", None)
    assert call.sink.actions == [Ticket("orders", "Where is my order", "normal", {})]
    assert not call.session.finished.is_set()


# ---- handing the call over, and the end ------------------------------------------------------


async def test_a_transfer_ends_the_bots_part_with_one_handover_of_every_turn(started) -> None:
    models = FakeTurnModels(["where is my order"], {"where is my order": ORDER},
                            {"where is my order": UPSET})
    call = await started(models, customer={"name": "Ada"}, campaign="spring")
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 1)
    call.session.on_text(dtmf("0"))
    await asyncio.wait_for(call.session.finished.wait(), 5)

    outcome = call.session.outcome
    assert outcome.reason == "escalated"
    handover = outcome.handover
    assert handover is not None
    assert (handover.reason, handover.skills, handover.priority) == (
        "caller pressed zero", ("support",), 6)
    assert not handover.vip and handover.customer == {"name": "Ada"}
    assert handover.campaign_id == "spring"
    assert handover.turns == (
        HandoverTurn("where is my order", ORDER_REPLY, ORDER, UPSET),
        HandoverTurn(None, "Connecting you now."),
    )
    transfers = [a for a in call.sink.actions if isinstance(a, Transfer)]
    assert len(transfers) == 1  # the sink sees the transfer once (it leaves it to the fork)
    assert models.spoken[-1] == "Connecting you now."
    assert not call.session.playback.active  # finished only once the line was heard out

    closed = await call.session.close()  # the fork runner closes without a reason of its own
    assert call.records.endings == [("call-1", closed)]
    assert closed.reason == "escalated" and closed.escalation == "caller pressed zero"
    assert closed.handover is handover


async def test_a_key_pressed_after_the_handover_does_not_change_how_the_call_ended(
        started) -> None:
    call = await started()
    call.session.on_text(dtmf("0"))
    await asyncio.wait_for(call.session.finished.wait(), 5)
    call.session.on_text(dtmf("1"))  # still on the line until the fork closes
    await asyncio.sleep(0.05)
    outcome = await call.session.close()
    assert [t.dtmf for t in call.turns()] == ["0"]
    assert outcome.reason == "escalated" and outcome.handover is not None


async def test_closing_records_the_outcome_once(started) -> None:
    models = FakeTurnModels(["where is my order"], {"where is my order": ORDER})
    call = await started(models)
    await call.say(0.5)
    await until(lambda: len(call.turns()) == 1)
    call.session.on_text(dtmf("1"))
    await until(lambda: len(call.turns()) == 2)
    outcome = await call.session.close("caller hung up")
    assert call.records.endings == [("call-1", outcome)]
    assert (outcome.reason, outcome.turns, outcome.dtmf, outcome.barge_ins) == (
        "caller hung up", 2, "1", 0)
    assert outcome.handover is None and outcome.escalation is None
    assert [t.n for t in call.turns()] == [1, 2]


async def test_closing_twice_records_the_outcome_once(started) -> None:
    # the fork runner closes, and so does whatever else notices the call is over
    call = await started()
    first, racing = await asyncio.gather(call.session.close("caller hung up"),
                                         call.session.close("connection lost"))
    again = await call.session.close("replica shutting down")
    assert first is racing is again
    assert again.reason == "caller hung up"  # the first close's reason stands
    assert call.records.endings == [("call-1", first)]


async def test_closing_mid_turn_stops_the_turn_and_still_records_the_call(started) -> None:
    asked, never = asyncio.Event(), asyncio.Event()

    class SlowASR(FakeTurnModels):
        async def transcribe(self, pcm16k: bytes, expect=None):
            asked.set()
            await never.wait()  # the caller hangs up while ASR is still working
            return await super().transcribe(pcm16k)

    call = await started(SlowASR(["where is my order"]))
    await call.say(0.5)
    await asyncio.wait_for(asked.wait(), 5)
    outcome = await asyncio.wait_for(call.session.close("caller hung up"), 2)
    assert outcome.reason == "caller hung up"
    assert call.records.endings == [("call-1", outcome)] and call.turns() == []

