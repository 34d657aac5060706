"""Simulated callers for the demo and the latency benchmark: what they say, at which
sample rate, in which playback mode. The audio is synthesized by `CallerVoice` (a voice
audibly different from the bot's) and, for 8 kHz calls, passed through a phone line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from telephony import codecs
from telephony.fork_client import CallerTurn, SimulatedCall
from telephony.media_fork import ForkMetadata


@dataclass(frozen=True)
class Line:
    text: str
    gain: float = 1.0  # > 1: the caller raises their voice
    barge_in_after_s: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    lines: list[Line]
    sample_rate: int = 16000
    playback: str = "binary"
    customer: dict = field(default_factory=dict)


SCENARIOS = [
    Scenario(
        "order status (16 kHz, binary playback)",
        [Line("Hi, I'd like to know where my order is."), Line("No, that's all. Thanks, bye.")],
        customer={"name": "Dana"},
    ),
    Scenario(
        "refund and address change (8 kHz phone line, playAudio)",
        [
            Line("I want a refund for the shoes I bought last week."),
            Line("Can I change the delivery address for my other order?"),
            Line("No thank you, goodbye."),
        ],
        sample_rate=8000,
        playback="playAudio",
    ),
    Scenario(
        "angry caller asks for a person (8 kHz, barge-in)",
        [
            Line("This is ridiculous! I have been waiting three weeks for my package!", gain=2.5),
            Line("Stop. Let me talk to a real person.", gain=2.5, barge_in_after_s=1.5),
            Line("Let me talk to a real person, now!", gain=2.5),
        ],
        sample_rate=8000,
    ),
]


def trim_silence(x: np.ndarray, rate: int, threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading/trailing silence so 'end of audio' is 'end of speech'."""
    frame = rate // 100
    n = len(x) // frame
    if n == 0:
        return x
    frames = x[: n * frame].astype(np.float32).reshape(n, frame) / 32768.0
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = np.flatnonzero(db > threshold_db)
    if voiced.size == 0:
        return x
    return x[voiced[0] * frame : (voiced[-1] + 1) * frame]


def build_call(scenario: Scenario, voice, call_id: str | None = None) -> SimulatedCall:
    turns = []
    for line in scenario.lines:
        audio = voice.speak(line.text, 16000)
        if scenario.sample_rate == 8000:
            audio = codecs.phone_line(audio, 16000)
        if line.gain != 1.0:
            audio = np.clip(audio.astype(np.float32) * line.gain, -32768, 32767).astype(np.int16)
        turns.append(CallerTurn(trim_silence(audio, scenario.sample_rate), line.text,
                                line.barge_in_after_s))
    meta = ForkMetadata(
        call_id=call_id or str(uuid.uuid4()),
        sample_rate=scenario.sample_rate,
        caller="+15550100" + str(len(scenario.lines)),
        callee="+15550199000",
        direction="inbound",
        playback=scenario.playback,  # type: ignore[arg-type]
        customer=dict(scenario.customer),
    )
    return SimulatedCall(meta, turns)
