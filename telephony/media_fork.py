"""The FreeSWITCH media-fork websocket protocol (drachtio `mod_audio_fork`, with the
jambonz fork's bidirectional extensions), as a serializer: parse what the module sends,
build what we send back. No I/O here; the gateway and the simulator both use it, so the
two ends cannot drift apart.

Wire summary (see docs/media-fork.md for every field):

* subprotocol ``audio.drachtio.org``;
* first frame: one **text** frame with the metadata JSON (at most 8192 bytes);
* then **binary** frames of 16-bit little-endian mono PCM (L16), 20 ms each;
* server → module text frames: ``playAudio``, ``killAudio``, ``mark``, ``clearMarks``,
  ``transcription``, ``disconnect``, ``transfer`` (with the `Handover` as its ``data``);
  binary L16 frames (jambonz bidirectional mode);
* module → server text frames after the metadata: ``mark`` playout/cleared reports.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from telephony.call_data import DEFAULT_HANDOVER_REASON, Handover, HandoverTurn
from training.models.outputs import (
    emotion_from_json,
    emotion_to_json,
    intent_from_json,
    intent_to_json,
)

SUBPROTOCOL = "audio.drachtio.org"
MAX_METADATA_BYTES = 8192
# bounds on JSON from a peer, so parsing it stays cheap in time and memory whatever comes
MAX_TEXT_FRAME_BYTES = 8192  # module -> server text frames after the metadata (marks, DTMF)
MAX_SERVER_TEXT_BYTES = 4 * 1024 * 1024  # server -> module (a playAudio sentence in base64)
MAX_TRANSFER_BYTES = 1024 * 1024  # a transfer event's data (the handover, every turn)
MAX_JSON_DEPTH = 32  # nested objects/arrays
MAX_JSON_NUMBER_CHARS = 40  # characters of one number literal
SAMPLE_RATES = (8000, 16000)
PLAYBACK_MODES = ("binary", "playAudio")

# RFC 6455 close codes we use
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

_CALL_UUID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # fullmatch: no trailing newline


class ProtocolError(Exception):
    """A peer broke the media-fork protocol; `close_code` and `reason` go on the wire.

    The reason must never carry personal data (numbers, transcripts): it is logged.
    """

    def __init__(self, reason: str, close_code: int = CLOSE_PROTOCOL_ERROR):
        super().__init__(reason)
        self.reason = reason[:120]  # a close reason is at most 123 bytes
        self.close_code = close_code


class _BadJson(ValueError):
    """Raised from inside the JSON decoder's hooks; becomes a ProtocolError."""


_JSON_SPECIAL = re.compile(r'[\[\]{}"]')
# the rest of a string after its opening quote; matched only where a string starts, and
# its parts cannot overlap, so a string that never ends costs one linear scan
_JSON_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _json_depth_ok(text: str) -> bool:
    """Whether no object/array nests deeper than MAX_JSON_DEPTH (brackets inside strings
    do not count), checked in one pass before decoding so the decoder never recurses
    deeply (RecursionError; and a deep structure would recurse again wherever it is later
    copied or serialised). Malformed text passes here and fails in the decoder."""
    depth, position = 0, 0
    while (found := _JSON_SPECIAL.search(text, position)) is not None:
        position = found.end()
        char = found.group()
        if char == '"':
            rest = _JSON_STRING_REST.match(text, position)
            if rest is None:
                return True
            position = rest.end()
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return False
        else:
            depth -= 1
    return True


def _json_number(kind: type) -> Any:
    def convert(literal: str) -> Any:
        # Python refuses ints over 4300 digits with a ValueError, after quadratic work
        if len(literal) > MAX_JSON_NUMBER_CHARS:
            raise _BadJson(f"a number longer than {MAX_JSON_NUMBER_CHARS} characters")
        value = kind(literal)
        if not math.isfinite(value):
            raise _BadJson("a number out of range")
        return value
    return convert


def _json_constant(name: str) -> Any:
    raise _BadJson(f"{name} is not allowed")


_DECODER = json.JSONDecoder(parse_int=_json_number(int), parse_float=_json_number(float),
                            parse_constant=_json_constant)


def _peer_json_object(data: str | bytes, what: str, max_bytes: int,
                      decoder_detail: bool = False) -> dict[str, Any]:
    """A JSON object a peer sent, decoded within bounds: at most `max_bytes` of UTF-8,
    MAX_JSON_DEPTH levels, numbers of at most MAX_JSON_NUMBER_CHARS characters, finite,
    strings without unpaired surrogates (they could not be written to Redis or a log).

    Anything else raises ProtocolError: ``<what> is N bytes; the limit is M`` (1009),
    ``<what> is not JSON (<why>)`` or ``<what> must be a JSON object`` (1007). The reason
    never quotes the input (it may hold personal data); the JSON decoder's own message
    is added only with `decoder_detail` (the metadata, where it helps set FreeSWITCH up).
    """
    def refuse(why: str | None) -> ProtocolError:
        shown = f" ({why})" if why else ""
        return ProtocolError(f"{what} is not JSON{shown}", CLOSE_INVALID_PAYLOAD)

    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError:
        raise refuse("not valid text") from None
    if len(raw) > max_bytes:
        raise ProtocolError(f"{what} is {len(raw)} bytes; the limit is {max_bytes}",
                            CLOSE_TOO_BIG)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("not valid UTF-8") from None
    if not _json_depth_ok(text):
        raise refuse(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = _DECODER.decode(text)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # unpaired surrogates
    except json.JSONDecodeError as exc:
        raise refuse(exc.msg if decoder_detail else None) from None
    except _BadJson as exc:
        raise refuse(str(exc)) from None
    except UnicodeEncodeError:
        raise refuse("a string that is not valid text") from None
    except (ValueError, RecursionError):  # belt and braces: the checks above cover these
        raise refuse("out of bounds") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"{what} must be a JSON object", CLOSE_INVALID_PAYLOAD)
    return doc


@dataclass(frozen=True)
class ForkMetadata:
    """The metadata text frame that opens a fork.

    Field names on the wire follow jambonz (`callId`/`callSid`, `sampleRate`, `from`,
    `to`, `direction`, `mixType`); CallFleet adds `campaign`, `playback` and `customer`.
    The wire's `callId` (the FreeSWITCH A-leg channel UUID) is `call_uuid` here, the name
    the rest of CallFleet uses; only `to_json` and `parse_metadata` know the wire name.
    """

    call_uuid: str
    sample_rate: int
    caller: str | None = None
    callee: str | None = None
    direction: Literal["inbound", "outbound"] | None = None
    campaign: str | None = None
    playback: Literal["binary", "playAudio"] | None = None
    mix_type: str = "mono"
    customer: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"callId": self.call_uuid, "sampleRate": self.sample_rate}
        for key, value in (
            ("from", self.caller),
            ("to", self.callee),
            ("direction", self.direction),
            ("campaign", self.campaign),
            ("playback", self.playback),
        ):
            if value is not None:
                doc[key] = value
        doc["mixType"] = self.mix_type
        if self.customer:
            doc["customer"] = self.customer
        doc.update(self.extra)
        return json.dumps(doc, separators=(",", ":"))


_KNOWN = {"callId", "callSid", "sampleRate", "from", "to", "direction", "campaign",
          "playback", "mixType", "customer"}


def parse_metadata(
    text: str | bytes, url_call_uuid: str | None = None, max_bytes: int = MAX_METADATA_BYTES
) -> ForkMetadata:
    """Validate the first text frame. Raises ProtocolError with the close code to use,
    whatever the input (see `_peer_json_object` for the bounds)."""
    doc = _peer_json_object(text, "metadata", max_bytes, decoder_detail=True)

    problems: list[str] = []
    call_uuid = doc.get("callId", doc.get("callSid", url_call_uuid))
    if not isinstance(call_uuid, str) or not _CALL_UUID.fullmatch(call_uuid):
        problems.append("callId missing or not an id")
    elif url_call_uuid is not None and call_uuid != url_call_uuid:
        problems.append("callId differs from the URL's call uuid")
    rate = doc.get("sampleRate")
    # an int, not a bool (True == 1) nor a float (8000.0 == 8000 breaks frame arithmetic)
    if type(rate) is not int or rate not in SAMPLE_RATES:
        problems.append(f"sampleRate must be one of {list(SAMPLE_RATES)}")
    direction = doc.get("direction")
    if direction is not None and direction not in ("inbound", "outbound"):
        problems.append("direction must be inbound or outbound")
    playback = doc.get("playback")
    if playback is not None and playback not in PLAYBACK_MODES:
        problems.append(f"playback must be one of {list(PLAYBACK_MODES)}")
    mix_type = doc.get("mixType", "mono")
    if mix_type != "mono":
        problems.append("only mixType mono is supported")
    customer = doc.get("customer", {})
    if not isinstance(customer, dict):
        problems.append("customer must be an object")
    for key in ("from", "to", "campaign"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            problems.append(f"{key} must be a string")
    for key in ("campaign", "lead"):  # ids that end up in Redis keys and records
        if isinstance(doc.get(key), str) and not _CALL_UUID.fullmatch(doc[key]):
            problems.append(f"{key} is not an id")
    if problems:
        raise ProtocolError("bad metadata: " + "; ".join(problems), CLOSE_POLICY)
    return ForkMetadata(
        call_uuid=call_uuid,
        sample_rate=rate,
        caller=doc.get("from"),
        callee=doc.get("to"),
        direction=direction,
        campaign=doc.get("campaign"),
        playback=playback,
        mix_type=mix_type,
        customer=customer,
        extra={k: v for k, v in doc.items() if k not in _KNOWN},
    )


def check_audio_frame(data: bytes, sample_rate: int, max_bytes: int) -> None:
    """An L16 frame must hold whole samples and stay under the size limit."""
    if len(data) % 2:
        raise ProtocolError(
            f"odd-length L16 frame ({len(data)} bytes): 16-bit PCM needs an even count",
            CLOSE_INVALID_PAYLOAD,
        )
    if len(data) > max_bytes:
        raise ProtocolError(
            f"audio frame of {len(data)} bytes exceeds {max_bytes}", CLOSE_TOO_BIG
        )


# ---- server -> module ------------------------------------------------------------------


def play_audio(pcm: bytes, sample_rate: int, text: str | None = None) -> str:
    """drachtio `playAudio`: the module writes the audio to a file and fires
    `mod_audio_fork::play_audio`; the controller then plays it with uuid_broadcast."""
    data: dict[str, Any] = {
        "audioContentType": "raw",
        "sampleRate": sample_rate,
        "audioContent": base64.b64encode(pcm).decode("ascii"),
    }
    if text:
        data["textContent"] = text
    return json.dumps({"type": "playAudio", "data": data}, separators=(",", ":"))


def kill_audio() -> str:
    return '{"type":"killAudio"}'


def mark(name: str) -> str:
    return json.dumps({"type": "mark", "data": {"name": name}}, separators=(",", ":"))


def clear_marks() -> str:
    return '{"type":"clearMarks"}'


def disconnect(reason: str = "bot closed the call") -> str:
    """The module fires ``mod_audio_fork::disconnect`` with ``data`` as its body; the
    controller hangs up. ``data`` must be there: the module fires the same event, without
    a body, when the websocket drops (a lost gateway replica), and then the controller
    forks the call again instead (docs/reliability.md)."""
    return json.dumps({"type": "disconnect", "data": {"reason": reason[:120]}},
                      separators=(",", ":"))


def transfer(handover: Handover) -> str:
    """The module fires ``mod_audio_fork::transfer`` carrying ``data``; the controller
    hands the call to the skill router (the bot wants a person to take it). ``data`` is
    the whole `Handover` (`handover_to_json`; `parse_transfer` reads it back)."""
    return json.dumps({"type": "transfer", "data": handover_to_json(handover)},
                      separators=(",", ":"))


def handover_to_json(handover: Handover) -> dict[str, Any]:
    """The JSON form of a handover: reason, skills, priority, the brief, the rule that
    fired, VIP, customer, campaign and the conversation so far. It is the ``transfer``
    message's ``data``, and the controller's call record keeps it as it arrived."""
    return {
        "reason": handover.reason[:200],
        "skills": list(handover.skills),
        "priority": handover.priority,
        "brief": handover.brief,
        "rule": handover.rule,
        "vip": handover.vip,
        "customer": dict(handover.customer),
        "campaign_id": handover.campaign_id,
        "turns": [
            {"caller": t.caller, "bot": t.bot,
             "intent": intent_to_json(t.intent) if t.intent else None,
             "emotion": emotion_to_json(t.emotion) if t.emotion else None}
            for t in handover.turns
        ],
    }


def parse_transfer(data: str | bytes | None) -> Handover:
    """The `Handover` in a ``mod_audio_fork::transfer`` event's ``data`` (the JSON
    `transfer` wrote). Data that is not a JSON object gives a handover with the default
    reason and nothing else: the call must reach a person whatever came (so does data over
    MAX_TRANSFER_BYTES, or outside the other bounds of `_peer_json_object`)."""
    try:
        doc = _peer_json_object(data, "transfer data", MAX_TRANSFER_BYTES) if data else {}
    except ProtocolError:
        doc = {}
    return handover_from_json(doc)


def handover_from_json(doc: dict[str, Any]) -> Handover:
    """Inverse of `handover_to_json`; lenient: a field that is missing or of the wrong
    type takes its default."""

    def text(key: str, default: str = "") -> str:
        value = doc.get(key)
        return value if isinstance(value, str) else default

    skills = doc.get("skills")
    priority = doc.get("priority")
    customer = doc.get("customer")
    campaign = doc.get("campaign_id")
    turns = doc.get("turns")
    return Handover(
        reason=text("reason")[:200] or DEFAULT_HANDOVER_REASON,
        skills=tuple(str(s) for s in skills) if isinstance(skills, list) else (),
        priority=priority if type(priority) is int else 0,
        brief=text("brief"),
        rule=text("rule", "script"),
        vip=doc.get("vip") is True,
        customer=customer if isinstance(customer, dict) else {},
        campaign_id=campaign if isinstance(campaign, str) and campaign else None,
        turns=tuple(_handover_turn(t) for t in turns if isinstance(t, dict))
        if isinstance(turns, list) else (),
    )


def _handover_turn(doc: dict[str, Any]) -> HandoverTurn:
    caller, bot = doc.get("caller"), doc.get("bot")
    intent, emotion = doc.get("intent"), doc.get("emotion")
    return HandoverTurn(
        caller=caller if isinstance(caller, str) else None,
        bot=bot if isinstance(bot, str) else "",
        intent=_lenient(intent_from_json, intent),
        emotion=_lenient(emotion_from_json, emotion),
    )


def _lenient(from_json: Any, doc: Any) -> Any:
    """A model output read back from a peer's JSON, or None when it is not one (a string
    where a number belongs must not stop the call reaching a person)."""
    if not isinstance(doc, dict):
        return None
    try:
        return from_json(doc)
    except (TypeError, ValueError, AttributeError):
        return None


# ---- module -> server (after the metadata) ---------------------------------------------


@dataclass(frozen=True)
class MarkEvent:
    name: str
    event: Literal["playout", "cleared"]


@dataclass(frozen=True)
class DtmfEvent:
    """A key the caller pressed, passed on by the controller with ``send_text``."""

    digit: str


def parse_module_text(text: str) -> MarkEvent | DtmfEvent | None:
    """Parse a text frame the module sends after the metadata (mark reports, and DTMF
    the controller forwards through ``uuid_audio_fork … send_text``).

    Returns None for message types we do not act on; raises ProtocolError for anything
    that is not a JSON object within the bounds of `_peer_json_object`
    (MAX_TEXT_FRAME_BYTES).
    """
    doc = _peer_json_object(text, "text frame", MAX_TEXT_FRAME_BYTES)
    data = doc.get("data") or {}
    if doc.get("type") == "dtmf" and isinstance(data, dict):
        digit = data.get("digit")
        if isinstance(digit, str) and len(digit) == 1 and digit in "0123456789*#ABCD":
            return DtmfEvent(digit)
        return None
    if doc.get("type") == "mark" and isinstance(data, dict):
        event = data.get("event")
        if isinstance(data.get("name"), str) and event in ("playout", "cleared"):
            return MarkEvent(data["name"], event)
    return None


# ---- parsing what the server sends (used by the simulator) -----------------------------


@dataclass(frozen=True)
class ServerCommand:
    type: str
    data: dict[str, Any]

    def audio(self) -> tuple[bytes, int]:
        """Decode a playAudio command's raw PCM and its sample rate. ValueError when this
        is not a playAudio command; ProtocolError when its audio or rate is malformed."""
        if self.type != "playAudio":
            raise ValueError("not a playAudio command")
        content, rate = self.data.get("audioContent"), self.data.get("sampleRate")
        if type(rate) is not int or rate not in SAMPLE_RATES:
            raise ProtocolError(f"playAudio sampleRate must be one of {list(SAMPLE_RATES)}",
                                CLOSE_INVALID_PAYLOAD)
        try:
            if not isinstance(content, str):
                raise ValueError("audioContent is not a string")
            pcm = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("playAudio audioContent is not base64",
                                CLOSE_INVALID_PAYLOAD) from None
        if len(pcm) % 2:
            raise ProtocolError("playAudio audio is not whole 16-bit samples",
                                CLOSE_INVALID_PAYLOAD)
        return pcm, rate


def parse_server_text(text: str | bytes) -> ServerCommand:
    """A text frame the server sent (the simulator's side of the fork); ProtocolError for
    anything that is not a JSON object with a string ``type`` within the bounds of
    `_peer_json_object` (MAX_SERVER_TEXT_BYTES)."""
    doc = _peer_json_object(text, "server text frame", MAX_SERVER_TEXT_BYTES)
    if not isinstance(doc.get("type"), str):
        raise ProtocolError("server text frame has no type", CLOSE_INVALID_PAYLOAD)
    data = doc.get("data")
    return ServerCommand(doc["type"], data if isinstance(data, dict) else {})
