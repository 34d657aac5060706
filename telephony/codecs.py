"""Audio formats on the telephone side: L16 PCM, G.711 μ-law, resampling, framing.

FreeSWITCH media forks send and play 16-bit little-endian signed PCM ("L16") in 20 ms
packets at 8 or 16 kHz; the ASR wants 16 kHz and TTS voices speak at 16/22.05/24 kHz.
Everything here is plain numpy/scipy (``audioop`` is gone from Python 3.13) and works on
whole buffers, so a call session can convert one packet or one utterance at a time.

Conventions: int16 arrays are native-endian numpy ``int16``; float audio is ``float32``
in [-1, 1) with full scale 32768; ``bytes`` are always L16 (little-endian int16) unless a
function says μ-law.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import gcd

import numpy as np
from scipy import signal

__all__ = [
    "CodecError",
    "validate_l16",
    "l16_to_int16",
    "int16_to_l16",
    "int16_to_float",
    "l16_to_float",
    "float_to_l16",
    "mulaw_encode",
    "mulaw_decode",
    "resample",
    "frame_bytes",
    "iter_frames",
    "phone_line",
]

_FULL_SCALE = 32768.0
_L16 = np.dtype("<i2")


class CodecError(ValueError):
    """Audio bytes that cannot be what the protocol says they are (e.g. odd-length L16).

    A session that gets one from a peer's frame should close that connection with the
    message as the reason; it is never a reason to stop the process.
    """


def validate_l16(data: bytes) -> None:
    """Raise CodecError unless ``data`` can be 16-bit PCM (an even number of bytes)."""
    if len(data) % 2:
        raise CodecError(
            f"odd-length L16 frame: {len(data)} bytes (16-bit PCM needs an even count)"
        )


def l16_to_int16(data: bytes) -> np.ndarray:
    """Decode L16 bytes to a new (writable) native int16 array; CodecError on odd length."""
    validate_l16(data)
    return np.frombuffer(data, dtype=_L16).astype(np.int16)


def int16_to_l16(x: np.ndarray) -> bytes:
    """Encode integer samples as L16 bytes. Float arrays are refused (use float_to_l16)."""
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.integer):
        raise CodecError(f"int16_to_l16 needs integer samples, got {arr.dtype} (use float_to_l16)")
    if arr.dtype != np.int16:
        arr = np.clip(arr, -32768, 32767)
    return arr.astype(_L16, copy=False).tobytes()


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """Integer samples (16-bit full scale) as float32 in [-1, 1) (sample / 32768)."""
    return (np.asarray(x).astype(np.float32) / np.float32(_FULL_SCALE)).astype(np.float32)


def l16_to_float(data: bytes) -> np.ndarray:
    """Decode L16 bytes to float32 in [-1, 1) (sample / 32768); CodecError on odd length."""
    return int16_to_float(l16_to_int16(data))


def float_to_l16(x: np.ndarray) -> bytes:
    """Encode float audio (full scale ±1.0) as L16, rounding and clipping out-of-range values.

    Inverse of :func:`l16_to_float`: ``float_to_l16(l16_to_float(b)) == b``.
    """
    arr = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    ints = np.clip(np.rint(arr * _FULL_SCALE), -32768, 32767)
    return ints.astype(_L16).tobytes()


# --- G.711 μ-law -------------------------------------------------------------------
# Bit-exact with the ITU-T G.191 reference (g711.c: ulaw_compress / ulaw_expand).
# Codes 0x7F and 0xFF both decode to 0 ("negative" and "positive" zero); encoding 0
# gives 0xFF, so 0x7F is the one code that does not survive encode(decode(code)).


def _build_mulaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    inv = ~codes & 0xFF
    exponent = (inv >> 4) & 0x07
    mantissa = inv & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    sign = np.where(codes < 0x80, -1, 1)
    return (sign * magnitude).astype(np.int16)


_MULAW_TO_LINEAR = _build_mulaw_decode_table()


def mulaw_encode(x: np.ndarray) -> bytes:
    """Encode int16 samples (wider ints are clipped to int16) to G.711 μ-law bytes."""
    lin = np.clip(np.asarray(x).astype(np.int32, copy=False), -32768, 32767)
    # G.191: the magnitude of a negative sample is taken as ~x (one's complement)
    absno = (np.where(lin < 0, ~lin, lin) >> 2) + 33
    absno = np.minimum(absno, 0x1FFF)
    segno = np.zeros_like(absno)
    i = absno >> 6
    while True:  # at most 8 rounds: segno = bit length of (absno >> 6), plus 1 below
        more = i != 0
        if not more.any():
            break
        segno += more
        i >>= 1
    segno += 1
    high = 0x08 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(lin >= 0, code | 0x80, code)
    return code.astype(np.uint8).tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """Decode G.711 μ-law bytes to int16 samples (one sample per byte)."""
    codes = np.frombuffer(bytes(data), dtype=np.uint8)
    return _MULAW_TO_LINEAR[codes]


# --- sample rates and framing ------------------------------------------------------


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Change the sample rate with a polyphase anti-aliasing filter (scipy resample_poly).

    Returns the input dtype: int16 in gives int16 out (rounded, clipped), float32 in gives
    float32 out. The output has ``ceil(len(x) * to_rate / from_rate)`` samples. Equal
    rates return the input unchanged (same object).
    """
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return x
    arr = np.asarray(x)
    g = gcd(int(from_rate), int(to_rate))
    up, down = int(to_rate) // g, int(from_rate) // g
    if arr.size == 0:
        return arr.copy()
    out = signal.resample_poly(arr.astype(np.float64), up, down)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(arr.dtype)
    return out.astype(arr.dtype)


def frame_bytes(sample_rate: int, frame_ms: int) -> int:
    """Bytes in one mono L16 frame of ``frame_ms`` at ``sample_rate`` (20 ms @ 8 kHz = 320)."""
    samples = sample_rate * frame_ms // 1000
    if samples <= 0 or samples * 1000 != sample_rate * frame_ms:
        raise ValueError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
    return 2 * samples


def iter_frames(data: bytes, sample_rate: int, frame_ms: int) -> Iterator[bytes]:
    """Yield the complete ``frame_ms`` frames of ``data``; a trailing partial frame is dropped."""
    validate_l16(data)
    size = frame_bytes(sample_rate, frame_ms)
    view = memoryview(data)
    for start in range(0, len(data) - size + 1, size):
        yield bytes(view[start : start + size])


# --- telephone line simulation -----------------------------------------------------

_PHONE_RATE = 8000
_PHONE_BAND = signal.butter(4, (300.0, 3400.0), btype="bandpass", fs=_PHONE_RATE, output="sos")


def phone_line(x: np.ndarray, rate: int) -> np.ndarray:
    """What a caller's audio sounds like after a PSTN hop: int16 at 8 kHz.

    Resamples to 8 kHz, band-limits to 300-3400 Hz (causal 4th-order Butterworth, like
    the line) and round-trips through G.711 μ-law. Used to make test and training audio
    match what the gateway hears.
    """
    narrow = resample(np.asarray(x, dtype=np.int16), rate, _PHONE_RATE).astype(np.float64)
    band = signal.sosfilt(_PHONE_BAND, narrow)
    band16 = np.clip(np.rint(band), -32768, 32767).astype(np.int16)
    return mulaw_decode(mulaw_encode(band16))
