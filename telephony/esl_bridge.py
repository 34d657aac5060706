"""greenswitch, bridged to asyncio.

greenswitch speaks ESL on gevent: its socket reads happen only while the gevent hub of
the thread that made the connection runs, and `send()`/`connect()` never time out. So a
`GreenswitchLink` gives the connection a thread of its own that runs the hub; asyncio
code hands it commands through a thread-safe queue and awaits the replies as futures;
events come back to the event loop with `call_soon_threadsafe`. Every wait has a
timeout. A command that times out leaves greenswitch's reply queue out of step (the
late reply would answer the next command), so the link drops that connection and
reconnects rather than carry on with it.

The link reconnects with exponential backoff for as long as it runs; the owner learns of
each (re)connection through `on_connected` (to subscribe-and-resync) and of each loss
through `on_disconnected`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from telephony.esl import check_command

__all__ = ["ESLLinkError", "GreenswitchLink", "LinkSettings"]

logger = logging.getLogger(__name__)


class ESLLinkError(ConnectionError):
    """The ESL connection is down, or a command on it timed out or was refused."""


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    password: str
    events: tuple[str, ...]
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0


EventSink = Callable[[dict[str, str], str], None]


def event_body(headers: dict[str, str]) -> tuple[dict[str, str], str]:
    """Split the body from an event parsed by greenswitch, which folds an event's body
    into the value of the inner ``Content-Length`` header (``"12\\n\\n+OK abc"``)."""
    length = headers.get("Content-Length")
    if length is None or "\n" not in length:
        return headers, ""
    clean = dict(headers)
    _count, _, body = length.partition("\n")
    clean.pop("Content-Length")
    return clean, body.lstrip("\n")


class GreenswitchLink:
    """One ESL connection run by greenswitch in its own thread; awaitable from asyncio."""

    def __init__(
        self,
        settings: LinkSettings,
        on_event: EventSink,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[str], None] | None = None,
    ) -> None:
        # greenswitch sends these itself on connect: checked here, once, like every command
        check_command(f"auth {settings.password}")
        check_command("event plain " + " ".join(settings.events))
        self.settings = settings
        self._on_event = on_event
        self._on_connected = on_connected or (lambda: None)
        self._on_disconnected = on_disconnected or (lambda reason: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.Queue[tuple[str, concurrent.futures.Future] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake: Callable[[], None] = lambda: None
        self.connected = False
        self.connects = 0

    # -- asyncio side ---------------------------------------------------------------

    def start(self) -> None:
        """Start the link thread (connecting in the background); call from the loop."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="esl-link", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._commands.put(None)
        self._wake()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.settings.command_timeout_s + 5)
            self._thread = None

    async def command(self, line: str, timeout_s: float | None = None,
                      headers: dict[str, str] | None = None) -> str:
        """Send one ESL command (``api …``, ``bgapi …``, ``event plain …``), with optional
        headers (``Job-UUID``), and return the reply text: the api output, or the
        command/reply ``Reply-Text``.

        This is the one place commands leave CallFleet: a line or header holding a CR, LF
        or other control character raises `telephony.esl.ESLCommandError` and nothing is
        sent."""
        check_command(line, headers)
        if not self.connected:
            raise ESLLinkError("ESL is not connected")
        frame = line + "".join(f"\n{name}: {value}" for name, value in (headers or {}).items())
        fut: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._commands.put((frame, fut))
        self._wake()
        wait = (timeout_s or self.settings.command_timeout_s) + 1.0
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), wait)
        except asyncio.TimeoutError:
            raise ESLLinkError("ESL command timed out") from None

    # -- gevent thread --------------------------------------------------------------

    def _run(self) -> None:
        import gevent  # heavy: loads gevent
        from gevent.event import Event  # heavy: loads gevent

        wake_event = Event()
        watcher = gevent.get_hub().loop.async_()
        watcher.start(wake_event.set)
        self._wake = watcher.send  # thread-safe: wakes this thread's hub
        backoff = self.settings.backoff_initial_s
        try:
            while not self._stopping.is_set():
                before = self.connects
                reason = self._session(wake_event)
                if self._stopping.is_set():
                    break
                if self.connects > before:  # it had been up: a drop, not a refusal
                    backoff = self.settings.backoff_initial_s
                logger.warning("ESL link down (%s); reconnecting in %.1f s", reason, backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
        finally:
            watcher.stop()
            self._fail_pending("ESL link stopped")

    def _session(self, wake_event) -> str:
        """Connect, authenticate, subscribe, then run commands until the link drops.
        Returns why it ended."""
        import gevent  # heavy: loads gevent
        from greenswitch.esl import (  # heavy: loads greenswitch
            InboundESL,
            NotConnectedError,
        )

        s = self.settings
        conn = InboundESL(s.host, s.port, s.password, timeout=s.connect_timeout_s)
        try:
            with gevent.Timeout(s.connect_timeout_s, NotConnectedError("connect timed out")):
                conn.connect()
            conn.register_handle("*", self._forward)
            conn.register_handle("DISCONNECT", lambda ev: wake_event.set())
            with gevent.Timeout(s.command_timeout_s, NotConnectedError("subscribe timed out")):
                reply = conn.send("event plain " + " ".join(s.events))
            if not reply.headers.get("Reply-Text", "").startswith("+OK"):
                raise NotConnectedError("event subscription refused")
        except (OSError, NotConnectedError, ValueError) as exc:
            _close(conn)
            return f"connect failed: {type(exc).__name__}: {exc}"
        self.connected = True
        self.connects += 1
        self._call_in_loop(self._on_connected)
        reason = "lost"
        try:
            while not self._stopping.is_set() and conn.connected:
                try:
                    item = self._commands.get_nowait()
                except queue.Empty:
                    wake_event.clear()
                    wake_event.wait(timeout=0.5)
                    continue
                if item is None:
                    continue
                line, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    with gevent.Timeout(s.command_timeout_s, ESLLinkError("ESL command timed out")):
                        reply = conn.send(line)
                except ESLLinkError as exc:
                    fut.set_exception(exc)
                    reason = "command timed out"
                    break
                except (OSError, NotConnectedError) as exc:
                    fut.set_exception(ESLLinkError(f"ESL connection lost: {type(exc).__name__}"))
                    break
                text = getattr(reply, "data", None)
                if text is None:
                    text = reply.headers.get("Reply-Text", "")
                fut.set_result(text)
        finally:
            self.connected = False
            _close(conn)
            self._fail_pending("ESL connection lost")
            self._call_in_loop(self._on_disconnected, reason)
        return reason

    def _forward(self, event) -> None:
        if event.headers.get("Content-Type") == "text/disconnect-notice":
            return
        headers, body = event_body(event.headers)
        self._call_in_loop(self._on_event, headers, body)

    def _call_in_loop(self, fn: Callable, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop closed under us during shutdown
                pass

    def _fail_pending(self, why: str) -> None:
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item[1].done():
                item[1].set_exception(ESLLinkError(why))


def _close(conn) -> None:
    """Stop greenswitch's greenlets and close its socket without waiting on the peer."""
    conn._run = False
    conn.connected = False
    for greenlet in (conn._receive_events_greenlet, conn._process_events_greenlet):
        if greenlet is not None:
            greenlet.kill(block=True, timeout=1.0)
    for closer in (getattr(conn, "sock", None), getattr(conn, "sock_file", None)):
        if closer is not None:
            try:
                closer.close()
            except (OSError, RuntimeError):  # RuntimeError: a reader still inside readline
                pass
