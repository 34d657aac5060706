"""Simulated callers for the demo, `callfleet simulate` and the benchmarks: what they say,
at which sample rate, in which playback mode (scenario files are YAML data). The audio is synthesized by `CallerVoice` (a voice
audibly different from the bot's) and, for 8 kHz calls, passed through a phone line."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from telephony import codecs
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall

DEFAULT_SCENARIOS = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "default.yaml"


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=500)
    gain: float = Field(1.0, gt=0, le=10, description="> 1: the caller raises their voice")
    barge_in_after_s: float | None = Field(None, ge=0, le=60)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lines: list[Line] = Field(min_length=1)
    sample_rate: Literal[8000, 16000] = 16000
    playback: Literal["binary", "playAudio"] = "binary"
    customer: dict[str, Any] = Field(default_factory=dict)
    hold_s: float = Field(30.0, ge=0, le=3600, description="after the bot hands the call "
                          "over, how long the caller waits on hold for a person before "
                          "hanging up (counted as abandoned)")


class ScenarioError(ValueError):
    pass


def load_scenarios(path: str | Path | None = None) -> list[Scenario]:
    """Read a scenario file (`scenarios: [...]`); every problem is listed with its place."""
    path = Path(path or DEFAULT_SCENARIOS)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    items = doc.get("scenarios") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ScenarioError(f"{path}: expected a non-empty list under 'scenarios:'")
    scenarios, problems = [], []
    for i, item in enumerate(items):
        try:
            scenarios.append(Scenario.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"scenarios[{i}].{where}: {err['msg']}")
    if problems:
        raise ScenarioError(f"{path}: invalid scenario(s):\n  - " + "\n  - ".join(problems))
    return scenarios


def scenario_for(scenarios: list[Scenario], number: str) -> Scenario:
    """The callee a dialled number reaches: fixed per number (a hash of it), so a test or
    a demo can choose numbers that reach the scenarios it needs."""
    digest = int(hashlib.sha1(number.encode()).hexdigest(), 16)
    return scenarios[digest % len(scenarios)]


def trim_silence(x: np.ndarray, rate: int, threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading/trailing silence so 'end of audio' is 'end of speech'."""
    frame = rate // 100
    n = len(x) // frame
    if n == 0:
        return x
    frames = codecs.int16_to_float(x[: n * frame]).reshape(n, frame)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = np.flatnonzero(db > threshold_db)
    if voiced.size == 0:
        return x
    return x[voiced[0] * frame : (voiced[-1] + 1) * frame]


def build_call(scenario: Scenario, voice, call_uuid: str | None = None) -> SimulatedCall:
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
        call_uuid=call_uuid or str(uuid.uuid4()),
        sample_rate=scenario.sample_rate,
        caller="+15550100" + str(len(scenario.lines)),
        callee="+15550199000",
        direction="inbound",
        playback=scenario.playback,
        customer=dict(scenario.customer),
    )
    return SimulatedCall(meta, turns, hold_s=scenario.hold_s)
