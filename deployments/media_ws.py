"""One media-fork websocket, from handshake to close: protocol checks at the edge, then
the call session. A bad peer gets its own connection closed with a reason; nothing it
sends can reach another call."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from configs.settings import GatewaySettings
from telephony import media_fork
from telephony.call_session import CallRecorder, CallSession, TurnModels
from telephony.media_fork import ProtocolError

log = logging.getLogger("callfleet.media")

METADATA_TIMEOUT_S = 10.0


class WebSocketOut:
    """AudioOut over a Starlette websocket; quietly drops sends after the peer left."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.closed = False

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self.ws.send_bytes, data)

    async def send_text(self, data: str) -> None:
        await self._send(self.ws.send_text, data)

    async def _send(self, fn, data) -> None:
        if self.closed:
            return
        try:
            await fn(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                await self.ws.close(code=code, reason=reason)


def offered_subprotocols(ws: WebSocket) -> list[str]:
    header = ws.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


async def serve_media_fork(
    ws: WebSocket,
    call_uuid: str,
    settings: GatewaySettings,
    models: TurnModels,
    recorder: CallRecorder,
    bots,
    actions=None,
) -> str:
    """Run one fork; returns why it ended."""
    out = WebSocketOut(ws)
    if media_fork.SUBPROTOCOL not in offered_subprotocols(ws):
        await ws.accept()
        await out.close(
            media_fork.CLOSE_PROTOCOL_ERROR, f"subprotocol {media_fork.SUBPROTOCOL} required"
        )
        return "wrong subprotocol"
    await ws.accept(subprotocol=media_fork.SUBPROTOCOL)
    try:
        meta = await _read_metadata(ws, call_uuid, settings)
    except ProtocolError as err:
        log.warning("media fork rejected: %s", err.reason)
        await out.close(err.close_code, err.reason)
        return err.reason
    except (WebSocketDisconnect, asyncio.TimeoutError):
        await out.close(media_fork.CLOSE_POLICY, "no metadata received")
        return "no metadata"

    try:
        bot = await bots.for_call(meta)
    except Exception as exc:  # no usable script at all: say so on the fork, end it
        log.error("no bot for this call: %s", exc)
        await out.close(media_fork.CLOSE_INTERNAL_ERROR, "no bot script available")
        return "no bot"
    session = CallSession(meta, models, out, recorder, settings, bot, actions)
    reason = "caller hung up"
    watcher: asyncio.Task | None = None
    try:
        await session.start()
        watcher = asyncio.create_task(_close_when_finished(session, out))
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data is not None:
                media_fork.check_audio_frame(data, meta.sample_rate, settings.max_frame_bytes)
                await session.on_audio(data)
            elif msg.get("text") is not None:
                session.on_text(msg["text"])
        if session.finished.is_set():
            reason = session.outcome.reason
    except ProtocolError as err:
        reason = f"protocol error: {err.reason}"
        log.warning("media fork closed: %s", err.reason)
        await out.close(err.close_code, err.reason)
    except (WebSocketDisconnect, RuntimeError):
        reason = session.outcome.reason if session.finished.is_set() else "connection lost"
    finally:
        if watcher is not None:
            watcher.cancel()
        await session.close(reason)
    return reason


async def _read_metadata(ws: WebSocket, call_uuid: str, settings: GatewaySettings):
    msg = await asyncio.wait_for(ws.receive(), METADATA_TIMEOUT_S)
    if msg["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(msg.get("code", 1000))
    if msg.get("bytes") is not None:
        raise ProtocolError(
            "binary frame before metadata: the first frame must be the JSON metadata text",
            media_fork.CLOSE_PROTOCOL_ERROR,
        )
    return media_fork.parse_metadata(msg.get("text") or "", call_uuid, settings.max_metadata_bytes)


async def _close_when_finished(session: CallSession, out: WebSocketOut) -> None:
    """The bot ended the call (goodbye or hand-over): close the fork once it has been heard."""
    await session.finished.wait()
    # tell FreeSWITCH what comes next: the module turns these into custom events the
    # ESL controller acts on (hand the call to a person, or hang it up)
    if session.outcome.escalation:
        await out.send_text(media_fork.transfer(session.outcome.escalation,
                                                session.outcome.transfer))
    else:
        await out.send_text(media_fork.disconnect())
    await out.close(media_fork.CLOSE_NORMAL, session.outcome.reason)
