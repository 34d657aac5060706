"""An asyncio stand-in for FreeSWITCH's mod_event_socket (inbound mode), for tests and
the demo: clients connect, authenticate, run ``api``/``bgapi`` and subscribe to events,
and receive the same bytes a real FreeSWITCH would send.

Verified against ``mod_event_socket.c`` (signalwire/freeswitch): the greeting
``Content-Type: auth/request\\n\\n``; replies ``Content-Type: command/reply\\nReply-Text:
<text>\\n\\n``; ``+OK accepted`` / ``-ERR invalid`` (then the connection ends); any other
command before auth gets ``-ERR command not found`` (not ``-ERR invalid``: that text is
only for a wrong password) and the connection stays open; ``exit`` is honoured even
before auth with ``+OK bye``; every ended connection gets ``Content-Type:
text/disconnect-notice\\nContent-Length: N\\n\\nDisconnected, goodbye.\\nSee you at ClueCon!
http://www.cluecon.com/\\n`` and a server shutdown ``The system is being shut down.\\n``;
``api`` answers ``Content-Type: api/response\\nContent-Length: N\\n\\n<output>``, an unknown
command ``-ERR <cmd> Command not found!\\n``, empty output ``-ERR no reply\\n``; ``bgapi``
answers ``Reply-Text: +OK Job-UUID: <u>\\nJob-UUID: <u>`` (the client's ``Job-UUID`` header
wins) and later fires ``BACKGROUND_JOB`` with ``Job-UUID``, ``Job-Command``,
``Job-Command-Arg`` (only when there are args) and the output as body, to *every*
connection subscribed to it, as FreeSWITCH does; ``event plain ...`` answers ``+OK event
listener enabled plain``, none recognised ``-ERR no keywords supplied``; names after
``CUSTOM`` are subclasses; delivery rule ALL, or the name and (not CUSTOM, or no
subclass, or a subscribed subclass); standard headers stamped on fired events
(Event-Name ... Event-Sequence, from ``switch_event_prep_for_delivery``).

Not verified / simplified: any ``[A-Za-z0-9_]`` token is accepted as an event name (the
real list lives in ``switch_event.c``); the standard headers preceding ``Job-UUID`` in
BACKGROUND_JOB (observed in the field); the ``status``/``uptime`` texts; only the plain
event format is simulated (``event xml``/``json`` get an ``-ERR``); no ``userauth``,
``filter``, ``sendmsg``, ``log``, ``myevents``. Header-size and Content-Length limits are
ours: FreeSWITCH would buffer up to 10 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

from telephony.esl import ESLMessage, ESLParser, ESLProtocolError, encode_event

__all__ = ["ApiHandler", "ESLServer"]

logger = logging.getLogger(__name__)

ApiHandler = Callable[[str, str], "str | None | Awaitable[str | None]"]
"""``(command, args) -> output``; ``None`` means "no such command". A plain function runs
in a worker thread; a coroutine function runs on the server's loop (it may take as long
as the command does in FreeSWITCH, e.g. ``originate`` until answer)."""

GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
SHUTDOWN = "The system is being shut down.\n"
MAX_WRITE_BUFFER = 8 * 1024 * 1024  # a client this far behind is dropped, not waited on
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    authed: bool = False
    events_on: bool = False
    names: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)

    def wants(self, name: str, subclass: str | None) -> bool:
        if not self.events_on:
            return False
        if "ALL" in self.names:
            return True
        return name in self.names and (
            name != "CUSTOM" or not subclass or subclass in self.subclasses
        )


def _reply(text: str, **extra: str) -> ESLMessage:
    return ESLMessage({"Content-Type": "command/reply", "Reply-Text": text, **extra})


class ESLServer:
    """FreeSWITCH's event socket, as seen from a client. Each connection is isolated:
    a client sending a bad frame loses its own connection, nobody else's."""

    def __init__(
        self,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        api_handler: ApiHandler | None = None,
    ) -> None:
        self._password = password
        self._host = host
        self._port = port
        self._api = api_handler or self._default_api
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # background jobs
        self._handlers: set[asyncio.Task[object]] = set()  # one per connection
        self._core_uuid = str(uuid.uuid4())
        self._started = time.monotonic()
        self._sequence = 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ESLServer is not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._started = time.monotonic()
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._conns):
            self._disconnect(conn, SHUTDOWN)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._handlers:  # their sockets are closed: let them see EOF and finish
            await asyncio.wait(list(self._handlers), timeout=2.0)
        await self._server.wait_closed()
        self._server = None

    @property
    def clients(self) -> int:
        return len(self._conns)

    def drop_connections(self) -> int:
        """Cut every client's TCP connection without a goodbye, as a network failure or a
        FreeSWITCH crash would. Returns how many were cut."""
        conns = list(self._conns)
        for conn in conns:
            self._conns.discard(conn)
            conn.writer.transport.abort()
        return len(conns)

    async def fire_event(self, headers: dict[str, str], body: str = "") -> None:
        """Deliver an event to every connection subscribed to its Event-Name (or its
        CUSTOM Event-Subclass, or ALL), stamped with FreeSWITCH's standard headers."""
        name = headers.get("Event-Name")
        if not name:
            raise ValueError("an event needs an Event-Name header")
        frame = encode_event(self._stamp(headers), body).serialize()
        subclass = headers.get("Event-Subclass")
        for conn in list(self._conns):
            if conn.wants(name, subclass):
                self._send(conn, frame)

    # -- per connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer)
        self._conns.add(conn)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        parser = ESLParser(commands=True)
        peer = writer.get_extra_info("peername")
        self._send(conn, b"Content-Type: auth/request\n\n")
        try:
            while conn in self._conns:
                data = await reader.read(65536)
                if not data:
                    break
                for msg in parser.feed(data):
                    if not await self._handle(conn, msg):
                        return
        except ESLProtocolError as exc:
            logger.warning(
                "closing ESL connection after a bad frame",
                extra={"peer": peer, "reason": str(exc)},
            )
        except ConnectionError:
            pass
        except Exception:  # a bug serving one client must not take the others down
            logger.exception("ESL connection failed", extra={"peer": peer})
        finally:
            self._disconnect(conn, GOODBYE)
            self._handlers.discard(handler)

    async def _handle(self, conn: _Connection, msg: ESLMessage) -> bool:
        """Answer one command; False ends the connection (after the goodbye notice)."""
        cmd = msg.command.strip("\r")
        lower = cmd.lower()
        if lower.startswith(("exit", "...")):
            self._send(conn, _reply("+OK bye").serialize())
            return False
        if not conn.authed:
            if lower.startswith("auth "):
                if secrets.compare_digest(cmd[5:].encode(), self._password.encode()):
                    conn.authed = True
                    self._send(conn, _reply("+OK accepted").serialize())
                    return True
                self._send(conn, _reply("-ERR invalid").serialize())
                return False
            self._send(conn, _reply("-ERR command not found").serialize())
            return True
        if lower.startswith("api "):
            name, _, args = cmd[4:].partition(" ")
            output = await self._run_api(name, args)
            resp = ESLMessage({"Content-Type": "api/response"}, output or "-ERR no reply\n")
            self._send(conn, resp.serialize())
        elif lower.startswith("bgapi "):
            name, _, args = cmd[6:].partition(" ")
            job = msg.header("Job-UUID") or str(uuid.uuid4())
            self._send(conn, _reply(f"+OK Job-UUID: {job}", **{"Job-UUID": job}).serialize())
            task = asyncio.create_task(self._background_job(job, name, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif lower.startswith("noevents"):
            text = "+OK no longer listening for events"
            if not conn.events_on:
                text = "-ERR not listening for events"
            conn.events_on, conn.names, conn.subclasses = False, set(), set()
            self._send(conn, _reply(text).serialize())
        elif lower.startswith("event"):
            self._send(conn, _reply(self._subscribe(conn, cmd.split(" ")[1:])).serialize())
        else:
            self._send(conn, _reply("-ERR command not found").serialize())
        return True

    def _subscribe(self, conn: _Connection, tokens: list[str]) -> str:
        if tokens and tokens[0].lower() in ("xml", "json"):
            return f"-ERR {tokens[0].lower()} events are not simulated, use plain"
        if tokens and tokens[0].lower() == "plain":
            tokens = tokens[1:]
        names, subclasses, custom = set(), set(), False
        for token in filter(None, tokens):
            if custom:
                subclasses.add(token)
            elif _EVENT_NAME.match(token):
                names.add(token.upper())
                custom = custom or token.upper() == "CUSTOM"
        if not names:
            return "-ERR no keywords supplied"
        conn.names |= names
        conn.subclasses |= subclasses
        conn.events_on = True
        return "+OK event listener enabled plain"

    async def _run_api(self, name: str, args: str) -> str:
        try:
            if inspect.iscoroutinefunction(self._api):
                output = await self._api(name, args)
            else:
                output = await asyncio.to_thread(self._api, name, args)
        except Exception:
            logger.exception("api handler failed", extra={"api_command": name})
            output = None
        return f"-ERR {name} Command not found!\n" if output is None else output

    async def _background_job(self, job: str, name: str, args: str) -> None:
        output = await self._run_api(name, args)
        headers = {"Event-Name": "BACKGROUND_JOB", "Job-UUID": job, "Job-Command": name}
        if args:
            headers["Job-Command-Arg"] = args
        await self.fire_event(headers, output or "Command returned no output!")

    # -- plumbing -------------------------------------------------------------------

    def _stamp(self, headers: dict[str, str]) -> dict[str, str]:
        """Event-Name first, then the headers FreeSWITCH adds to every fired event,
        then the caller's own (which win over the defaults)."""
        self._sequence += 1
        now_us = time.time_ns() // 1000
        host = socket.gethostname()
        standard = {
            "Event-Name": headers["Event-Name"],
            "Core-UUID": self._core_uuid,
            "FreeSWITCH-Hostname": host,
            "FreeSWITCH-Switchname": host,
            "FreeSWITCH-IPv4": "127.0.0.1",
            "FreeSWITCH-IPv6": "::1",
            "Event-Date-Local": time.strftime("%Y-%m-%d %H:%M:%S"),
            "Event-Date-GMT": formatdate(usegmt=True),
            "Event-Date-Timestamp": str(now_us),
            "Event-Calling-File": "esl_server.py",
            "Event-Calling-Function": "fire_event",
            "Event-Calling-Line-Number": "0",
            "Event-Sequence": str(self._sequence),
        }
        return {**standard, **headers}

    def _send(self, conn: _Connection, frame: bytes) -> None:
        """One write per frame, so frames never interleave; a client that does not read
        is dropped rather than allowed to grow our buffer or stall other clients."""
        if conn.writer.is_closing():
            return
        conn.writer.write(frame)
        if conn.writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            logger.warning("dropping ESL client that stopped reading")
            self._conns.discard(conn)
            conn.writer.transport.abort()

    def _disconnect(self, conn: _Connection, notice: str) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        self._send(conn, ESLMessage({"Content-Type": "text/disconnect-notice"}, notice).serialize())
        with contextlib.suppress(Exception):
            conn.writer.close()

    def _default_api(self, name: str, args: str) -> str | None:
        """Knows ``status`` and ``uptime`` (seconds); anything else is not found."""
        up = int(time.monotonic() - self._started)
        if name == "uptime":
            return f"{up}\n"
        if name == "status":
            return (
                f"UP 0 years, 0 days, 0 hours, 0 minutes, {up} seconds\n"
                "FreeSWITCH (Version 1.10.11-release CallFleet simulator) is ready\n"
                "0 session(s) since startup\n"
                "0 session(s) - peak 0, last 5min 0\n"
            )
        return None
