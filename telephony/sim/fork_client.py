"""The FreeSWITCH side of a media fork, simulated: connects to the gateway exactly as
mod_audio_fork does, streams a caller's audio in real time (20 ms L16 frames, silence
between utterances, as a live channel does), plays back what the bot sends like the
jambonz bidirectional module (binary frames, marks, killAudio) or the drachtio module
(playAudio), and records what happened with timings.

Used by the demo, the integration tests and the latency benchmark, on its own (a fork
with nobody behind it) or inside the simulated switch (`telephony.sim.switch`), which
passes `ForkHooks` so that the module's custom events reach the ESL controller and
``playAudio`` files are played only when the controller says ``uuid_broadcast``, as with
the real module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from telephony import media_fork
from telephony.media_fork import ForkMetadata

FRAME_MS = 20


@dataclass
class CallerTurn:
    """One thing the caller says. `barge_in_after_s` makes the caller start talking that
    long after the bot's reply began, instead of waiting for the bot to finish."""

    audio: np.ndarray  # int16 at the call's sample rate, speech trimmed at both ends
    text: str = ""  # what the caller says (for reports only; never sent)
    barge_in_after_s: float | None = None
    silence_s: float = 0.0  # extra silence before this turn (tests no-input handling)
    dtmf: str = ""  # keys pressed (after the speech, if any), one every 250 ms
    hangup_after_s: float | None = None  # hang up this far into the turn (mid-sentence)


class ForkHooks(Protocol):
    """What the switch around a fork does with the module's side of the protocol."""

    def connected(self, control: ForkControl) -> None: ...
    def connect_failed(self, reason: str) -> None: ...
    def play_audio(self, pcm: bytes, sample_rate: int) -> None: ...
    def kill_audio(self) -> None: ...
    def server_event(self, kind: str, data: Any) -> None: ...
    def dtmf(self, digit: str) -> None: ...


class ForkControl:
    """The switch's hands on a live fork: play a file to the caller, stop playback,
    send a text frame to the server (``uuid_audio_fork … send_text``)."""

    def __init__(self, ws, far: _FarEnd, report: CallReport):
        self._ws, self._far, self._report = ws, far, report

    @property
    def report(self) -> CallReport:
        """The call's report so far (kept even if the fork is cut off)."""
        return self._report

    def play(self, pcm: bytes) -> None:
        self._report.bot_audio.extend(pcm)
        self._far.play(len(pcm))

    def kill(self) -> None:
        self._far.kill()

    async def send_text(self, text: str) -> None:
        await self._ws.send(text)


@dataclass
class SimulatedCall:
    meta: ForkMetadata
    turns: list[CallerTurn]
    pause_s: float = 0.4  # caller's reaction time after the bot stops talking
    max_wait_s: float = 20.0  # give up waiting for the bot after this
    hangup_after_s: float = 2.0  # after the last turn, hang up if the bot stays silent
    hold_s: float = 30.0  # after the bot hands the call over: wait this long for a person
    raw_metadata: str | None = None  # sent verbatim instead of meta.to_json() (switch sim)


@dataclass
class CallReport:
    call_uuid: str
    turn_latency_s: list[float | None] = field(default_factory=list)
    bot_audio_s: float = 0.0
    bot_audio: bytearray = field(default_factory=bytearray)
    frames_received: int = 0
    play_audio_messages: int = 0
    kill_audio: int = 0
    marks_played: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    hung_up_by: str = ""  # "bot" (server closed) or "caller"
    escalated: bool = False  # the bot handed the call over (the caller waits on hold)
    error: str | None = None
    duration_s: float = 0.0
    connected: bool = False  # the websocket opened and the metadata went out
    turns_done: int = 0  # caller turns the bot got (not cut off by a lost connection)

    @property
    def dropped(self) -> bool:
        """The connection ended without a close frame from the gateway (its process died,
        the network cut it): mod_audio_fork's CONNECTION_DROPPED."""
        return self.connected and self.hung_up_by != "caller" and self.close_code in (None, 1006)

    def summary(self) -> dict[str, Any]:
        lat = [x for x in self.turn_latency_s if x is not None]
        return {
            "call_uuid": self.call_uuid,
            "turns": len(self.turn_latency_s),
            "answered_turns": len(lat),
            "latency_s": [round(x, 3) for x in lat],
            "bot_audio_s": round(self.bot_audio_s, 2),
            "kill_audio": self.kill_audio,
            "hung_up_by": self.hung_up_by,
            "escalated": self.escalated,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "error": self.error,
        }


class _FarEnd:
    """What the caller hears: a real-time playout clock over the bot's audio."""

    def __init__(self, sample_rate: int):
        self.rate = sample_rate
        self.playing_until = 0.0
        self.last_audio_at = 0.0
        self.first_audio_after: list[tuple[float, asyncio.Future]] = []
        self.pending_marks: list[tuple[float, str]] = []

    def play(self, nbytes: int) -> None:
        now = time.monotonic()
        self.playing_until = max(self.playing_until, now) + nbytes / 2 / self.rate
        self.last_audio_at = now
        for since, fut in self.first_audio_after:
            if now >= since and not fut.done():
                fut.set_result(now)

    def kill(self) -> list[str]:
        self.playing_until = time.monotonic()
        cleared = [name for _, name in self.pending_marks]
        self.pending_marks.clear()
        return cleared

    def idle(self) -> bool:
        return time.monotonic() >= self.playing_until

    def wait_first_audio(self, since: float) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.first_audio_after.append((since, fut))
        return fut


async def run_call(
    url: str,
    call: SimulatedCall,
    subprotocol: str = media_fork.SUBPROTOCOL,
    hooks: ForkHooks | None = None,
) -> CallReport:
    """Place one simulated call against `ws://host:port/media/<uuid>`."""
    report = CallReport(call.meta.call_uuid)
    started = time.monotonic()
    rate = call.meta.sample_rate
    frame_bytes = rate * FRAME_MS // 1000 * 2
    far = _FarEnd(rate)
    mic: asyncio.Queue[bytes] = asyncio.Queue()  # caller speech frames to send
    mic_done = asyncio.Event()
    try:
        async with connect(
            url, subprotocols=[subprotocol], max_size=2**22, open_timeout=10
        ) as ws:
            await ws.send(call.raw_metadata or call.meta.to_json())
            report.connected = True
            if hooks is not None:
                hooks.connected(ForkControl(ws, far, report))
            sender = asyncio.create_task(_stream(ws, mic, mic_done, frame_bytes))
            receiver = asyncio.create_task(_receive(ws, far, report, hooks))
            try:
                await _converse(call, far, mic, mic_done, report, frame_bytes, receiver, sender, hooks)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await sender
            if report.escalated and not receiver.done():
                # handed over: a caller on hold does not hang up on the bot; the bot's
                # side closes the fork and the switch keeps the call for a person
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(receiver), call.max_wait_s)
            if not receiver.done():
                report.hung_up_by = "caller"
                await ws.close(1000, "caller hung up")
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.wait_for(receiver, 5)
            report.close_code = ws.close_code if report.close_code is None else report.close_code
            report.close_reason = report.close_reason or (ws.close_reason or "")
    except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        if hooks is not None and not report.connected:
            hooks.connect_failed(type(exc).__name__)
    report.duration_s = time.monotonic() - started
    report.bot_audio_s = len(report.bot_audio) / 2 / rate
    return report


async def _stream(ws, mic: asyncio.Queue, mic_done: asyncio.Event, frame_bytes: int) -> None:
    """A live channel: one frame every 20 ms, speech when the caller talks, else silence."""
    silence = bytes(frame_bytes)
    next_at = time.monotonic()
    while True:
        try:
            frame = mic.get_nowait()
        except asyncio.QueueEmpty:
            frame = silence
            mic_done.set()
        await ws.send(frame)
        next_at += FRAME_MS / 1000
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def _receive(ws, far: _FarEnd, report: CallReport, hooks: ForkHooks | None = None) -> None:
    try:
        async for msg in ws:
            if isinstance(msg, bytes):
                report.frames_received += 1
                report.bot_audio.extend(msg)
                far.play(len(msg))
                continue
            cmd = media_fork.parse_server_text(msg)
            if cmd.type == "playAudio":
                pcm, rate = cmd.audio()
                report.play_audio_messages += 1
                if hooks is not None:  # written to a file; plays on uuid_broadcast
                    hooks.play_audio(pcm, rate)
                else:
                    report.bot_audio.extend(pcm)
                    far.play(len(pcm))
            elif cmd.type == "killAudio":
                report.kill_audio += 1
                if hooks is not None:
                    hooks.kill_audio()
                for name in far.kill():
                    await ws.send(_mark_report(name, "cleared"))
            elif cmd.type in ("transfer", "disconnect", "transcription", "error", "json"):
                report.escalated = report.escalated or cmd.type == "transfer"
                if hooks is not None:
                    hooks.server_event(cmd.type, cmd.data)
            elif cmd.type == "mark":
                far.pending_marks.append((far.playing_until, cmd.data.get("name", "")))
                asyncio.get_running_loop().call_later(
                    max(0.0, far.playing_until - time.monotonic()),
                    lambda: asyncio.ensure_future(_mark_played(ws, far, report)),
                )
    except ConnectionClosed as closed:
        report.close_code = closed.rcvd.code if closed.rcvd else None
        report.close_reason = closed.rcvd.reason if closed.rcvd else ""
    if ws.close_code is not None and report.close_code is None:
        report.close_code, report.close_reason = ws.close_code, ws.close_reason or ""
    if not report.hung_up_by:
        report.hung_up_by = "bot"


async def _mark_played(ws, far: _FarEnd, report: CallReport) -> None:
    now = time.monotonic()
    due = [(t, n) for t, n in far.pending_marks if t <= now + 0.001]
    far.pending_marks = [(t, n) for t, n in far.pending_marks if t > now + 0.001]
    for _, name in due:
        report.marks_played.append(name)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_mark_report(name, "playout"))


def _mark_report(name: str, event: str) -> str:
    return json.dumps({"type": "mark", "data": {"name": name, "event": event}})


async def _speak(pcm: bytes, frame_bytes: int, mic, mic_done, receiver, sender) -> None:
    pcm += bytes((-len(pcm)) % frame_bytes)
    mic_done.clear()
    for i in range(0, len(pcm), frame_bytes):
        mic.put_nowait(pcm[i : i + frame_bytes])
    await _until(mic_done, receiver, sender)


async def _press(keys: str, hooks: ForkHooks | None) -> None:
    """Keys reach the switch (which fires DTMF events), not the websocket."""
    for key in keys:
        if hooks is not None:
            hooks.dtmf(key)
        await asyncio.sleep(0.25)


async def _wait_bot_quiet(far: _FarEnd, pause_s: float, max_wait_s: float, receiver) -> None:
    """Wait until the bot has been silent (nothing playing) for `pause_s`."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline and not receiver.done():
        now = time.monotonic()
        if far.idle() and now - max(far.playing_until, far.last_audio_at) >= pause_s:
            return
        await asyncio.sleep(0.02)


async def _until(event: asyncio.Event, *tasks: asyncio.Task) -> None:
    """Wait for `event`, or for any of `tasks` to end (the connection dropped)."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _converse(call, far, mic, mic_done, report, frame_bytes, receiver, sender,
                    hooks: ForkHooks | None = None) -> None:
    # the bot speaks first (greeting)
    greet = far.wait_first_audio(time.monotonic())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(greet), call.max_wait_s)
    for turn in call.turns:
        if receiver.done() or report.escalated:
            break
        if turn.barge_in_after_s is None:
            await _wait_bot_quiet(far, call.pause_s, call.max_wait_s, receiver)
        else:
            await asyncio.sleep(turn.barge_in_after_s)
        if turn.silence_s:
            await asyncio.sleep(turn.silence_s)
        if receiver.done():
            break
        if turn.hangup_after_s is not None:
            pcm = turn.audio[: int(turn.hangup_after_s * call.meta.sample_rate)]
            await _speak(pcm.astype("<i2").tobytes(), frame_bytes, mic, mic_done, receiver, sender)
            report.hung_up_by = "caller"
            report.turn_latency_s.append(None)
            return
        if not len(turn.audio):  # keys only
            await _press(turn.dtmf, hooks)
            first = far.wait_first_audio(time.monotonic())
            await asyncio.wait([first, receiver], timeout=call.max_wait_s,
                               return_when=asyncio.FIRST_COMPLETED)
            report.turns_done += first.done() or not receiver.done()
            continue
        pcm = turn.audio.astype("<i2").tobytes()
        pcm += bytes((-len(pcm)) % frame_bytes)
        mic_done.clear()
        for i in range(0, len(pcm), frame_bytes):
            mic.put_nowait(pcm[i : i + frame_bytes])
        await _until(mic_done, receiver, sender)  # the last speech frame has gone out
        if receiver.done() or sender.done():
            report.turn_latency_s.append(None)  # cut off while speaking
            break
        speech_end = time.monotonic() - FRAME_MS / 1000
        if turn.dtmf:
            await _press(turn.dtmf, hooks)
        first = far.wait_first_audio(time.monotonic())
        await asyncio.wait([first, receiver], timeout=call.max_wait_s,
                           return_when=asyncio.FIRST_COMPLETED)
        report.turn_latency_s.append(first.result() - speech_end if first.done() else None)
        report.turns_done += first.done() or not receiver.done()
    if report.escalated:
        return  # on hold now: nothing more to say to the bot
    # let the last answer play out; the bot may close the call itself
    await _wait_bot_quiet(far, call.hangup_after_s, call.max_wait_s, receiver)
