"""Bot audio out to FreeSWITCH, paced like a phone line, and stoppable at once.

Two ways the forks allow:

* ``binary`` (jambonz bidirectional fork): L16 frames the module plays as they arrive.
  We pace them to stay only `lead_ms` ahead of the caller's ear, so a barge-in has
  little to throw away, and `killAudio` clears the module's buffer. Each sentence is
  followed by a `mark`; the module reports `playout` when the caller has heard it.
* ``playAudio`` (drachtio fork): one JSON message per sentence; the module writes a file
  and the controller plays it. We track when it will have finished playing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from telephony import media_fork


class AudioOut(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...
    async def send_text(self, data: str) -> None: ...


@dataclass
class _Segment:
    pcm: bytes
    text: str
    name: str
    started: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Playback:
    """One call's outbound audio queue with real-time pacing and barge-in."""

    def __init__(
        self,
        out: AudioOut,
        mode: str,
        sample_rate: int,
        lead_ms: int = 100,
        frame_ms: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in media_fork.PLAYBACK_MODES:
            raise ValueError(f"unknown playback mode {mode!r}")
        self.out = out
        self.mode = mode
        self.sample_rate = sample_rate
        self.lead_s = lead_ms / 1000
        self.frame_bytes = sample_rate * frame_ms // 1000 * 2
        self.frame_s = frame_ms / 1000
        self.clock = clock
        self._queue: asyncio.Queue[_Segment] = asyncio.Queue()
        self._playout_end = 0.0
        self._current: _Segment | None = None
        self._count = 0
        self.heard: list[str] = []  # segment texts the module reported as played out
        self.cut: list[str] = []  # segments stopped by barge-in
        self._texts: dict[str, str] = {}
        self._pump = asyncio.create_task(self._run())

    @property
    def active(self) -> bool:
        """True while the caller is (or is about to be) hearing bot audio."""
        return (
            self._current is not None
            or not self._queue.empty()
            or self.clock() < self._playout_end
        )

    @property
    def playout_end(self) -> float:
        """Clock time at which the caller will have heard everything sent so far (at a
        barge-in: the moment it was cut); 0.0 before any audio."""
        return self._playout_end

    def enqueue(self, pcm: bytes, text: str) -> asyncio.Future:
        """Queue one sentence; the returned future resolves to the wall time of its first
        frame on the wire, or to None if a barge-in dropped it first."""
        self._count += 1
        seg = _Segment(pcm, text, f"seg-{self._count}")
        self._texts[seg.name] = text
        self._queue.put_nowait(seg)
        return seg.started

    async def barge_in(self) -> None:
        """Stop now: drop what is queued, abandon the current sentence, and tell the module
        to throw away what it has buffered."""
        dropped = []
        while not self._queue.empty():
            dropped.append(self._queue.get_nowait())
        if self._current is not None:
            dropped.insert(0, self._current)
            self._current = None
        for seg in dropped:
            self.cut.append(seg.text)
            if not seg.started.done():
                seg.started.set_result(None)
        self._playout_end = self.clock()
        # restart the pump so the sentence being sent stops mid-way
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._pump = asyncio.create_task(self._run())
        await self.out.send_text(media_fork.kill_audio())
        if self.mode == "binary":
            await self.out.send_text(media_fork.clear_marks())

    def on_mark(self, event: media_fork.MarkEvent) -> None:
        text = self._texts.pop(event.name, None)
        if text is not None and event.event == "playout":
            self.heard.append(text)

    async def drained(self, timeout: float = 120.0) -> None:
        """Wait until everything queued has been played out at the caller's end."""
        deadline = self.clock() + timeout
        while self.active and self.clock() < deadline:  # noqa: ASYNC110 - waits on a clock
            await asyncio.sleep(min(0.05, max(0.0, self._playout_end - self.clock()) or 0.02))

    async def close(self) -> None:
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump

    async def _run(self) -> None:
        while True:
            seg = await self._queue.get()
            self._current = seg
            if self.mode == "binary":
                await self._send_binary(seg)
            else:
                await self._send_play_audio(seg)
            self._current = None

    async def _send_binary(self, seg: _Segment) -> None:
        for offset in range(0, len(seg.pcm), self.frame_bytes):
            ahead = self._playout_end - self.clock()
            if ahead > self.lead_s:
                await asyncio.sleep(ahead - self.lead_s)
            await self.out.send_bytes(seg.pcm[offset : offset + self.frame_bytes])
            now = self.clock()
            if not seg.started.done():
                seg.started.set_result(now)
            n = min(self.frame_bytes, len(seg.pcm) - offset)
            self._playout_end = max(self._playout_end, now) + n / 2 / self.sample_rate
        await self.out.send_text(media_fork.mark(seg.name))

    async def _send_play_audio(self, seg: _Segment) -> None:
        # one file per sentence; the module plays them in order
        ahead = self._playout_end - self.clock()
        if ahead > self.lead_s:
            await asyncio.sleep(ahead - self.lead_s)
        await self.out.send_text(media_fork.play_audio(seg.pcm, self.sample_rate, seg.text))
        now = self.clock()
        if not seg.started.done():
            seg.started.set_result(now)
        self._playout_end = max(self._playout_end, now) + len(seg.pcm) / 2 / self.sample_rate
