"""Read and write audio files as int16 mono, for tests, demos, prompts and datasets."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

__all__ = ["read_wav", "write_wav"]

_DECODE_RATE = 16000


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Return ``(samples, sample_rate)``: int16 mono, channels mixed down by averaging.

    PCM WAV (8/16/24/32-bit) is read with the stdlib. Anything else (FLAC, MP3, float or
    extensible WAV) is decoded by faster-whisper's PyAV decoder and comes back at 16 kHz.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wf:
            return _pcm_wav(wf), wf.getframerate()
    except (wave.Error, EOFError):
        return _decode_other(path), _DECODE_RATE


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono samples as a 16-bit PCM WAV file."""
    data = np.asarray(samples)
    if data.ndim != 1:
        raise ValueError(f"write_wav takes mono samples (1-D), got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"write_wav takes int16 samples, got {data.dtype}")
    pcm = np.clip(data, -32768, 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(int(sample_rate))
        wf.writeframes(pcm)


def _pcm_wav(wf: wave.Wave_read) -> np.ndarray:
    width, channels = wf.getsampwidth(), wf.getnchannels()
    raw = wf.readframes(wf.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        ints = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        ints = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    elif width == 4:
        ints = np.frombuffer(raw, dtype="<i4").astype(np.int64) >> 16
    else:
        raise wave.Error(f"unsupported sample width {width}")
    ints = ints[: len(ints) - len(ints) % channels].reshape(-1, channels)
    mono = ints[:, 0] if channels == 1 else np.rint(ints.mean(axis=1))
    return np.clip(mono, -32768, 32767).astype(np.int16)


def _decode_other(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        from faster_whisper import decode_audio  # optional: clear error if missing
    except ImportError as exc:  # pragma: no cover - faster-whisper is a core dependency
        raise RuntimeError(
            f"{path.name} is not a PCM WAV file; decoding it needs faster-whisper "
            "(pip install faster-whisper)"
        ) from exc
    audio = decode_audio(str(path), sampling_rate=_DECODE_RATE)
    return np.clip(np.rint(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)
