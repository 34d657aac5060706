"""Endpointing on real speech: when utterances start and end, and what is dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from configs.settings import VADSettings
from telephony.codecs import CodecError, resample
from telephony.vad import PREROLL_MS, Endpointer, SpeechStarted, UtteranceEnded
from telephony.wav import read_wav

pytestmark = pytest.mark.unit

SPEECH_DIR = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "datasets"
    / "speech"
    / "librivox_pocketsphinx_5utt"
)
SHORT_CLIP = "sense_and_sensibility_01_austen_64kb-0880.wav"  # 2.99 s, one sentence
LONG_CLIP = "sense_and_sensibility_01_austen_64kb-0870.wav"  # 7.1 s, continuous reading


def load(name: str) -> np.ndarray:
    path = SPEECH_DIR / name
    if not path.exists():
        pytest.skip(f"shared speech clips not found at {SPEECH_DIR} (LibriVox 5-utterance set)")
    samples, rate = read_wav(path)
    assert rate == 16000
    return samples


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def speech_span(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Onset and end of speech by frame energy (within 20 dB of the loudest 20 ms frame),
    independent of webrtcvad."""
    n = rate // 50
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    loud = np.flatnonzero(db > db.max() - 20)
    return loud[0] / 50, (loud[-1] + 1) / 50


def run(ep: Endpointer, x: np.ndarray, chunk_bytes: int = 640) -> list[tuple[object, float]]:
    """Push ``x`` in chunks; return (event, stream seconds pushed when it came out)."""
    data = x.astype("<i2").tobytes()
    out = []
    for start in range(0, len(data), chunk_bytes):
        piece = data[start : start + chunk_bytes]
        for event in ep.push(piece):
            out.append((event, (start + len(piece)) / 2 / ep.sample_rate))
    return out


def utterances(events) -> list[UtteranceEnded]:
    return [e for e, _ in events if isinstance(e, UtteranceEnded)]


@pytest.mark.parametrize("rate", [16000, 8000])
def test_two_sentences_with_a_pause_give_two_utterances(rate):
    clip = load(SHORT_CLIP)
    if rate != 16000:
        clip = resample(clip, 16000, rate)
    onset, end = speech_span(clip, rate)
    clip_s = len(clip) / rate
    stream = np.concatenate([clip, silence(1.0, rate), clip, silence(1.0, rate)])
    ep = Endpointer(rate, VADSettings())

    events = [e for e, _ in run(ep, stream, chunk_bytes=rate // 50 * 2)]

    assert [type(e) for e in events] == [SpeechStarted, UtteranceEnded] * 2
    first, second = events[1], events[3]
    for utt, offset in ((first, 0.0), (second, clip_s + 1.0)):
        assert not utt.forced and utt.sample_rate == rate
        assert abs(utt.start_s - (offset + onset)) < 0.3
        assert abs(utt.end_s - (offset + end)) < 0.3
        audio_s = len(utt.pcm) / 2 / rate
        # pre-roll + speech + hang-over, nothing of the other sentence
        assert utt.end_s - utt.start_s < audio_s <= utt.end_s - utt.start_s + 0.2 + 0.45
    assert events[0].at_s == first.start_s and events[2].at_s == second.start_s
    assert not ep.in_speech


@pytest.mark.parametrize("hangover_ms", [300, 800])
def test_utterance_is_not_reported_before_the_hangover_silence(hangover_ms):
    clip = load(SHORT_CLIP)
    ep = Endpointer(16000, VADSettings(hangover_ms=hangover_ms))
    events = run(ep, np.concatenate([clip, silence(2.0)]), chunk_bytes=640)

    (utt,) = utterances(events)
    reported_at = next(at for e, at in events if e is utt)
    waited = reported_at - utt.end_s
    assert hangover_ms / 1000 - 1e-9 <= waited <= hangover_ms / 1000 + 0.02 + 1e-9


def test_speech_started_comes_early_enough_for_barge_in():
    clip = load(SHORT_CLIP)
    ep = Endpointer(16000, VADSettings(barge_in_ms=120))
    events = run(ep, clip, chunk_bytes=640)
    started, at = events[0]
    assert isinstance(started, SpeechStarted)
    assert 0.12 <= at - started.at_s <= 0.3  # about barge_in_ms after the onset
    assert ep.in_speech


def loudest(x: np.ndarray, seconds: float) -> np.ndarray:
    n = int(seconds * 16000)
    energy = np.convolve(x.astype(np.float64) ** 2, np.ones(n), mode="valid")
    i = int(np.argmax(energy))
    return x[i : i + n]


def test_a_short_click_is_dropped_but_a_word_is_kept():
    clip = load(LONG_CLIP)
    settings = VADSettings(barge_in_ms=20, min_speech_ms=200)  # a click does trigger barge-in

    def burst(seconds):
        stream = np.concatenate([silence(0.5), loudest(clip, seconds), silence(1.0)])
        return utterances(run(Endpointer(16000, settings), stream))

    assert burst(0.06) == []
    (word,) = burst(0.4)
    assert abs(word.start_s - 0.5) < 0.1


def test_long_speech_is_cut_at_max_utterance_and_listening_goes_on():
    clip = load(LONG_CLIP)
    ep = Endpointer(16000, VADSettings(max_utterance_s=2.0))
    utts = utterances(run(ep, np.concatenate([clip, silence(1.0)])))

    assert len(utts) >= 3
    assert all(u.forced for u in utts[:-1])
    assert not utts[-1].forced  # the reading ends in silence, not in a cut
    for u in utts:
        assert len(u.pcm) / 2 / 16000 <= 2.0 + PREROLL_MS / 1000 + 1e-9
    for before, after in zip(utts, utts[1:], strict=False):
        assert after.start_s >= before.end_s - 1e-9  # no overlap, no lost audio
    _, end = speech_span(clip, 16000)
    assert abs(utts[-1].end_s - end) < 0.3


def test_chunking_does_not_change_the_result():
    clip = load(SHORT_CLIP)
    stream = np.concatenate([silence(0.3), clip, silence(0.7), clip, silence(1.0)])

    def events(chunk_bytes):
        return [e for e, _ in run(Endpointer(16000, VADSettings()), stream, chunk_bytes)]

    aligned = events(640)
    assert len(utterances([(e, 0) for e in aligned])) == 2
    assert events(318) == aligned
    assert events(2) == aligned
    assert events(len(stream) * 2) == aligned


def test_silence_and_faint_hiss_produce_nothing():
    rng = np.random.default_rng(7)
    hiss = rng.normal(0, 10, size=16000 * 3).astype(np.int16)  # about -70 dBFS
    for aggressiveness in (0, 2, 3):
        for stream in (silence(5.0), hiss):
            ep = Endpointer(16000, VADSettings(aggressiveness=aggressiveness))
            assert run(ep, stream) == []
            assert not ep.in_speech
    assert ep.push(b"") == []


def test_line_noise_is_not_an_utterance():
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 300, size=16000 * 5).astype(np.int16)  # about -40 dBFS
    assert utterances(run(Endpointer(16000, VADSettings()), noise)) == []


def test_flush_at_hang_up_returns_the_open_utterance():
    clip = load(SHORT_CLIP)
    ep = Endpointer(16000, VADSettings())
    run(ep, clip)
    assert ep.in_speech  # the clip ends before a full hang-over of silence
    (utt,) = ep.flush()
    assert utt.forced and not ep.in_speech
    assert ep.flush() == []


def test_reset_forgets_the_open_utterance_and_the_clock():
    clip = load(SHORT_CLIP)
    ep = Endpointer(16000, VADSettings())
    run(ep, clip[: len(clip) // 2])
    assert ep.in_speech and ep.stream_time_s > 0
    ep.reset()
    assert not ep.in_speech and ep.stream_time_s == 0
    assert utterances(run(ep, silence(2.0))) == []


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="8000, 16000"):
        Endpointer(44100, VADSettings())
    ep = Endpointer(8000, VADSettings())
    with pytest.raises(CodecError, match="odd-length L16 frame: 3 bytes"):
        ep.push(b"\x00\x01\x02")
    assert ep.stream_time_s == 0
