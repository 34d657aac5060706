"""The gateway's own media port: FreeSWITCH media forks straight into the replica.

Through Serve's HTTP route every 20 ms audio frame crosses the Serve proxy and a Ray call
into the replica; at 8 calls (400 frames a second) the proxy alone used about half of one
of this machine's two cores (docs/benchmarks.md). Here the replica accepts the websocket
itself (the `websockets` library on the replica's event loop) and hands it to the same
fork runner as the HTTP route (`deployments/gateway/media_ws.py`). Several gateway replicas on one
node share the port (SO_REUSEPORT: the kernel spreads new connections over them).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from deployments.gateway.media_ws import ForkSocket, PeerGone, offered_subprotocols
from telephony import media_fork

log = logging.getLogger("callfleet.media")

ROUTE = re.compile(r"^/media/([A-Za-z0-9._:-]{1,128})$")
MAX_MESSAGE_BYTES = 1 << 20  # frame and metadata limits are checked, with reasons, by the runner
CRASH_REASON = "media fork failed on the gateway"  # the close reason when the runner raises

RunFork = Callable[[ForkSocket, str], Awaitable[object]]


class WebsocketsForkSocket:
    """ForkSocket over a `websockets` server connection (handshake already done)."""

    def __init__(self, conn: ServerConnection):
        self.conn = conn
        self.offered = offered_subprotocols(
            ",".join(conn.request.headers.get_all("Sec-WebSocket-Protocol")) if conn.request else "")

    async def accept(self, subprotocol: str | None) -> None:
        """Nothing to do: the subprotocol was chosen during the handshake."""

    async def receive(self) -> bytes | str | None:
        try:
            return await self.conn.recv()
        except ConnectionClosed:
            return None

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def send_text(self, data: str) -> None:
        await self._send(data)  # a str goes out as a text frame

    async def _send(self, data: bytes | str) -> None:
        try:
            await self.conn.send(data)
        except ConnectionClosed as exc:
            raise PeerGone(str(exc)) from None

    async def close(self, code: int, reason: str) -> None:
        await self.conn.close(code, reason[:120])  # a close reason must fit in 123 bytes


def _route(request_path: str) -> str | None:
    match = ROUTE.match(urlsplit(request_path).path)
    return match.group(1) if match else None


class MediaServer:
    """Listens on host:port and runs `run_fork(socket, call_uuid)` for each fork."""

    def __init__(self, host: str, port: int, run_fork: RunFork):
        self.host, self.port, self.run_fork = host, port, run_fork
        self.server: Server | None = None

    async def start(self) -> None:
        try:
            self.server = await serve(
                self._handle, self.host, self.port, reuse_port=True,
                select_subprotocol=self._select_subprotocol, process_request=self._check_path,
                compression=None,  # L16 audio does not deflate; it would only cost CPU
                max_size=MAX_MESSAGE_BYTES, ping_interval=20, ping_timeout=20,
            )
        except OSError as exc:
            raise RuntimeError(
                f"the media port {self.host}:{self.port} cannot be opened ({exc.strerror}): "
                "free it, or set gateway.media_port to another port (null = forks only "
                "through the Serve HTTP route)") from None
        log.info("media forks accepted on ws://%s:%d/media/<call-uuid>", self.host, self.port)

    @staticmethod
    def _select_subprotocol(conn: ServerConnection, offered) -> str | None:
        # no match is not a handshake failure here: the runner closes the socket with
        # the protocol error and its reason, as the HTTP route does
        return media_fork.SUBPROTOCOL if media_fork.SUBPROTOCOL in offered else None

    @staticmethod
    def _check_path(conn: ServerConnection, request):
        if _route(request.path) is None:
            return conn.respond(404, "media forks connect to /media/<call-uuid>\n")
        return None

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on (differs from `port` when that is 0)."""
        if self.server is None or not self.server.sockets:
            return None
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, conn: ServerConnection) -> None:
        call_uuid = _route(conn.request.path)
        try:
            await self.run_fork(WebsocketsForkSocket(conn), call_uuid)
        except Exception as exc:  # one broken call must not take the listener down
            # the message names the call and the error's type only: an exception's own
            # text may quote what the caller said (the traceback still has it, for fixing)
            log.exception("media fork %s failed (%s); closing it with %d", call_uuid,
                          type(exc).__name__, media_fork.CLOSE_INTERNAL_ERROR)
            # not 1000: FreeSWITCH would take the fork's end for a normal hang-up
            await conn.close(media_fork.CLOSE_INTERNAL_ERROR, CRASH_REASON)

    async def drain(self, timeout_s: float) -> None:
        """Stop taking new forks; let the calls in progress finish (at most timeout_s)."""
        if self.server is None:
            return
        self.server.close(close_connections=False)
        try:
            await asyncio.wait_for(self.server.wait_closed(), timeout_s)
        except asyncio.TimeoutError:
            log.warning("%d call(s) still on the media port after %.0f s: closing them",
                        len(self.server.connections), timeout_s)
            self.server.close(close_connections=True)
