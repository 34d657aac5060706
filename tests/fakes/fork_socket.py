"""A media-fork websocket held in the test's hand: the test plays mod_audio_fork (frames in,
hang up, drop the line) and reads what the gateway sent back and how it closed.

It is a `ForkSocket` (the port `serve_media_fork` runs over), so the fork runner under
test is the real one, without a server, a network or Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from deployments.gateway.media_ws import ForkSocket, PeerGone
from telephony.media_fork import SUBPROTOCOL, ServerCommand, parse_server_text

__all__ = ["FakeForkSocket"]


class FakeForkSocket(ForkSocket):
    """One fork from the module's side.

    `offered` are the subprotocols the module asked for; `accepted` the one the gateway
    chose (one entry per accept); `sent` every frame the gateway sent, in order; `closed`
    the (code, reason) it closed with, or None while open.
    """

    def __init__(self, offered: Iterable[str] = (SUBPROTOCOL,)):
        self.offered = list(offered)
        self.accepted: list[str | None] = []
        self.sent: list[bytes | str] = []
        self.closed: tuple[int, str] | None = None
        self._inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self._line_down = False

    # ---- the module's side (what the test does) --------------------------------------

    def feed(self, *frames: bytes | str) -> None:
        """Frames the module sends: str is a text frame, bytes a binary one."""
        for frame in frames:
            self._inbox.put_nowait(frame)

    def hang_up(self) -> None:
        """The module closes the websocket (the caller hung up)."""
        self._inbox.put_nowait(None)

    def drop(self) -> None:
        """The connection is lost: nothing more arrives and every send fails."""
        self._line_down = True
        self._inbox.put_nowait(None)

    # ---- what the gateway sent ---------------------------------------------------------

    @property
    def audio(self) -> bytes:
        """The bot audio sent as binary L16 frames, joined."""
        return b"".join(f for f in self.sent if isinstance(f, bytes))

    def commands(self) -> list[ServerCommand]:
        """The text frames sent (playAudio, mark, killAudio, transfer, disconnect…)."""
        return [parse_server_text(f) for f in self.sent if isinstance(f, str)]

    def command_types(self) -> list[str]:
        return [c.type for c in self.commands()]

    # ---- ForkSocket ----------------------------------------------------------------------

    async def accept(self, subprotocol: str | None) -> None:
        self.accepted.append(subprotocol)

    async def receive(self) -> bytes | str | None:
        if self.closed is not None or self._line_down:
            return None
        return await self._inbox.get()

    async def send_bytes(self, data: bytes) -> None:
        self._send(data)

    async def send_text(self, data: str) -> None:
        self._send(data)

    def _send(self, data: bytes | str) -> None:
        if self.closed is not None or self._line_down:
            raise PeerGone("the fork is closed")
        self.sent.append(data)

    async def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self._inbox.put_nowait(None)  # a receive waiting on the socket returns
