"""In-process stand-ins for the ports of a call (`telephony.call_session`): the models
(`TurnModels`), the call records (`CallRecorder`), the bot's side effects (`ActionSink`)
and the line back to the caller (`AudioOut`), plus speech-like caller audio that webrtcvad
takes for speech. Each implements the real protocol, so the session, the fork runner and
the bot under test are the real ones, without Ray, Redis or a model.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping

import numpy as np

from bots.script.state import DialogState
from bots.script.turns import Action
from telephony import media_fork
from telephony.call_data import CallOutcome, ResumedCall, TurnRecord
from telephony.call_session import ActionSink, CallRecorder, TurnModels
from telephony.media_fork import ForkMetadata, ServerCommand
from telephony.playback import AudioOut
from training.models.outputs import EmotionResult, IntentResult, Transcript

__all__ = [
    "NEUTRAL",
    "FakeActionSink",
    "FakeRecorder",
    "FakeTurnModels",
    "LineOut",
    "ModelDown",
    "dtmf",
    "frames",
    "playout",
    "silence",
    "speech",
    "until",
]

NEUTRAL = EmotionResult("neutral", {"neutral": 0.9, "anger": 0.05, "positive": 0.05})


class ModelDown(RuntimeError):
    """What a fake model raises when the test makes it fail."""


# ---- caller audio -------------------------------------------------------------------------


def speech(seconds: float, sample_rate: int, f0: float = 140.0, seed: int = 0) -> bytes:
    """L16 mono that webrtcvad calls voiced: a harmonic voice-like buzz (fundamental
    `f0` with a slow vibrato, syllable-rate loudness) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, int(sample_rate / 2 / f0 / 1.1)))
    x = voice * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2) + 0.02 * rng.standard_normal(len(t))
    return (x / np.max(np.abs(x)) * 0.5 * 32767).astype("<i2").tobytes()


def silence(seconds: float, sample_rate: int) -> bytes:
    return b"\x00\x00" * int(seconds * sample_rate)


def frames(pcm: bytes, sample_rate: int, frame_ms: int = 20) -> list[bytes]:
    """`pcm` cut into the fork's binary frames."""
    size = sample_rate * frame_ms // 1000 * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


# ---- the models ---------------------------------------------------------------------------


class FakeTurnModels(TurnModels):
    """Models that answer what the test scripted and remember what they were asked.

    `transcripts` are what ASR hears, one per utterance in order (an exception instance
    is raised instead); once they run out ASR raises ModelDown. `intents`/`emotions` map a
    transcript to its result (or an exception to raise); unmapped text is out of scope /
    neutral. TTS renders each reply as one segment of `reply_s` seconds (`reply_seconds`
    overrides per text) and raises ModelDown for texts in `fail_speaking`.
    """

    def __init__(
        self,
        transcripts: Iterable[str | Exception] = (),
        intents: Mapping[str, IntentResult | Exception] | None = None,
        emotions: Mapping[str, EmotionResult | Exception] | None = None,
        *,
        reply_s: float = 0.04,
        reply_seconds: Mapping[str, float] | None = None,
        fail_speaking: Iterable[str] = (),
        asr_elapsed_s: float = 0.05,
    ) -> None:
        self.transcripts = list(transcripts)
        self.intents = dict(intents or {})
        self.emotions = dict(emotions or {})
        self.reply_s = reply_s
        self.reply_seconds = dict(reply_seconds or {})
        self.fail_speaking = set(fail_speaking)
        self.asr_elapsed_s = asr_elapsed_s
        self.heard: list[bytes] = []  # the 16 kHz L16 audio given to ASR
        self.intent_asked: list[str] = []
        self.emotion_asked: list[tuple[str, float | None, float | None]] = []
        self.spoken: list[str] = []  # texts synthesized, in order
        self.speaking_at: dict[str, float] = {}  # text -> monotonic time TTS was asked

    @staticmethod
    def pcm_of(text: str, sample_rate: int, seconds: float = 0.04) -> bytes:
        """The audio this fake renders for `text` (quiet, so it never trips the VAD)."""
        return bytes([len(text) % 251, 1]) * int(sample_rate * seconds)

    async def transcribe(self, pcm16k: bytes, expect=None) -> Transcript:
        self.heard.append(pcm16k)
        if not self.transcripts:
            raise ModelDown("asr: no transcript scripted")
        said = self.transcripts.pop(0)
        if isinstance(said, Exception):
            raise said
        return Transcript(said, "en", -0.2, 0.01, len(pcm16k) / 32000, self.asr_elapsed_s)

    async def intent(self, text: str) -> IntentResult:
        self.intent_asked.append(text)
        result = self.intents.get(text, IntentResult("oos", 0.2, out_of_scope=True))
        if isinstance(result, Exception):
            raise result
        return result

    async def emotion(self, text: str, loudness_z: float | None,
                      pitch_z: float | None) -> EmotionResult:
        self.emotion_asked.append((text, loudness_z, pitch_z))
        result = self.emotions.get(text, NEUTRAL)
        if isinstance(result, Exception):
            raise result
        return result

    async def speak(self, text: str, sample_rate: int) -> AsyncGenerator[tuple[str, bytes], None]:
        if not text:
            return
        self.speaking_at[text] = time.monotonic()
        if text in self.fail_speaking:
            raise ModelDown("tts: synthesis failed")
        self.spoken.append(text)
        yield text, self.pcm_of(text, sample_rate, self.reply_seconds.get(text, self.reply_s))


# ---- the records ----------------------------------------------------------------------------


class FakeRecorder(CallRecorder):
    """Call records kept in memory, per call: `started` (call ids, in order), `turns`,
    `states` (a copy of the dialog state after each turn), `endings` (every outcome
    recorded, so a test can tell one from two). `resume` holds what a call's records
    already have when its fork moved here mid-call."""

    def __init__(self, resume: Mapping[str, ResumedCall] | None = None) -> None:
        self.resume = dict(resume or {})
        self.started: list[str] = []
        self.turns: dict[str, list[TurnRecord]] = {}
        self.states: dict[str, list[DialogState]] = {}
        self.endings: list[tuple[str, CallOutcome]] = []

    async def call_started(self, meta: ForkMetadata) -> ResumedCall | None:
        self.started.append(meta.call_uuid)
        return self.resume.get(meta.call_uuid)

    async def turn(self, call_uuid: str, turn: TurnRecord, state: DialogState) -> None:
        self.turns.setdefault(call_uuid, []).append(turn)
        self.states.setdefault(call_uuid, []).append(DialogState.from_json(state.to_json()))

    async def call_ended(self, call_uuid: str, outcome: CallOutcome) -> None:
        self.endings.append((call_uuid, outcome))

    @property
    def ended(self) -> dict[str, CallOutcome]:
        """The last outcome recorded per call."""
        return dict(self.endings)

    def end_reason(self, call_uuid: str) -> str:
        return self.ended[call_uuid].reason


# ---- the bot's side effects ------------------------------------------------------------------


class FakeActionSink(ActionSink):
    """Remembers the calls it was told about and the actions it was asked to carry out."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []  # (call uuid, A/B variant) per start
        self.carried: list[tuple[str, tuple[Action, ...]]] = []

    async def started(self, meta: ForkMetadata, state: DialogState) -> None:
        self.calls.append((meta.call_uuid, state.variant))

    async def carry_out(self, meta: ForkMetadata, state: DialogState,
                        actions: tuple[Action, ...]) -> None:
        self.carried.append((meta.call_uuid, tuple(actions)))

    @property
    def actions(self) -> list[Action]:
        return [a for _, batch in self.carried for a in batch]


# ---- the line back to the caller -------------------------------------------------------------


class LineOut(AudioOut):
    """What the session sent back down the fork, each frame with the monotonic time it
    left: binary L16 frames and text commands (mark, killAudio, playAudio…)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes | str]] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append((time.monotonic(), data))

    async def send_text(self, data: str) -> None:
        self.sent.append((time.monotonic(), data))

    @property
    def audio(self) -> bytes:
        return b"".join(f for _, f in self.sent if isinstance(f, bytes))

    def commands(self) -> list[ServerCommand]:
        return [media_fork.parse_server_text(f) for _, f in self.sent if isinstance(f, str)]

    def command_types(self) -> list[str]:
        return [c.type for c in self.commands()]

    def audio_since(self, index: int) -> bytes:
        """Binary audio sent after the first `index` frames."""
        return b"".join(f for _, f in self.sent[index:] if isinstance(f, bytes))


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (polling) until `check()` holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def dtmf(digit: str) -> str:
    """The text frame a key press arrives as."""
    return json.dumps({"type": "dtmf", "data": {"digit": digit}})


def playout(segment: str) -> str:
    """The module's report that a segment was heard."""
    return json.dumps({"type": "mark", "data": {"name": segment, "event": "playout"}})

