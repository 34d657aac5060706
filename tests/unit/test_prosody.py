"""Loudness and pitch cues, and the caller's own baseline they are judged against."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from telephony.codecs import phone_line
from telephony.prosody import SILENCE_DB, Prosody, ProsodyBaseline, measure_prosody
from telephony.wav import read_wav

pytestmark = pytest.mark.unit

SPEECH_DIR = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "datasets"
    / "speech"
    / "librivox_pocketsphinx_5utt"
)


def clips() -> list[np.ndarray]:
    paths = sorted(SPEECH_DIR.glob("*.wav"))
    if not paths:
        pytest.skip(f"shared speech clips not found at {SPEECH_DIR} (LibriVox 5-utterance set)")
    return [read_wav(p)[0] for p in paths]


def harmonic_tone(f0: float, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """A buzzy vowel-like tone: the fundamental plus four weaker harmonics."""
    t = np.arange(int(rate * seconds)) / rate
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return np.rint(y / np.abs(y).max() * 8000).astype(np.int16)


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return np.clip(np.rint(x * 10 ** (db / 20)), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.parametrize("f0", [120.0, 200.0])
def test_pitch_of_a_harmonic_tone(f0, rate):
    p = measure_prosody(harmonic_tone(f0, rate), rate)
    assert p.pitch_hz is not None
    assert abs(p.pitch_hz - f0) / f0 < 0.05


def test_high_and_low_voices_are_told_apart():
    high = measure_prosody(harmonic_tone(200.0), 16000).pitch_hz
    low = measure_prosody(harmonic_tone(120.0), 16000).pitch_hz
    assert high > 1.5 * low


def test_loudness_is_dbfs_of_the_active_part():
    t = np.arange(16000) / 16000
    sine = np.rint(16384 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)  # half scale
    assert measure_prosody(sine, 16000).loudness_db == pytest.approx(-6.02, abs=0.1)
    with_pauses = np.concatenate([np.zeros(8000, np.int16), sine, np.zeros(16000, np.int16)])
    p = measure_prosody(with_pauses, 16000)
    assert p.loudness_db == pytest.approx(-6.02, abs=0.5)  # pauses do not dilute it
    assert p.duration_s == pytest.approx(2.5)


def test_silence_and_noise_have_no_pitch():
    quiet = measure_prosody(np.zeros(16000, np.int16), 16000)
    assert quiet == Prosody(loudness_db=SILENCE_DB, pitch_hz=None, duration_s=1.0)
    assert measure_prosody(np.zeros(0, np.int16), 16000).duration_s == 0.0
    noise = np.random.default_rng(0).normal(0, 3000, 16000).astype(np.int16)
    assert measure_prosody(noise, 16000).pitch_hz is None


def test_real_speech_has_a_plausible_pitch_on_a_phone_line_too():
    for x in clips():
        wide = measure_prosody(x, 16000)
        phone = measure_prosody(phone_line(x, 16000), 8000)
        assert 70 <= wide.pitch_hz <= 160  # an adult male reader
        assert abs(phone.pitch_hz - wide.pitch_hz) / wide.pitch_hz < 0.15
        assert -35 < wide.loudness_db < -10


def test_a_louder_utterance_stands_out_against_the_callers_baseline():
    *earlier, last = clips()
    baseline = ProsodyBaseline()
    for x in earlier:
        baseline.update(measure_prosody(x, 16000))
    normal = baseline.relative(measure_prosody(last, 16000))
    loud = baseline.relative(measure_prosody(gain(last, 12.0), 16000))
    assert abs(normal["loudness_z"]) < 1.5
    assert loud["loudness_z"] > 2
    assert loud["loudness_z"] - normal["loudness_z"] > 2.5


def test_baseline_needs_an_earlier_utterance_and_floors_the_spread():
    baseline = ProsodyBaseline()
    p = Prosody(loudness_db=-20.0, pitch_hz=110.0, duration_s=2.0)
    assert baseline.relative(p) == {"loudness_z": None, "pitch_z": None}
    baseline.update(p)
    assert baseline.relative(p) == {"loudness_z": 0.0, "pitch_z": 0.0}
    shouting = Prosody(loudness_db=-14.0, pitch_hz=140.0, duration_s=2.0)
    # one earlier utterance: spread is the floor, 3 dB and 15 Hz
    assert baseline.relative(shouting) == {
        "loudness_z": pytest.approx(2.0),
        "pitch_z": pytest.approx(2.0),
    }
    unvoiced = Prosody(loudness_db=-20.0, pitch_hz=None, duration_s=0.5)
    assert baseline.relative(unvoiced)["pitch_z"] is None
    baseline.update(unvoiced)
    assert baseline.relative(shouting)["pitch_z"] == pytest.approx(2.0)  # pitch norm unchanged


def test_baseline_survives_a_round_trip_through_json():
    baseline = ProsodyBaseline()
    for loud, pitch in [(-22.0, 100.0), (-18.0, 130.0), (-25.0, 95.0)]:
        baseline.update(Prosody(loudness_db=loud, pitch_hz=pitch, duration_s=1.0))
    restored = ProsodyBaseline.from_dict(json.loads(json.dumps(baseline.to_dict())))
    probe = Prosody(loudness_db=-10.0, pitch_hz=180.0, duration_s=1.0)
    assert restored.relative(probe) == baseline.relative(probe)
    assert restored.utterances == 3
    with pytest.raises(ValueError):
        ProsodyBaseline.from_dict({"version": 1})
    with pytest.raises(ValueError, match="version"):
        ProsodyBaseline.from_dict({**baseline.to_dict(), "version": 99})


def test_baseline_follows_a_drifting_voice_after_max_count():
    baseline = ProsodyBaseline(max_count=5)
    for _ in range(20):
        baseline.update(Prosody(loudness_db=-30.0, pitch_hz=100.0, duration_s=1.0))
    for _ in range(20):
        baseline.update(Prosody(loudness_db=-20.0, pitch_hz=100.0, duration_s=1.0))
    now = baseline.relative(Prosody(loudness_db=-20.0, pitch_hz=100.0, duration_s=1.0))
    assert abs(now["loudness_z"]) < 0.5
