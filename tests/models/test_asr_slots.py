"""Slot-aware recognition with the real tiny.en model on real 8 kHz spoken digits."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bots.slots import SlotSpec, slot_value
from configs.settings import ASRSettings
from deployments.engines.asr import WhisperTranscriber
from telephony.codecs import int16_to_float, resample
from telephony.wav import read_wav

pytestmark = pytest.mark.models

SPEECH = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "speech"
DIGITS = SPEECH / "fsdd_digits_dev"
READ = SPEECH / "librivox_pocketsphinx_5utt"


def phone_clips(folder: Path, every: int = 1) -> list[tuple[np.ndarray, dict]]:
    manifest = folder / "manifest.tsv"
    assert manifest.is_file(), f"shared dataset missing: {folder}"
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[::every]
    clips = []
    for row in rows:
        audio, rate = read_wav(folder / row["path"])
        audio = int16_to_float(audio) if audio.dtype != np.float32 else audio
        audio = resample(resample(audio, rate, 8000), 8000, 16_000)  # through a phone line
        clips.append((audio.astype(np.float32), row))
    return clips


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> WhisperTranscriber:
    return WhisperTranscriber(ASRSettings(cpu_threads=2, workers=1),
                              tmp_path_factory.mktemp("cache"), device="cpu")


def test_a_digit_prompt_hears_lone_digits_that_plain_transcription_misses(engine):
    clips = phone_clips(DIGITS, every=10)  # 30 clips, every digit, every speaker
    spec = SlotSpec(kind="digits", length=1)
    expected = [slot_value(spec, engine.transcribe_expecting(a, spec).text) == r["digit"]
                for a, r in clips]
    plain = [slot_value(spec, engine.transcribe(a).text) == r["digit"] for a, r in clips]
    assert sum(expected) >= 27, f"{sum(expected)}/30 digits heard with the expectation"
    assert sum(expected) > sum(plain)


def test_a_pin_said_digit_by_digit_is_read_whole(engine):
    clips = {r["digit"]: a for a, r in phone_clips(DIGITS, every=10)}
    gap = np.zeros(2400, np.float32)  # 0.15 s between digits
    said = np.concatenate([part for d in "4071" for part in (clips[d], gap)])
    heard = engine.transcribe_expecting(said, SlotSpec(kind="digits", length=4))
    assert heard.text == "4071"


def test_a_sentence_at_a_digit_prompt_stays_a_sentence(engine):
    """A caller who answers a PIN question with a sentence (asking for a person, say) is
    not turned into digits: the free transcript stands, so escalation still works."""
    for audio, row in phone_clips(READ):
        for spec in (SlotSpec(kind="digits", length=1), SlotSpec(kind="yes_no")):
            heard = engine.transcribe_expecting(audio[: 16_000 * 4], spec)
            assert slot_value(spec, heard.text) is None, row["reference_text"][:40]
            assert len(heard.text.split()) > 3
