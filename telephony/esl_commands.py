"""Command lines for FreeSWITCH's api (mod_commands, mod_audio_fork), built from typed
arguments with the quoting FreeSWITCH expects, so no caller-supplied value can smuggle a
second variable, a second dial string or a second command into a line."""

from __future__ import annotations

import json
import re
from typing import Any

from telephony.call_control import CallControlError, OriginateRequest

__all__ = [
    "CommandArgumentError",
    "audio_fork_send_text",
    "audio_fork_start",
    "audio_fork_stop",
    "originate",
    "parse_job_result",
    "uuid_arg",
]

_UUID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.+@-]{1,128}$")  # gateway, extension, context, number
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CAUSE = re.compile(r"^[A-Z_]{2,64}$")


class CommandArgumentError(CallControlError, ValueError):
    """An argument that would not make a safe command line; retrying cannot help."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


def uuid_arg(value: str) -> str:
    if not _UUID.match(value or ""):
        raise CommandArgumentError("not a channel uuid")
    return value


def token(value: str, what: str) -> str:
    if not _TOKEN.match(value or ""):
        raise CommandArgumentError(f"invalid {what}: letters, digits and _.+@- only")
    return value


def cause(value: str) -> str:
    if not _CAUSE.match(value or ""):
        raise CommandArgumentError("a hangup cause is an upper-case FreeSWITCH name")
    return value


def _var_value(value: str) -> str:
    """A channel-variable value inside ``{…}``: commas escaped, quoted when it holds
    spaces; braces, quotes and line breaks refused (they would end the block)."""
    if any(c in value for c in "{}[]'\n\r\0"):
        raise CommandArgumentError("a channel variable value may not contain {}[]' or line breaks")
    value = value.replace(",", "\\,")
    return f"'{value}'" if " " in value else value


def originate(req: OriginateRequest, gateway: str) -> str:
    """``originate {vars}sofia/gateway/<gw>/<number> &park()``: the call waits, parked,
    until the controller starts its media fork on answer."""
    variables: dict[str, str] = {
        "origination_uuid": uuid_arg(req.call_uuid),
        "originate_timeout": str(req.ring_timeout_s),
        "ignore_early_media": "true",
        "hangup_after_bridge": "true",
    }
    if req.caller_id_number:
        variables["origination_caller_id_number"] = token(req.caller_id_number, "caller id")
    if req.caller_id_name:
        variables["origination_caller_id_name"] = req.caller_id_name
    for name, value in req.variables.items():
        if not _VAR_NAME.match(name):
            raise CommandArgumentError("invalid channel variable name")
        variables.setdefault(name, value)
    block = ",".join(f"{k}={_var_value(str(v))}" for k, v in variables.items())
    number = token(req.destination, "destination")
    return f"originate {{{block}}}sofia/gateway/{token(gateway, 'gateway')}/{number} &park()"


def parse_job_result(body: str) -> tuple[bool, str]:
    """A BACKGROUND_JOB body of originate: ``+OK <uuid>`` or ``-ERR <CAUSE>``."""
    text = (body or "").strip()
    if text.startswith("+OK"):
        return True, "SUCCESS"
    if text.startswith("-ERR"):
        reason = text[4:].strip().split()[0] if text[4:].strip() else "UNKNOWN"
        return False, reason
    return False, "UNKNOWN"


def _compact_json(doc: dict[str, Any]) -> str:
    """mod_audio_fork takes the metadata as the last argument; compact JSON keeps it one
    token-free string (FreeSWITCH splits api arguments on spaces, metadata is the rest)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def audio_fork_start(call_uuid: str, ws_url: str, rate: str = "16k", mix: str = "mono",
                     metadata: dict[str, Any] | None = None) -> str:
    if rate not in ("8k", "16k"):
        raise CommandArgumentError("fork sample rate must be 8k or 16k")
    if mix not in ("mono", "mixed", "stereo"):
        raise CommandArgumentError("fork mix must be mono, mixed or stereo")
    if not re.match(r"^wss?://[^\s]+$", ws_url):
        raise CommandArgumentError("fork url must be ws:// or wss:// without spaces")
    line = f"uuid_audio_fork {uuid_arg(call_uuid)} start {ws_url} {mix} {rate}"
    if metadata:
        line += " " + _compact_json(metadata)
    return line


def audio_fork_send_text(call_uuid: str, doc: dict[str, Any]) -> str:
    return f"uuid_audio_fork {uuid_arg(call_uuid)} send_text {_compact_json(doc)}"


def audio_fork_stop(call_uuid: str) -> str:
    return f"uuid_audio_fork {uuid_arg(call_uuid)} stop"
