"""The gateway's `TurnModels` over Serve handles (`deployments.gateway.ingress.ServeTurnModels`),
with fake handles of the `.method.remote(...)` shape (no Ray): what it sends each model
deployment, the typed results it hands back untouched, the sentence-by-sentence speech
with read-ahead, and that it maps no error (a replica's exception reaches the call
session as it was raised; the session apologises and the call goes on)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bots.script import ScriptBot, load_script_text
from configs.settings import GatewaySettings
from deployments.gateway.ingress import ServeTurnModels
from deployments.tts import FIRST_SENTENCE, READ_AHEAD
from telephony.call_session import CallSession, TurnModels
from telephony.media_fork import ForkMetadata
from tests.fakes.call import (
    FakeActionSink,
    FakeRecorder,
    LineOut,
    frames,
    silence,
    speech,
    until,
)
from tests.fakes.serve import FakeHandle
from training.models.outputs import EmotionInput, EmotionResult, IntentResult, Transcript

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

HEARD = Transcript("where is my order", "en", -0.1, 0.02, 1.2, 0.31)
ORDER = IntentResult("order_status", 0.9, [("order_status", 0.9)], model_version="v0002")
CALM = EmotionResult("neutral", {"neutral": 0.8, "anger": 0.1, "positive": 0.1}, arousal=0.2)


class ReplicaDown(RuntimeError):
    """What a fake replica raises (standing in for a Serve/Ray error)."""


def pcm_for(text: str, sample_rate: int, priority: int = FIRST_SENTENCE) -> bytes:
    """The fake TTS replica's audio: 20 ms of a level that encodes the text."""
    return bytes([len(text) % 251, 0]) * (sample_rate // 50)


def handles(**overrides) -> dict[str, FakeHandle]:
    """Fake asr/intent/emotion/tts handles; `overrides` replace a method's function."""
    methods = {
        "asr": {"transcribe": lambda pcm: HEARD},
        "intent": {"classify": lambda text: ORDER},
        "emotion": {"classify": lambda item: CALM},
        "tts": {"synthesize": pcm_for},
    }
    for key, fn in overrides.items():
        name, method = key.split("__")
        methods[name][method] = fn
    return {name: FakeHandle(name, **m) for name, m in methods.items()}


def adapter(h: dict[str, FakeHandle]) -> ServeTurnModels:
    return ServeTurnModels(h["asr"], h["intent"], h["emotion"], h["tts"])


async def spoken(models: TurnModels, text: str, rate: int = 8000) -> list[tuple[str, bytes]]:
    return [item async for item in models.speak(text, rate)]


# ---- one request per model, typed results back ---------------------------------------------


async def test_audio_and_text_go_to_their_deployment_and_the_results_come_back_as_they_are() -> None:
    h = handles()
    models = adapter(h)
    pcm = b"\x01\x02" * 1600
    assert await models.transcribe(pcm) is HEARD
    assert h["asr"].args_of("transcribe") == [(pcm,)]
    assert await models.intent("where is my order") is ORDER
    assert h["intent"].args_of("classify") == [("where is my order",)]
    assert await models.emotion("where is my order", 1.5, None) is CALM
    assert h["emotion"].args_of("classify") == [(EmotionInput("where is my order", 1.5, None),)]
    assert h["tts"].calls == []


async def test_a_reply_is_spoken_sentence_by_sentence_with_the_next_one_read_ahead() -> None:
    h = handles()
    models = adapter(h)
    reply = "Your order has shipped. It arrives on Friday. Anything else?"
    got = []
    async for sentence, pcm in models.speak(reply, 16000):
        # by the time a sentence plays, the next one is already being synthesized
        got.append((sentence, pcm, len(h["tts"].calls)))
    assert [(s, n) for s, _, n in got] == [
        ("Your order has shipped.", 2), ("It arrives on Friday.", 3), ("Anything else?", 3)]
    assert [pcm for _, pcm, _ in got] == [pcm_for(s, 16000) for s, _, _ in got]
    # the first sentence jumps the TTS queue (a caller waits in silence); the rest yield
    assert h["tts"].args_of("synthesize") == [
        ("Your order has shipped.", 16000, FIRST_SENTENCE),
        ("It arrives on Friday.", 16000, READ_AHEAD),
        ("Anything else?", 16000, READ_AHEAD),
    ]
    assert all(response.awaited for _, _, response in h["tts"].calls)


async def test_nothing_to_say_asks_tts_for_nothing() -> None:
    h = handles()
    assert await spoken(adapter(h), "") == []
    assert await spoken(adapter(h), "   ") == []
    assert h["tts"].calls == []


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("broken", ["asr__transcribe", "intent__classify", "emotion__classify"])
async def test_a_replica_error_reaches_the_caller_unchanged(broken: str) -> None:
    def fail(*_args):
        raise ReplicaDown(broken)

    models = adapter(handles(**{broken: fail}))
    call = {"asr__transcribe": lambda: models.transcribe(b"\x00\x00"),
            "intent__classify": lambda: models.intent("hi"),
            "emotion__classify": lambda: models.emotion("hi", None, None)}[broken]
    with pytest.raises(ReplicaDown, match=broken):
        await call()


async def test_a_tts_error_mid_reply_surfaces_after_the_sentences_already_spoken() -> None:
    def synthesize(text: str, rate: int, priority: int) -> bytes:
        if text.startswith("It arrives"):
            raise ReplicaDown("tts")
        return pcm_for(text, rate)

    models = adapter(handles(tts__synthesize=synthesize))
    got = []
    with pytest.raises(ReplicaDown):
        async for sentence, _ in models.speak("Shipped. It arrives Friday. Bye.", 8000):
            got.append(sentence)
    assert got == ["Shipped."]


async def test_a_reply_cut_short_cancels_the_sentence_requested_ahead() -> None:
    h = handles()
    stream = adapter(h).speak("One. Two. Three.", 8000)
    assert (await anext(stream))[0] == "One."
    await stream.aclose()  # the caller barged in
    ahead = h["tts"].calls[-1][2]
    assert not ahead.awaited
    assert ahead.cancelled


# ---- the adapter under a real call session --------------------------------------------------


SCRIPT = """
bot: desk
intents: intents.yaml
start: greet
states:
  greet:
    ask: {prompt: "Hello. How can I help?"}
    on:
      - intent: order_status
        goto: order
  order:
    ask: {prompt: "It has shipped. Anything else?"}
"""


async def test_a_call_session_runs_its_turns_through_the_serve_handles(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(
        "intents:\n  order_status: {examples: [where is my order, track my order]}\n")
    bot = ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "desk.yaml", tmp_path))
    transcripts = [ReplicaDown("asr replica died"), HEARD]

    def transcribe(pcm: bytes) -> Transcript:
        said = transcripts.pop(0)
        if isinstance(said, Exception):
            raise said
        return said

    h = handles(asr__transcribe=transcribe)
    line, records = LineOut(), FakeRecorder()
    meta = ForkMetadata(call_uuid="call-9", sample_rate=8000, direction="inbound")
    session = CallSession(meta, adapter(h), line, records, GatewaySettings(), bot, FakeActionSink())
    await session.start()
    try:
        for _ in range(2):  # the first try meets a dead ASR replica, the second is answered
            await until(lambda: not session.playback.active)
            n = len(h["tts"].calls)
            for frame in frames(speech(0.5, 8000) + silence(0.6, 8000), 8000):
                await session.on_audio(frame)
            await until(lambda n=n: len(h["tts"].calls) > n)
        await until(lambda: bool(records.turns.get("call-9")))
    finally:
        await session.close()
    said = [args[0] for args in h["tts"].args_of("synthesize")]
    assert said == ["Hello.", "How can I help?",
                    "Sorry, I had a problem there.", "Could you say that again?",
                    "It has shipped.", "Anything else?"]
    (turn,) = records.turns["call-9"]
    assert (turn.caller, turn.intent, turn.emotion) == ("where is my order", ORDER, CALM)
    assert turn.timing is not None and turn.timing.asr_engine_ms == 310.0
    # the ASR replica got each utterance as 16 kHz L16 bytes: speech, hang-over, pre-roll
    for (pcm16k,) in h["asr"].args_of("transcribe"):
        assert isinstance(pcm16k, bytes) and 0.5 + 0.4 <= len(pcm16k) / 32000 <= 0.5 + 0.6 + 0.2
