"""Acoustic arousal cues for the emotion model: loudness and pitch of an utterance.

Absolute loudness says little on a phone line (handset, gain, distance), so the emotion
deployment compares each utterance with the same caller's earlier ones: a caller who
gets 10 dB louder and 40 Hz higher than their own norm is likely agitated.
:class:`ProsodyBaseline` keeps that norm as a few floats, small enough to live in the
call context in Redis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Prosody", "ProsodyBaseline", "measure_prosody", "SILENCE_DB"]

SILENCE_DB = -100.0
"""Loudness reported for audio with no active part (digital silence or empty input)."""

_FRAME_S = 0.040  # 2.4 periods at 60 Hz, the lowest pitch searched
_HOP_S = 0.010
_FMIN_HZ, _FMAX_HZ = 60.0, 400.0
_ACTIVE_BELOW_PEAK_DB = 35.0  # frames this far below the loudest frame count as pauses
_ACTIVE_FLOOR_DB = -60.0  # and so does anything below this absolute level
_VOICING_THRESHOLD = 0.45  # normalised (unbiased) autocorrelation at the pitch lag


@dataclass(frozen=True)
class Prosody:
    """Cues of one utterance. ``loudness_db`` is the RMS in dBFS (full-scale sine = -3 dBFS)
    of its active part; ``pitch_hz`` the median F0 of its voiced frames (None if none)."""

    loudness_db: float
    pitch_hz: float | None
    duration_s: float


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop]


def measure_prosody(pcm_int16: np.ndarray, sample_rate: int) -> Prosody:
    """Loudness, median pitch and duration of one utterance of int16 mono audio.

    Pauses are left out of the loudness (frames more than 35 dB below the loudest frame,
    or below -60 dBFS). Pitch comes from the autocorrelation of 40 ms frames (10 ms hop)
    searched over 60-400 Hz; only frames whose normalised autocorrelation peak exceeds
    0.45 count as voiced. Vectorised: a few ms for 5 s of 16 kHz audio.
    """
    x = np.asarray(pcm_int16).astype(np.float64).ravel() / 32768.0
    duration_s = len(x) / float(sample_rate)
    if len(x) == 0:
        return Prosody(loudness_db=SILENCE_DB, pitch_hz=None, duration_s=0.0)
    size = max(1, round(_FRAME_S * sample_rate))
    hop = max(1, round(_HOP_S * sample_rate))
    frames = _frames(x, size, hop)
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.mean(frames**2, axis=1)
    frame_db = 10.0 * np.log10(np.maximum(power, 1e-20))
    active = frame_db > max(float(frame_db.max()) - _ACTIVE_BELOW_PEAK_DB, _ACTIVE_FLOOR_DB)
    if not active.any():
        return Prosody(loudness_db=SILENCE_DB, pitch_hz=None, duration_s=duration_s)
    # +3.01 dB so that a full-scale sine reads -3 dBFS, as on a meter (AES17)
    loudness_db = 10.0 * math.log10(float(power[active].mean())) + 3.0103
    pitch = _median_pitch(frames[active], sample_rate)
    return Prosody(loudness_db=round(loudness_db, 3), pitch_hz=pitch, duration_s=duration_s)


def _median_pitch(frames: np.ndarray, sample_rate: int) -> float | None:
    size = frames.shape[1]
    lag_min = max(2, int(math.floor(sample_rate / _FMAX_HZ)))
    lag_max = min(size - 2, int(math.ceil(sample_rate / _FMIN_HZ)))
    if lag_max <= lag_min:
        return None
    window = np.hanning(size)
    spec = np.fft.rfft(frames * window, n=2 * size, axis=1)
    acf = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : lag_max + 2]
    energy = acf[:, :1]
    ok = energy[:, 0] > 0
    if not ok.any():
        return None
    acf = acf[ok] / energy[ok]
    # the biased ACF decays with the lag, which favours the true period over its
    # multiples; the unbiased value (corrected by the window's own ACF) decides voicing
    # only true peaks count: at the edge of the range the ACF may merely be falling
    search = acf[:, lag_min : lag_max + 1]
    is_peak = (search >= acf[:, lag_min - 1 : lag_max]) & (
        search > acf[:, lag_min + 1 : lag_max + 2]
    )
    best = np.argmax(np.where(is_peak, search, -np.inf), axis=1) + lag_min
    win_acf = np.correlate(window, window, mode="full")[size - 1 :]
    win_acf = win_acf / win_acf[0]
    rows = np.arange(len(best))
    peak = acf[rows, best]
    voiced = is_peak[rows, best - lag_min] & (
        peak / np.maximum(win_acf[best], 1e-6) > _VOICING_THRESHOLD
    )
    if not voiced.any():
        return None
    rows, best = rows[voiced], best[voiced]
    # parabolic interpolation around the peak for sub-sample period accuracy
    left, mid, right = acf[rows, best - 1], acf[rows, best], acf[rows, best + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(
        np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0
    )
    period = best + np.clip(shift, -0.5, 0.5)
    return round(_robust_median(sample_rate / period), 2)


def _robust_median(f0: np.ndarray) -> float:
    """Median of the frames near the most common pitch, ignoring octave errors.

    Autocorrelation sometimes locks onto a harmonic (worse on 300-3400 Hz phone audio,
    which lacks the fundamental); such frames sit an octave or more away from the
    speaker's cluster, so only frames within 0.4 octave of the densest 1/3 octave count.
    """
    logs = np.log2(f0)
    lo, hi = math.log2(_FMIN_HZ) - 0.5, math.log2(_FMAX_HZ) + 0.5
    counts, edges = np.histogram(logs, bins=int(round((hi - lo) * 12)), range=(lo, hi))
    density = np.convolve(counts, np.ones(4), mode="same")  # 1/3-octave sliding count
    centre = float(edges[int(np.argmax(density))] + 0.5 / 12)
    near = np.abs(logs - centre) <= 0.4
    return float(np.median(f0[near] if near.any() else f0))


@dataclass
class _RunningStat:
    """Mean and population variance with weight 1/min(n, max_count) for the newest value:
    exact (Welford-equivalent) for the first max_count values, an EMA after that."""

    n: int = 0
    mean: float = 0.0
    var: float = 0.0

    def add(self, value: float, max_count: int) -> None:
        self.n += 1
        alpha = 1.0 / min(self.n, max_count)
        delta = value - self.mean
        self.mean += alpha * delta
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta)

    def z(self, value: float, floor: float) -> float | None:
        if self.n < 1:
            return None
        return (value - self.mean) / max(math.sqrt(self.var), floor)


class ProsodyBaseline:
    """One caller's norm of loudness and pitch over their earlier utterances.

    Use: ``rel = baseline.relative(p)`` first (compares against earlier utterances only),
    then ``baseline.update(p)``. The spread is floored (3 dB, 15 Hz by default) so a
    baseline of one or two similar utterances does not make every change look huge.
    After ``max_count`` utterances it becomes an exponential average, following a caller
    whose voice drifts over a long call. Silent utterances (no loudness) and unvoiced
    ones (no pitch) leave the respective part unchanged.
    """

    VERSION = 1

    def __init__(
        self, *, loudness_floor_db: float = 3.0, pitch_floor_hz: float = 15.0, max_count: int = 50
    ) -> None:
        if loudness_floor_db <= 0 or pitch_floor_hz <= 0 or max_count < 1:
            raise ValueError("spread floors must be positive and max_count >= 1")
        self.loudness_floor_db = float(loudness_floor_db)
        self.pitch_floor_hz = float(pitch_floor_hz)
        self.max_count = int(max_count)
        self._loudness = _RunningStat()
        self._pitch = _RunningStat()

    @property
    def utterances(self) -> int:
        """How many (non-silent) utterances the loudness norm is built from."""
        return self._loudness.n

    def relative(self, p: Prosody) -> dict[str, float | None]:
        """``{"loudness_z", "pitch_z"}`` of ``p`` against the baseline; None where the
        baseline has no earlier value or ``p`` has no such cue."""
        loud = (
            None
            if p.loudness_db <= SILENCE_DB
            else self._loudness.z(p.loudness_db, self.loudness_floor_db)
        )
        pitch = None if p.pitch_hz is None else self._pitch.z(p.pitch_hz, self.pitch_floor_hz)
        return {"loudness_z": loud, "pitch_z": pitch}

    def update(self, p: Prosody) -> None:
        """Fold ``p`` into the baseline."""
        if p.loudness_db > SILENCE_DB:
            self._loudness.add(float(p.loudness_db), self.max_count)
        if p.pitch_hz is not None:
            self._pitch.add(float(p.pitch_hz), self.max_count)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (plain numbers) for keeping in the call context."""
        return {
            "version": self.VERSION,
            "loudness_floor_db": self.loudness_floor_db,
            "pitch_floor_hz": self.pitch_floor_hz,
            "max_count": self.max_count,
            "loudness": {
                "n": self._loudness.n,
                "mean": self._loudness.mean,
                "var": self._loudness.var,
            },
            "pitch": {"n": self._pitch.n, "mean": self._pitch.mean, "var": self._pitch.var},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProsodyBaseline:
        """Rebuild from :meth:`to_dict` output; ValueError on a foreign or damaged dict."""
        try:
            if data["version"] != cls.VERSION:
                raise ValueError(f"unsupported ProsodyBaseline version {data['version']!r}")
            out = cls(
                loudness_floor_db=data["loudness_floor_db"],
                pitch_floor_hz=data["pitch_floor_hz"],
                max_count=data["max_count"],
            )
            for name in ("loudness", "pitch"):
                part = data[name]
                stat = _RunningStat(int(part["n"]), float(part["mean"]), float(part["var"]))
                if stat.n < 0 or stat.var < 0:
                    raise ValueError(f"negative count or variance in {name!r}")
                setattr(out, f"_{name}", stat)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a ProsodyBaseline dict: {exc!r}") from None
        return out
