"""Endpointing: turn a caller's L16 stream into utterances with webrtcvad.

The call session pushes whatever packets arrive; the Endpointer frames them, asks
webrtcvad about each frame and reports two events:

- ``SpeechStarted`` once the caller is confirmed to be speaking (used for barge-in);
- ``UtteranceEnded`` once the caller has been silent for ``hangover_ms`` (or the
  utterance hit ``max_utterance_s``), carrying the audio to transcribe.

Times are stream times: samples pushed so far / sample rate, starting at 0.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from configs.settings import VADSettings
from telephony.codecs import frame_bytes, validate_l16

__all__ = ["SpeechStarted", "UtteranceEnded", "VADEvent", "Endpointer", "PREROLL_MS", "QUIET_DBFS"]

PREROLL_MS = 200
"""Audio kept from before the speech onset, so ASR hears the first phoneme whole."""

SUPPORTED_RATES = (8000, 16000)

QUIET_DBFS = -60.0
"""Frames quieter than this (RMS, dBFS) are unvoiced without asking webrtcvad, which
otherwise calls the first ~100 ms of any input speech, even faint line hiss."""

_QUIET_MEAN_SQUARE = (32768.0 * 10 ** (QUIET_DBFS / 20)) ** 2


@dataclass(frozen=True)
class SpeechStarted:
    """The caller is speaking. ``at_s`` is the onset (start of the first voiced frame);
    the event itself is emitted about ``barge_in_ms`` of voiced audio later."""

    at_s: float


@dataclass(frozen=True)
class UtteranceEnded:
    """One utterance, ready for ASR.

    ``pcm`` is L16 mono at ``sample_rate``: up to PREROLL_MS of audio before
    ``start_s``, the utterance, and the trailing hang-over silence. ``start_s`` is the
    onset of the first voiced frame; ``end_s`` is the end of the last voiced frame, i.e.
    when the caller actually stopped talking (response latency is measured from it).
    ``forced`` is True when the utterance was cut by ``max_utterance_s`` or ``flush()``
    rather than ended by silence.
    """

    pcm: bytes
    sample_rate: int
    start_s: float
    end_s: float
    forced: bool


VADEvent = SpeechStarted | UtteranceEnded


class Endpointer:
    """Per-call endpointing state machine (not thread-safe; one per call).

    Contract of :meth:`push`: any even-length chunk is accepted; partial frames are kept
    until completed, so the events do not depend on how the stream was chunked. Memory
    is bounded by ``max_utterance_s`` plus the pre-roll.

    Rules (``s`` = the VADSettings):

    - Idle: the utterance opens when at least ``s.barge_in_ms`` of voiced frames fall in
      a sliding window of twice that length; it starts at the first voiced frame of
      that window. ``SpeechStarted`` is emitted once the open utterance holds
      ``s.barge_in_ms`` of voiced audio (at once for a fresh utterance).
    - Open: ``s.hangover_ms`` of continuous unvoiced frames closes it. It is reported
      only if it held at least ``s.min_speech_ms`` of voiced audio; shorter bursts are
      dropped silently as noise.
    - An utterance reaching ``s.max_utterance_s`` is cut (``forced=True``) and the next
      one opens at the very next frame, so no audio is lost or duplicated.
    - Frames below QUIET_DBFS never count as voiced. webrtcvad's own overhang adds up
      to ~80 ms of voiced frames after speech, so ``end_s`` may trail the last phoneme
      by that much and a burst counts somewhat longer than it lasted.
    """

    def __init__(self, sample_rate: int, settings: VADSettings) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(
                f"Endpointer supports sample rates {SUPPORTED_RATES}, got {sample_rate}"
            )
        self.sample_rate = sample_rate
        self.settings = settings
        self._frame_ms = settings.frame_ms
        self._frame_bytes = frame_bytes(sample_rate, settings.frame_ms)
        self._frame_s = settings.frame_ms / 1000.0
        self._confirm_frames = max(1, math.ceil(settings.barge_in_ms / settings.frame_ms))
        self._window_frames = 2 * self._confirm_frames
        self._preroll_frames = math.ceil(PREROLL_MS / settings.frame_ms)
        self._hangover_frames = max(1, math.ceil(settings.hangover_ms / settings.frame_ms))
        self._min_speech_frames = max(1, math.ceil(settings.min_speech_ms / settings.frame_ms))
        self._max_frames = max(1, math.floor(settings.max_utterance_s * 1000 / settings.frame_ms))
        self._vad = webrtcvad.Vad(settings.aggressiveness)
        self.reset()

    def reset(self) -> None:
        """Forget everything: buffered bytes, any open utterance and the stream clock."""
        self._pending = bytearray()
        self._frames_done = 0  # frames processed; frame i spans [i, i+1) * frame_s
        # idle: recent (frame, voiced) pairs for the confirmation window and the pre-roll
        self._recent: deque[tuple[bytes, bool]] = deque(
            maxlen=self._window_frames + self._preroll_frames
        )
        self._open = False
        self._utt = bytearray()
        self._utt_frames = 0
        self._utt_start_frame = 0
        self._voiced_frames = 0
        self._last_voiced_frame = -1
        self._silence_run = 0
        self._started_sent = False

    @property
    def in_speech(self) -> bool:
        """True while an utterance is open (confirmed speech not yet ended)."""
        return self._open

    @property
    def stream_time_s(self) -> float:
        """Seconds of audio processed so far (complete frames only)."""
        return self._frames_done * self._frame_s

    def push(self, pcm: bytes) -> list[VADEvent]:
        """Feed L16 audio; return the events it caused, oldest first.

        Raises CodecError (a ValueError) on an odd-length chunk, leaving state unchanged.
        """
        validate_l16(pcm)
        self._pending += pcm
        events: list[VADEvent] = []
        size = self._frame_bytes
        usable = len(self._pending) - len(self._pending) % size
        for start in range(0, usable, size):
            frame = bytes(self._pending[start : start + size])
            self._on_frame(frame, self._is_voiced(frame), events)
            self._frames_done += 1
        del self._pending[:usable]
        return events

    def flush(self) -> list[VADEvent]:
        """End of stream (hang-up): close an open utterance as if cut (``forced=True``).

        The partial frame still buffered is dropped. Returns [] when nothing was open or
        the open utterance is too short to report.
        """
        events: list[VADEvent] = []
        if self._open:
            self._close(events, forced=True)
        self._pending.clear()
        return events

    # --- internals -----------------------------------------------------------------

    def _is_voiced(self, frame: bytes) -> bool:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        if float(np.dot(samples, samples)) < _QUIET_MEAN_SQUARE * len(samples):
            return False  # digital silence or faint hiss
        return self._vad.is_speech(frame, self.sample_rate)

    def _on_frame(self, frame: bytes, voiced: bool, events: list[VADEvent]) -> None:
        if not self._open:
            self._recent.append((frame, voiced))
            if voiced:
                self._try_open(events)
            return
        self._utt += frame
        self._utt_frames += 1
        if voiced:
            self._voiced_frames += 1
            self._last_voiced_frame = self._frames_done
            self._silence_run = 0
            self._maybe_announce(events)
        else:
            self._silence_run += 1
            if self._silence_run >= self._hangover_frames:
                self._close(events, forced=False)
                return
        if self._utt_frames >= self._max_frames:
            self._close(events, forced=True)
            self._open_at(self._frames_done + 1, b"", [])

    def _try_open(self, events: list[VADEvent]) -> None:
        recent = list(self._recent)
        window = recent[-self._window_frames :]
        if sum(v for _, v in window) < self._confirm_frames:
            return
        first = len(recent) - len(window) + next(i for i, (_, v) in enumerate(window) if v)
        start_frame = self._frames_done - (len(recent) - 1 - first)
        preroll = b"".join(f for f, _ in recent[max(0, first - self._preroll_frames) : first])
        self._open_at(start_frame, preroll, recent[first:])
        self._maybe_announce(events)

    def _open_at(self, start_frame: int, preroll: bytes, frames: list[tuple[bytes, bool]]) -> None:
        self._open = True
        self._recent.clear()
        self._utt = bytearray(preroll)
        self._utt_start_frame = start_frame
        self._utt_frames = 0
        self._voiced_frames = 0
        self._silence_run = 0
        self._last_voiced_frame = -1
        self._started_sent = False
        for offset, (frame, voiced) in enumerate(frames):
            self._utt += frame
            self._utt_frames += 1
            if voiced:
                self._voiced_frames += 1
                self._last_voiced_frame = start_frame + offset
                self._silence_run = 0
            else:
                self._silence_run += 1

    def _maybe_announce(self, events: list[VADEvent]) -> None:
        if not self._started_sent and self._voiced_frames >= self._confirm_frames:
            self._started_sent = True
            events.append(SpeechStarted(at_s=self._utt_start_frame * self._frame_s))

    def _close(self, events: list[VADEvent], *, forced: bool) -> None:
        if self._voiced_frames >= self._min_speech_frames:
            events.append(
                UtteranceEnded(
                    pcm=bytes(self._utt),
                    sample_rate=self.sample_rate,
                    start_s=self._utt_start_frame * self._frame_s,
                    end_s=(self._last_voiced_frame + 1) * self._frame_s,
                    forced=forced,
                )
            )
        # the trailing silence may serve as pre-roll if the caller starts again at once
        tail = min(self._silence_run, self._preroll_frames) * self._frame_bytes
        size = self._frame_bytes
        trailing = bytes(self._utt[len(self._utt) - tail :]) if tail else b""
        self._open = False
        self._recent.clear()
        for start in range(0, len(trailing), size):
            self._recent.append((trailing[start : start + size], False))
        self._utt = bytearray()
        self._utt_frames = 0
        self._voiced_frames = 0
        self._silence_run = 0
