"""One media-fork websocket, from handshake to close: protocol checks at the edge, the
admission (room on the replica, the fork's credential, the call live and not already
forked: deployments/gateway/fork_admission.py), then the call session with the call's
metadata as CallFleet knows it. A bad peer gets its own connection closed with a reason;
nothing it sends can reach another call. Caller audio arriving faster than real time
(`gateway.limits.realtime_factor` over `realtime_window_s`) is not a live call: closed.

The same code runs whichever server accepted the socket: Serve's HTTP route (Starlette,
through the Serve proxy) or the gateway's own media port (`deployments/gateway/media_server.py`,
the `websockets` library, no proxy hop). Each gives it a `ForkSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from starlette.websockets import WebSocketDisconnect, WebSocketState

from configs.settings import GatewaySettings
from deployments.gateway.fork_admission import Admitted, ForkAdmission, ForkRefused
from telephony import media_fork
from telephony.call_limits import RealTimeMeter
from telephony.call_session import CallRecorder, CallSession, TurnModels
from telephony.media_fork import ProtocolError
from telephony.metrics import ERRORS, NO_METRICS, Metrics

log = logging.getLogger("callfleet.media")

METADATA_TIMEOUT_S = 10.0


class PeerGone(ConnectionError):
    """The other end of the fork went away."""


class ForkSocket(Protocol):
    """What the fork runner needs from a server-side websocket."""

    offered: list[str]  # subprotocols the peer offered

    async def accept(self, subprotocol: str | None) -> None: ...

    async def receive(self) -> bytes | str | None:
        """The next frame, or None once the peer has closed."""

    async def send_bytes(self, data: bytes) -> None: ...  # raise PeerGone when closed

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


def offered_subprotocols(header: str) -> list[str]:
    """The subprotocols in a Sec-WebSocket-Protocol header value."""
    return [p.strip() for p in header.split(",") if p.strip()]


class StarletteForkSocket:
    """A fork that came in through Serve's HTTP route."""

    def __init__(self, ws):

        self.ws = ws
        self._gone = (WebSocketDisconnect, RuntimeError, OSError)
        self.offered = offered_subprotocols(ws.headers.get("sec-websocket-protocol", ""))

    async def accept(self, subprotocol: str | None) -> None:
        await self.ws.accept(subprotocol=subprotocol)

    async def receive(self) -> bytes | str | None:
        try:
            msg = await self.ws.receive()
        except self._gone:
            return None
        if msg["type"] == "websocket.disconnect":
            return None
        if msg.get("bytes") is not None:
            return msg["bytes"]
        return msg.get("text") or ""

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self.ws.send_bytes, data)

    async def send_text(self, data: str) -> None:
        await self._send(self.ws.send_text, data)

    async def _send(self, fn, data) -> None:
        try:
            await fn(data)
        except self._gone as exc:
            raise PeerGone(str(exc)) from None

    async def close(self, code: int, reason: str) -> None:

        with contextlib.suppress(*self._gone):
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                await self.ws.close(code=code, reason=reason)


class WebSocketOut:
    """AudioOut over a fork socket; quietly drops sends after the peer left."""

    def __init__(self, sock: ForkSocket):
        self.sock = sock
        self.closed = False

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self.sock.send_bytes, data)

    async def send_text(self, data: str) -> None:
        await self._send(self.sock.send_text, data)

    async def _send(self, fn, data) -> None:
        if self.closed:
            return
        try:
            await fn(data)
        except (PeerGone, OSError):
            self.closed = True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(PeerGone, OSError):
            await self.sock.close(code, reason)


async def serve_media_fork(
    sock: ForkSocket,
    call_uuid: str,
    settings: GatewaySettings,
    models: TurnModels,
    recorder: CallRecorder,
    bots,
    actions=None,
    *,
    admission: ForkAdmission,
    metrics: Metrics = NO_METRICS,
) -> str:
    """Run one fork; returns why it ended. Forks refused or closed for breaking the
    protocol are counted in `metrics` (``callfleet_errors{kind}``)."""
    out = WebSocketOut(sock)
    if media_fork.SUBPROTOCOL not in sock.offered:
        await sock.accept(None)
        await out.close(
            media_fork.CLOSE_PROTOCOL_ERROR, f"subprotocol {media_fork.SUBPROTOCOL} required"
        )
        metrics.inc(ERRORS, kind="fork_protocol")
        return "wrong subprotocol"
    await sock.accept(media_fork.SUBPROTOCOL)
    try:
        with admission.slot():
            return await _admit_and_run(sock, out, call_uuid, settings, models, recorder,
                                        bots, actions, admission, metrics)
    except ForkRefused as refused:  # the replica is full
        metrics.inc(ERRORS, kind="fork_refused")
        log.warning("media fork %s refused: %s", call_uuid, refused.reason)
        await out.close(refused.code, refused.reason)
        return refused.reason


async def _admit_and_run(sock: ForkSocket, out: WebSocketOut, call_uuid: str,
                         settings: GatewaySettings, models: TurnModels, recorder: CallRecorder,
                         bots, actions, admission: ForkAdmission, metrics: Metrics) -> str:
    try:
        fork = await _read_metadata(sock, call_uuid, settings)
    except ProtocolError as err:
        metrics.inc(ERRORS, kind="fork_protocol")
        log.warning("media fork rejected: %s", err.reason)
        await out.close(err.close_code, err.reason)
        return err.reason
    except (PeerGone, asyncio.TimeoutError):
        await out.close(media_fork.CLOSE_POLICY, "no metadata received")
        return "no metadata"
    try:
        admitted = await admission.admit(fork)
    except ForkRefused as refused:
        metrics.inc(ERRORS, kind="fork_refused")
        log.warning("media fork %s refused: %s", call_uuid, refused.reason)
        await out.close(refused.code, refused.reason)
        return refused.reason
    keeper = asyncio.create_task(admission.hold(admitted))
    try:
        return await _run_call(sock, out, admitted, settings, models, recorder, bots, actions,
                               metrics)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await admission.release(admitted)


async def _run_call(sock: ForkSocket, out: WebSocketOut, admitted: Admitted,
                    settings: GatewaySettings, models: TurnModels, recorder: CallRecorder,
                    bots, actions, metrics: Metrics) -> str:
    meta = admitted.meta
    try:
        bot = await bots.for_call(meta)
    except Exception as exc:  # no usable script at all: say so on the fork, end it
        metrics.inc(ERRORS, kind="no_bot")
        log.error("no bot for this call: %s", exc)
        await out.close(media_fork.CLOSE_INTERNAL_ERROR, "no bot script available")
        return "no bot"
    session = CallSession(meta, models, out, recorder, settings, bot, actions,
                          elapsed_s=admitted.elapsed_s, metrics=metrics)
    limits = settings.limits
    pace = RealTimeMeter(meta.sample_rate, limits.realtime_factor, limits.realtime_window_s)
    reason = "caller hung up"
    watcher: asyncio.Task | None = None
    try:
        await session.start()
        watcher = asyncio.create_task(_close_when_finished(session, out))
        while (data := await sock.receive()) is not None:
            if isinstance(data, bytes):
                media_fork.check_audio_frame(data, meta.sample_rate, settings.max_frame_bytes)
                if pace.add(len(data) // 2):
                    raise ProtocolError(
                        f"audio arrives faster than real time (over {limits.realtime_factor:g}x "
                        f"for {limits.realtime_window_s:g} s)", media_fork.CLOSE_POLICY)
                await session.on_audio(data)
            else:
                session.on_text(data)
        if session.finished.is_set():
            reason = session.outcome.reason
    except ProtocolError as err:
        metrics.inc(ERRORS, kind="fork_protocol")
        reason = f"protocol error: {err.reason}"
        log.warning("media fork closed: %s", err.reason)
        await out.close(err.close_code, err.reason)
    except (PeerGone, RuntimeError):
        reason = session.outcome.reason if session.finished.is_set() else "connection lost"
    finally:
        if watcher is not None:
            watcher.cancel()
        await session.close(reason)
    return reason


async def _read_metadata(sock: ForkSocket, call_uuid: str, settings: GatewaySettings):
    data = await asyncio.wait_for(sock.receive(), METADATA_TIMEOUT_S)
    if data is None:
        raise PeerGone("closed before metadata")
    if isinstance(data, bytes):
        raise ProtocolError(
            "binary frame before metadata: the first frame must be the JSON metadata text",
            media_fork.CLOSE_PROTOCOL_ERROR,
        )
    return media_fork.parse_metadata(data, call_uuid, settings.max_metadata_bytes)


async def _close_when_finished(session: CallSession, out: WebSocketOut) -> None:
    """The bot ended the call (goodbye or hand-over): close the fork once it has been heard."""
    await session.finished.wait()
    # tell FreeSWITCH what comes next: the module turns these into custom events the
    # ESL controller acts on (hand the call to a person, or hang it up)
    if session.outcome.handover is not None:
        await out.send_text(media_fork.transfer(session.outcome.handover))
    else:
        await out.send_text(media_fork.disconnect())
    await out.close(media_fork.CLOSE_NORMAL, session.outcome.reason)
