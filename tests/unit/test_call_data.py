"""The typed call data and the serializers of the wires that carry it: model outputs, turn
records and outcomes in the Redis records, the handover over the fork (and in the
controller's record) and in the skill router's request, and the call session building
the handover once, from the bot's transfer and every turn of the call."""

from __future__ import annotations

import asyncio
import json
import pickle
import textwrap
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from bots.script import ScriptBot, Ticket, Transfer, load_script_text
from bots.script.state import DialogState
from cluster.records.call_state import outcome_to_json, turn_from_json, turn_to_json
from cluster.routing.models import EscalationRequest, Offer
from configs.settings import GatewaySettings
from telephony import media_fork
from telephony.call_data import (
    DEFAULT_HANDOVER_REASON,
    STAGES,
    CallOutcome,
    Handover,
    HandoverTurn,
    ResumedCall,
    TurnProsody,
    TurnRecord,
    TurnTiming,
    percentile,
)
from telephony.call_fsm import CallPhase, CallRecord
from telephony.call_session import CallSession
from telephony.media_fork import ForkMetadata
from training.models.outputs import (
    EmotionResult,
    IntentResult,
    Transcript,
    emotion_from_json,
    emotion_to_json,
    intent_from_json,
    intent_to_json,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

ORDER = IntentResult("order_status", 0.93, [("order_status", 0.93), ("refund_request", 0.04),
                                            ("oos", 0.01)], model_version="v0003")
CROSS = EmotionResult("anger", {"anger": 0.7, "neutral": 0.2, "positive": 0.1},
                      {"anger": 0.6, "neutral": 0.3, "positive": 0.1}, arousal=0.8)
TIMING = TurnTiming(endpoint_ms=12.0, prep_ms=15.5, asr_ms=310.0, asr_engine_ms=280.2,
                    nlu_ms=350.0, bot_ms=352.1, first_audio_ms=None)
SPEECH = TurnRecord(
    n=1, bot="Your order has shipped.", bot_state="order_status", caller="where is my order",
    intent=ORDER, emotion=CROSS, prosody=TurnProsody(-21.5, 180.0, 1.2, None),
    actions=(Ticket("orders", "Where is it", "normal", {"turn": "1"}),), timing=TIMING)
KEYS = TurnRecord(n=2, bot="Connecting you now.", bot_state="handover", dtmf="0",
                  actions=(Transfer(("support", "billing"), 6, "caller pressed zero",
                                    "Wants a person."),))
SILENCE = TurnRecord(n=3, bot="Are you still there?", bot_state="greet", no_input=True)


def through_json(doc):
    """What a wire does to a document: bytes and back."""
    return json.loads(json.dumps(doc))


# ---- model outputs -------------------------------------------------------------------------


def test_intent_and_emotion_round_trip_through_their_json() -> None:
    assert intent_from_json(through_json(intent_to_json(ORDER))) == ORDER
    assert emotion_from_json(through_json(emotion_to_json(CROSS))) == CROSS
    assert intent_to_json(ORDER)["top3"][0] == {"label": "order_status", "confidence": 0.93}
    assert "model_version" not in intent_to_json(IntentResult("oos", 0.0, (), True))


def test_an_intent_result_is_the_same_however_its_top3_was_built() -> None:
    assert IntentResult("a", 0.5, [("a", 0.5)]) == IntentResult("a", 0.5, (("a", 0.5),))
    assert IntentResult("weather", 0.3, out_of_scope=True).decision == "oos"
    assert Transcript("hello").text == "hello" and CROSS.score("anger") == 0.7
    assert CROSS.score("surprise") == 0.0


def test_the_types_cross_between_ray_processes_as_they_are() -> None:
    # Serve handles and actor calls pickle arguments and results
    for value in (ORDER, CROSS, Transcript("hi", "en", -0.2, 0.01, 1.2, 0.3), SPEECH, handover()):
        assert pickle.loads(pickle.dumps(value)) == value


def test_the_turn_stages_are_named_once_in_order() -> None:
    assert STAGES == ("endpoint_ms", "prep_ms", "asr_ms", "asr_engine_ms", "nlu_ms", "bot_ms",
                      "first_audio_ms")
    assert list(TIMING.measured()) == [s for s in STAGES if s != "first_audio_ms"]


def test_latency_percentiles_interpolate_between_the_turns_measured() -> None:
    # the one percentile the gateway's metrics, the simulator and the benchmarks report
    latencies = [400.0, 100.0, 300.0, 200.0]  # in any order
    assert percentile(latencies, 0.5) == 250.0
    assert percentile(latencies, 0.95) == pytest.approx(385.0)
    assert (percentile(latencies, 0.0), percentile(latencies, 1.0)) == (100.0, 400.0)
    assert percentile([120.0], 0.95) == 120.0
    assert percentile([], 0.5) is None  # no turns: no figure, not 0
    assert latencies == [400.0, 100.0, 300.0, 200.0]  # the caller's list is left as it was


# ---- the Redis records ---------------------------------------------------------------------


@pytest.mark.parametrize("turn", [SPEECH, KEYS, SILENCE], ids=["speech", "dtmf", "no_input"])
def test_a_turn_round_trips_through_the_records_json(turn: TurnRecord) -> None:
    assert turn_from_json(through_json(turn_to_json(turn))) == turn


def test_the_records_keep_the_shape_readers_know() -> None:
    speech = turn_to_json(SPEECH)
    assert list(speech) == ["n", "caller", "intent", "emotion", "prosody", "bot", "bot_state",
                            "actions", "timing"]
    assert speech["intent"]["label"] == "order_status"
    assert speech["intent"]["model_version"] == "v0003"
    assert set(speech["emotion"]["scores"]) == {"anger", "neutral", "positive"}
    assert speech["prosody"] == {"loudness_db": -21.5, "pitch_hz": 180.0, "loudness_z": 1.2,
                                 "pitch_z": None}
    assert list(speech["timing"]) == list(STAGES)
    assert speech["actions"][0]["kind"] == "ticket"
    assert turn_to_json(KEYS)["dtmf"] == "0"
    assert turn_to_json(KEYS)["actions"][0]["skills"] == ["support", "billing"]
    assert turn_to_json(SILENCE) == {"n": 3, "no_input": True, "bot": "Are you still there?",
                                     "bot_state": "greet"}


def test_a_turn_from_an_older_gateway_still_reads() -> None:
    old = {"n": 1, "caller": "hi", "intent": {"label": "greeting", "confidence": 0.8,
                                              "top3": [], "out_of_scope": False},
           "bot": "Hello", "actions": [{"kind": "teleport", "where": "mars"}]}
    turn = turn_from_json(old)
    assert turn.caller == "hi" and turn.intent == IntentResult("greeting", 0.8)
    assert turn.emotion is None and turn.timing is None and turn.actions == ()


def test_the_outcome_keeps_its_stored_fields() -> None:
    handover = Handover("caller pressed zero")
    outcome = CallOutcome("escalated", handover, turns=2, barge_ins=1, heard=("Hi",), cut=("x",))
    assert through_json(outcome_to_json(outcome)) == {
        "reason": "escalated", "escalation": "caller pressed zero", "turns": 2, "barge_ins": 1,
        "heard": ["Hi"], "cut": ["x"]}
    assert CallOutcome().escalation is None


# ---- the handover: built once, the same on every wire --------------------------------------


def test_the_handover_is_built_from_the_transfer_and_every_turn() -> None:
    transfer = KEYS.actions[0]
    handover = Handover.build(transfer, [SPEECH, KEYS, SILENCE], {"name": "Ada", "tier": "vip"},
                              "spring")
    assert (handover.reason, handover.skills, handover.priority, handover.brief, handover.rule) \
        == ("caller pressed zero", ("support", "billing"), 6, "Wants a person.", "script")
    assert handover.vip and handover.customer == {"name": "Ada", "tier": "vip"}
    assert handover.campaign_id == "spring"
    assert handover.turns == (
        HandoverTurn("where is my order", "Your order has shipped.", ORDER, CROSS),
        HandoverTurn(None, "Connecting you now."),
        HandoverTurn(None, "Are you still there?"),
    )
    quiet = Handover.build(Transfer((), 0, "", ""), [], None, None)
    assert quiet.reason == DEFAULT_HANDOVER_REASON and not quiet.vip and quiet.campaign_id is None


def handover() -> Handover:
    return Handover.build(KEYS.actions[0], [SPEECH, KEYS], {"name": "Ada", "vip": True}, "spring")


def test_the_handover_round_trips_through_the_fork() -> None:
    sent = media_fork.transfer(handover())
    command = media_fork.parse_server_text(sent)  # what the module receives
    assert command.type == "transfer"
    assert command.data["reason"] == "caller pressed zero"
    assert command.data["skills"] == ["support", "billing"] and command.data["priority"] == 6
    # the module fires mod_audio_fork::transfer with the data as JSON; the controller reads it
    assert media_fork.parse_transfer(json.dumps(command.data)) == handover()


@pytest.mark.parametrize("data", [None, "", "not json", "[1, 2]", '{"reason": 7, "skills": "x"}'])
def test_a_broken_transfer_still_hands_the_call_over(data) -> None:
    assert media_fork.parse_transfer(data) == Handover()


def test_a_transfer_from_an_older_gateway_parses() -> None:
    old = {"reason": "anger", "skills": ["deescalation"], "priority": 8, "brief": "Angry.",
           "rule": "anger"}
    parsed = media_fork.parse_transfer(json.dumps(old))
    assert parsed == Handover("anger", ("deescalation",), 8, "Angry.", "anger")


def test_the_controller_record_keeps_the_handover_as_it_came() -> None:
    record = CallRecord("call-1", "inbound", phase=CallPhase.ANSWERED)
    record.move(CallPhase.BOT)
    record.escalation = handover()
    record.move(CallPhase.ESCALATED)
    stored = through_json(record.to_dict())  # Redis cf:esl:<uuid>
    assert stored["escalation"] == media_fork.handover_to_json(handover())
    assert CallRecord.from_dict(stored) == record
    assert CallRecord.from_dict({"call_uuid": "old", "escalation": {}}).escalation is None


def test_the_router_request_shows_agents_the_conversation_as_before() -> None:
    request = EscalationRequest.from_handover("call-1", handover())
    doc = request.model_dump(mode="json")
    assert doc["transcript"] == [{"caller": "where is my order", "bot": "Your order has shipped."},
                                 {"caller": None, "bot": "Connecting you now."}]
    assert doc["intents"] == [intent_to_json(ORDER), {}]  # one per turn; {} for the key press
    assert doc["emotions"] == [emotion_to_json(CROSS), {}]
    assert doc["skills"] == {"support": 1, "billing": 1} and doc["priority"] == 6
    assert doc["vip"] and doc["customer"] == {"name": "Ada", "vip": True}
    assert doc["campaign_id"] == "spring" and doc["reason"] == "caller pressed zero"
    # the router keeps it in Redis as JSON and reads it back unchanged
    assert EscalationRequest.model_validate_json(request.model_dump_json()) == request
    brief = Offer(offer_id="o", call_uuid="call-1", agent_id="ann", created_at=0,
                  expires_at=1).brief(request)
    assert {"reason", "skills", "brief", "transcript", "intents", "emotions", "customer",
            "campaign_id", "vip", "priority"} <= set(brief)


def test_the_router_request_fits_its_limits() -> None:
    long = Handover("x" * 300, brief="b" * 5000)
    request = EscalationRequest.from_handover("call-1", long)
    assert len(request.reason) == 200 and len(request.brief) == 4000


# ---- the call session builds it once -------------------------------------------------------

INTENTS = """
intents:
  affirm: {examples: ["yes", yeah, sure, correct, right]}
  deny: {examples: ["no", nope, no thanks, not really, nah]}
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
    ask: {prompt: "How can I help?"}
    on:
      - intent: affirm
        goto: handover
  handover:
    say: Connecting you now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
"""


class Voice:
    """TurnModels that only speak (40 ms per reply); the test sends no speech."""

    async def transcribe(self, pcm16k: bytes, expect=None) -> Transcript:
        raise AssertionError("no speech in this test")

    async def intent(self, text: str) -> IntentResult:
        raise AssertionError("no speech in this test")

    async def emotion(self, text: str, loudness_z: float | None,
                      pitch_z: float | None) -> EmotionResult:
        raise AssertionError("no speech in this test")

    async def speak(self, text: str, sample_rate: int) -> AsyncGenerator[tuple[str, bytes], None]:
        if text:
            yield text, bytes(sample_rate // 25 * 2)


class Wire:
    async def send_bytes(self, data: bytes) -> None:
        pass

    async def send_text(self, data: str) -> None:
        pass


class Records:
    """A CallRecorder resuming a call an earlier replica had one speech turn of."""

    def __init__(self, resumed: ResumedCall) -> None:
        self.resumed = resumed
        self.turns: list[tuple[TurnRecord, int]] = []
        self.outcome: CallOutcome | None = None

    async def call_started(self, meta: ForkMetadata) -> ResumedCall | None:
        return self.resumed

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        self.turns.append((turn, state.seq))

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None:
        self.outcome = outcome


async def test_the_session_hands_over_the_whole_call_once(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    bot = ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", tmp_path))
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)  # the earlier replica's opening
    earlier = TurnRecord(n=1, bot="How can I help?", bot_state="greet", caller="hm, well",
                         intent=IntentResult("oos", 0.2, out_of_scope=True), emotion=CROSS)
    records = Records(ResumedCall(state, (earlier,)))
    meta = ForkMetadata("call-1", 8000, campaign="spring", customer={"tier": "vip"})
    session = CallSession(meta, Voice(), Wire(), records, GatewaySettings(), bot)

    await session.start()
    session.on_text(json.dumps({"type": "dtmf", "data": {"digit": "0"}}))
    await asyncio.wait_for(session.finished.wait(), 10)
    outcome = await session.close()

    (pressed, seq), = records.turns
    assert pressed.dtmf == "0" and pressed.kind == "dtmf" and seq == state.seq
    assert pressed.actions and isinstance(pressed.actions[0], Transfer)
    assert outcome is records.outcome and outcome.reason == "escalated"
    assert outcome.handover == Handover.build(pressed.actions[0], [earlier, pressed],
                                              {"tier": "vip"}, "spring")
    assert outcome.handover.turns[0].intent == earlier.intent  # the earlier replica's turn
    assert outcome.escalation == "caller pressed zero" and outcome.handover.vip
