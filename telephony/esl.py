"""FreeSWITCH Event Socket (ESL, inbound mode) wire format, shared by the controller and
the simulator so both sides frame bytes identically.

A frame is header lines ``Name: value\\n``, a blank line, then exactly ``Content-Length``
bytes of body when that header is present. Frames from a client start with a command
line (``api status``) instead of a header. An event frame (``text/event-plain``) carries
a second frame in its body: URL-encoded header lines, optionally its own
``Content-Length`` and body.

Verified against FreeSWITCH source (signalwire/freeswitch ``mod_event_socket.c``,
``switch_event.c`` ``switch_event_serialize``, ``switch_utils.h``):

- outer event frame is ``Content-Length: N\\nContent-Type: text/event-plain\\n\\n``
  (Content-Length first), so :func:`encode_event` emits that order;
- event body: ``Name: <url-encoded value>\\n`` per header, an empty value written as
  ``_undef_``, then ``Content-Length: N\\n\\n<body>`` when the body is non-empty, else a
  lone ``\\n``;
- the characters FreeSWITCH escapes are ``SWITCH_URL_UNSAFE`` = ``\\r\\n #%&+:;<=>?@[\\]^`{|}"``
  (uppercase hex). We use :func:`urllib.parse.quote` with everything else printable
  marked safe, which reproduces FreeSWITCH's bytes; plain ``quote(safe="")`` would also
  escape ``/ , ! * ( ) $ '`` etc., which decodes the same but is not byte-identical;
- the server skips leading CR/LF before a frame, strips ``\\r`` at line ends, skips
  spaces after the colon, and ends a header block at two ``\\n`` (``\\r`` in between
  ignored).

Not verified (could not read ``switch_url_encode_opt``'s body): that control characters
and non-ASCII bytes are escaped too (we escape them, as UTF-8), and whether an existing
``%XX`` is left alone (we always escape ``%``, so values round-trip exactly).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

__all__ = [
    "MAX_CONTENT_LENGTH",
    "MAX_HEADER_BYTES",
    "ESLCommandError",
    "ESLMessage",
    "ESLParser",
    "ESLProtocolError",
    "api",
    "auth",
    "bgapi",
    "check_command",
    "encode_event",
    "event_plain",
    "exit",
    "parse_event",
]

MAX_HEADER_BYTES = 64 * 1024
MAX_CONTENT_LENGTH = 8 * 1024 * 1024

# SWITCH_URL_UNSAFE from switch_utils.h; every other printable ASCII byte stays literal.
_FS_UNSAFE = "\r\n #%&+:;<=>?@[\\]^`{|}\""
_FS_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in _FS_UNSAFE)
_HEADER_END = re.compile(rb"\n\r*\n")
# C0 controls and DEL: a LF ends the command line (what follows becomes a header, or after
# a blank line a second command), a CR is stripped or kept depending on the reader, a NUL
# cuts the C string FreeSWITCH hands to the api, a TAB or ESC is never legitimate here
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VERB = re.compile(r"^[A-Za-z_]{1,32}$")


class ESLProtocolError(ValueError):
    """A peer sent bytes that are not a valid ESL frame; close that connection."""


class ESLCommandError(ValueError):
    """A command CallFleet was about to send cannot be one ESL command line (it holds a
    control character); nothing was sent. The message never repeats the command's
    arguments, which may be personal data."""


def check_command(line: str, headers: dict[str, str] | None = None) -> str:
    """`line` (and any header name and value) as one ESL command, or ESLCommandError.

    Every command CallFleet sends passes here: a CR, LF or other control character in a
    value would end the command line and let the rest of the value run as a second
    command (``api system …``, an ``originate`` for toll fraud)."""
    words = (line or "").split(" ", 2)
    shown = words[0] if _VERB.match(words[0]) else "an ESL command"
    if shown in ("api", "bgapi") and len(words) > 1 and _VERB.match(words[1]):
        shown += " " + words[1]  # the api command's name, never its arguments
    if not line or _CONTROL.search(line):
        raise ESLCommandError(f"{shown} refused: a control character (CR, LF, NUL, ...) or "
                              "an empty line cannot be sent to FreeSWITCH; nothing was sent")
    for name, value in (headers or {}).items():
        if not name or ":" in name or _CONTROL.search(name) or _CONTROL.search(str(value)):
            raise ESLCommandError(f"{shown} refused: a header of it holds a colon in its "
                                  "name or a control character; nothing was sent")
    return line


def _header(headers: dict[str, str], name: str) -> str | None:
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


@dataclass
class ESLMessage:
    """One ESL frame. ``command`` is the first line of a client frame (``api status``);
    header names keep their case and order, lookups via :meth:`header` ignore case."""

    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    command: str = ""

    @property
    def content_type(self) -> str | None:
        return self.header("Content-Type")

    def header(self, name: str, default: str | None = None) -> str | None:
        value = _header(self.headers, name)
        return default if value is None else value

    def serialize(self) -> bytes:
        """Frame bytes. ``Content-Length`` is set to the body's UTF-8 length: kept in
        place when present, appended last otherwise (as FreeSWITCH orders its replies)."""
        body = self.body.encode("utf-8")
        headers = dict(self.headers)
        key = next((k for k in headers if k.lower() == "content-length"), None)
        if body or key is not None:
            headers[key or "Content-Length"] = str(len(body))
        if "\n" in self.command:
            raise ValueError("command line must not contain a newline")
        lines = [self.command] if self.command else []
        for name, value in headers.items():
            if "\n" in name or ":" in name or "\n" in str(value):
                raise ValueError(f"header {name!r} cannot be framed: newline or colon")
            lines.append(f"{name}: {value}")
        return ("".join(f"{line}\n" for line in lines) + "\n").encode("utf-8") + body


class ESLParser:
    """Incremental frame parser: feed it whatever the socket returned, get complete
    frames back. ``commands=True`` parses client->server frames (first line is the
    command). After an :class:`ESLProtocolError` the stream is unusable."""

    def __init__(self, *, commands: bool = False) -> None:
        self._commands = commands
        self._buf = bytearray()
        self._pending: tuple[ESLMessage, int] | None = None
        self._scanned = 0  # no header end starts before this offset of _buf

    def feed(self, data: bytes) -> list[ESLMessage]:
        self._buf += data
        out: list[ESLMessage] = []
        while True:
            if self._pending is not None:
                msg, length = self._pending
                if len(self._buf) < length:
                    break
                msg.body = bytes(self._buf[:length]).decode("utf-8", errors="replace")
                del self._buf[:length]
                self._pending = None
                out.append(msg)
                continue
            start = 0
            while start < len(self._buf) and self._buf[start] in b"\r\n":
                start += 1
            if start:
                del self._buf[:start]
                self._scanned = max(0, self._scanned - start)
            # resume where the last search gave up, so a header block arriving a byte at
            # a time costs linear, not quadratic, time
            match = _HEADER_END.search(self._buf, self._scanned)
            if match is None:
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise ESLProtocolError(
                        f"header block exceeds {MAX_HEADER_BYTES} bytes without a blank line"
                    )
                # only the last LF (followed by nothing but CRs) can still start the end
                last_lf = self._buf.rfind(b"\n", self._scanned)
                self._scanned = len(self._buf) if last_lf < 0 else last_lf
                break
            self._scanned = 0
            if match.start() > MAX_HEADER_BYTES:
                raise ESLProtocolError(f"header block exceeds {MAX_HEADER_BYTES} bytes")
            block = bytes(self._buf[: match.start()]).decode("utf-8", errors="replace")
            del self._buf[: match.end()]
            msg = self._parse_block(block)
            length = _content_length(msg.headers)
            if length:
                self._pending = (msg, length)
            else:
                out.append(msg)
        return out

    def _parse_block(self, block: str) -> ESLMessage:
        lines = [line.rstrip("\r") for line in block.split("\n")]
        msg = ESLMessage()
        if self._commands:
            msg.command = lines.pop(0)
        for number, line in enumerate(lines, 2 if self._commands else 1):  # of the block
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name:  # the line itself is not shown: it may be personal data
                raise ESLProtocolError(f"malformed header line {number}: no 'Name:' before "
                                       "its value")
            msg.headers[name] = value.lstrip(" ")
        return msg


_DECIMAL = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() takes '²' and '٣'


def _content_length(headers: dict[str, str]) -> int:
    raw = _header(headers, "Content-Length")
    if raw is None:
        return 0
    if not _DECIMAL.fullmatch(raw.strip()):
        raise ESLProtocolError("Content-Length is not a non-negative integer of at most "
                               "12 digits")
    length = int(raw)
    if length > MAX_CONTENT_LENGTH:
        raise ESLProtocolError(f"Content-Length {length} exceeds {MAX_CONTENT_LENGTH} bytes")
    return length


def _fs_quote(value: str) -> str:
    return quote(value, safe=_FS_SAFE) if value else "_undef_"


def encode_event(headers: dict[str, str], body: str = "") -> ESLMessage:
    """Build a ``text/event-plain`` frame exactly as mod_event_socket writes one."""
    lines = []
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n"):
            raise ValueError(f"event header name {name!r} cannot be framed")
        lines.append(f"{name}: {_fs_quote(str(value))}\n")
    inner = "".join(lines)
    if body:
        inner += f"Content-Length: {len(body.encode('utf-8'))}\n\n{body}"
    else:
        inner += "\n"
    length = str(len(inner.encode("utf-8")))
    return ESLMessage({"Content-Length": length, "Content-Type": "text/event-plain"}, inner)


def parse_event(msg: ESLMessage) -> dict[str, str]:
    """URL-decoded headers of a ``text/event-plain`` frame; an inner body, when the
    event carries its own Content-Length, is returned under ``_body`` (FreeSWITCH's
    JSON event key). ``_undef_`` values are left as FreeSWITCH wrote them."""
    if msg.content_type != "text/event-plain":
        raise ESLProtocolError(f"not a text/event-plain frame: {msg.content_type!r}")
    head, sep, rest = msg.body.partition("\n\n")
    event: dict[str, str] = {}
    for number, line in enumerate(head.split("\n"), 1):
        line = line.rstrip("\r")
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:  # the line itself is not shown: it may be personal data
            raise ESLProtocolError(f"malformed event header line {number}: no 'Name:' "
                                   "before its value")
        event[name] = unquote(value.lstrip(" "))
    length = _content_length(event)
    if length:
        raw = rest.encode("utf-8", "surrogatepass")
        if len(raw) < length:
            raise ESLProtocolError(f"event body shorter than its Content-Length {length}")
        event["_body"] = raw[:length].decode("utf-8", errors="replace")
    return event


def _command(line: str, headers: dict[str, str] | None = None) -> bytes:
    return ESLMessage(headers or {}, command=check_command(line, headers)).serialize()


def auth(password: str) -> bytes:
    return _command(f"auth {password}")


def api(cmd: str) -> bytes:
    return _command(f"api {cmd}")


def bgapi(cmd: str, job_uuid: str | None = None) -> bytes:
    return _command(f"bgapi {cmd}", {"Job-UUID": job_uuid} if job_uuid else None)


def event_plain(names: Iterable[str] | str) -> bytes:
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("event_plain needs at least one event name")
    return _command("event plain " + " ".join(names))


def exit() -> bytes:
    return _command("exit")
