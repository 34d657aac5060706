"""Command lines for FreeSWITCH's api (mod_commands, mod_audio_fork), built from typed
arguments with the quoting FreeSWITCH expects, so no caller-supplied value can smuggle a
second variable, a second dial string or a second command into a line.

Every value is checked against what its place on the line allows (uuids, dial tokens,
channel variables, file paths, the fork's JSON); a value that does not fit raises
`CommandArgumentError`, whose message says what is allowed and never repeats the value
(it may be a phone number or a name). The ESL connection checks each finished line once
more for control characters before it is sent (`telephony.esl.check_command`).

FreeSWITCH splits an api command's arguments with ``switch_separate_string`` on spaces:
single quotes group, a backslash escapes the next character, and each argument is then
unquoted and unescaped (``\\n``, ``\\t``, ``\\s``, ``\\'``, ``\\"``, ``\\\\``); the last argument
takes the rest of the line. `telephony/sim/fs_args.py` ports that splitter so the
simulator reads these lines exactly as the switch would.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from telephony.call_control import CallControlError, OriginateRequest
from telephony.media_fork import MAX_METADATA_BYTES, ForkMetadata

__all__ = [
    "SOUND_EXTENSIONS",
    "CommandArgumentError",
    "audio_fork_send_text",
    "audio_fork_start",
    "audio_fork_stop",
    "cause",
    "check_variable",
    "eavesdrop",
    "eavesdrop_mode",
    "command_line_json",
    "media_path",
    "originate",
    "parse_job_result",
    "sound_file_name",
    "sound_path",
    "token",
    "uuid_arg",
    "uuid_break",
    "uuid_bridge",
    "uuid_broadcast",
    "uuid_kill",
    "uuid_transfer",
]

SOUND_EXTENSIONS = (".wav",)  # what the floor writes and measures: 8 kHz 16-bit mono WAV

_UUID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.+@-]{1,128}$")  # gateway, extension, context, number
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CAUSE = re.compile(r"^[A-Z_]{2,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SOUND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# no spaces, quotes, backslashes or $ (FreeSWITCH expands ${…} in what it plays)
_MEDIA_PATH = re.compile(r"^/[A-Za-z0-9_.+@/-]{1,1023}$")
_WS_URL = re.compile(r"^wss?://[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+$")
# in compact ASCII JSON: an escape sequence, or a character the splitter would act on
_JSON_UNSAFE = re.compile(r"\\u[0-9a-fA-F]{4}|\\(.)|[ '$]")
_JSON_SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
               "t": "\t"}


class CommandArgumentError(CallControlError, ValueError):
    """An argument that would not make a safe command line; retrying cannot help."""

    def __init__(self, message: str):
        super().__init__(message, retryable=False)


def uuid_arg(value: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise CommandArgumentError("not a channel uuid")
    return value


def token(value: str, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise CommandArgumentError(f"invalid {what}: letters, digits and _.+@- only")
    return value


def cause(value: str) -> str:
    if not isinstance(value, str) or not _CAUSE.fullmatch(value):
        raise CommandArgumentError("a hangup cause is an upper-case FreeSWITCH name")
    return value


def sound_file_name(name: str) -> str:
    """A recorded prompt's file name: a base name in the sounds folder, ``.wav``.

    No folders (``/``, ``\\``), no ``..``, no absolute paths: the name comes from a
    campaign (the REST API, a YAML file) and must not choose which file on the switch is
    played or where the floor writes a synthesized one."""
    if not isinstance(name, str) or not name:
        raise CommandArgumentError("a prompt needs a file name (e.g. spring-offer-info.wav)")
    if _CONTROL.search(name):
        raise CommandArgumentError("a prompt's file name may not contain control characters")
    if "/" in name or "\\" in name:
        raise CommandArgumentError("a prompt is a file name in the sounds folder, not a path: "
                                   "no '/' or '\\' (e.g. spring-offer-info.wav)")
    if ".." in name:
        raise CommandArgumentError("a prompt's file name may not contain '..'")
    if not _SOUND_NAME.fullmatch(name):
        raise CommandArgumentError("a prompt's file name may hold letters, digits and _.- "
                                   "only, at most 128, starting with a letter or digit")
    if not name.lower().endswith(SOUND_EXTENSIONS):
        raise CommandArgumentError(f"a prompt must be a {'/'.join(SOUND_EXTENSIONS)} file "
                                   "(8 kHz 16-bit mono)")
    return name


def media_path(path: str) -> str:
    """A file FreeSWITCH plays, as it goes on a command line: an absolute path of
    letters, digits and ``_.+@-/``, without ``..`` segments."""
    if (not isinstance(path, str) or not _MEDIA_PATH.fullmatch(path)
            or ".." in PurePosixPath(path).parts):
        raise CommandArgumentError("a file to play must be an absolute path of letters, "
                                   "digits and _.+@-/ without '..'")
    return path


def sound_path(folder: Any, name: str) -> str:
    """`name` (checked by `sound_file_name`) resolved in the sounds folder `folder`
    (``freeswitch.sounds_dir``, the folder FreeSWITCH and the floor share)."""
    if folder is None:
        raise CommandArgumentError("freeswitch.sounds_dir is not set: no folder to play "
                                   "prompts from")
    base = str(folder).rstrip("/") or "/"
    try:
        media_path(base)
    except CommandArgumentError:
        raise CommandArgumentError("freeswitch.sounds_dir must be an absolute path of "
                                   "letters, digits and _.+@-/ (it goes on an ESL command "
                                   "line)") from None
    return media_path(f"{base.rstrip('/')}/{sound_file_name(name)}")


def _var_value(value: str) -> str:
    """A channel-variable value inside ``{…}``: commas escaped, quoted when it holds
    spaces; braces, quotes, backslashes, ``${`` (FreeSWITCH would expand it) and control
    characters refused (they would end the block or the line)."""
    if _CONTROL.search(value) or any(c in value for c in "{}[]'\\") or "${" in value:
        raise CommandArgumentError("a channel variable value may not contain {}[]'\\, ${ "
                                   "or control characters")
    value = value.replace(",", "\\,")
    return f"'{value}'" if " " in value else value


def check_variable(name: str, value: str) -> None:
    """Whether ``name=value`` can go into an originate's ``{…}`` block (for config
    validators: a campaign's channel variables and caller id name)."""
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        raise CommandArgumentError("a channel variable name is a letter or _ then letters, "
                                   "digits or _, at most 64")
    _var_value(str(value))


def originate(req: OriginateRequest, gateway: str) -> str:
    """``originate {vars}sofia/gateway/<gw>/<number> &park()``: the call waits, parked,
    until the controller starts its media fork on answer."""
    variables: dict[str, str] = {
        "origination_uuid": uuid_arg(req.call_uuid),
        "originate_timeout": str(int(req.ring_timeout_s)),
        "ignore_early_media": "true",
        "hangup_after_bridge": "true",
    }
    if req.caller_id_number:
        variables["origination_caller_id_number"] = token(req.caller_id_number, "caller id")
    if req.caller_id_name:
        variables["origination_caller_id_name"] = req.caller_id_name
    for name, value in req.variables.items():
        check_variable(name, value)
        variables.setdefault(name, value)
    block = ",".join(f"{k}={_var_value(str(v))}" for k, v in variables.items())
    number = token(req.destination, "destination")
    return f"originate {{{block}}}sofia/gateway/{token(gateway, 'gateway')}/{number} &park()"


def uuid_transfer(call_uuid: str, extension: str, context: str, dialplan: str = "XML") -> str:
    return (f"uuid_transfer {uuid_arg(call_uuid)} {token(extension, 'extension')} "
            f"{token(dialplan, 'dialplan')} {token(context, 'context')}")


def uuid_bridge(call_uuid: str, other_uuid: str) -> str:
    return f"uuid_bridge {uuid_arg(call_uuid)} {uuid_arg(other_uuid)}"


def uuid_kill(call_uuid: str, hangup_cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {uuid_arg(call_uuid)} {cause(hangup_cause)}"


#: eavesdrop's start variables per mode: ``eavesdrop(<caller uuid>)`` calls the caller's
#: leg "aleg" and its bridged partner (the agent) "bleg"; whisper speaks to the agent
#: only, barge to both
_EAVESDROP_VARS = {
    "listen": {"eavesdrop_whisper_aleg": "false", "eavesdrop_whisper_bleg": "false"},
    "whisper": {"eavesdrop_whisper_aleg": "false", "eavesdrop_whisper_bleg": "true"},
    "barge": {"eavesdrop_whisper_aleg": "true", "eavesdrop_whisper_bleg": "true"},
}
#: the keys the eavesdrop application takes from the eavesdropper mid-call: 0 back to
#: listening, 1 speak with the other half (the agent), 3 three-way
EAVESDROP_DTMF = {"listen": "0", "whisper": "1", "barge": "3"}


def _eavesdrop_vars(mode: str) -> dict[str, str]:
    if mode not in _EAVESDROP_VARS:
        raise CommandArgumentError("eavesdrop mode must be listen, whisper or barge")
    return _EAVESDROP_VARS[mode]


def eavesdrop(leg_uuid: str, call_uuid: str, extension: str, context: str,
              mode: str = "listen") -> str:
    """``originate {vars}loopback/<ext>/<context> &eavesdrop(<call>)``: ring the
    supervisor's extension (through the dialplan, like an agent's) and, on answer, join
    `call_uuid` in `mode`. The new leg is `leg_uuid` and is marked
    ``callfleet_role=supervisor`` so the controller never gives it a bot."""
    variables = {"origination_uuid": uuid_arg(leg_uuid), "callfleet_role": "supervisor",
                 "origination_caller_id_name": "'CallFleet supervisor'",
                 **_eavesdrop_vars(mode)}
    block = ",".join(f"{k}={v}" for k, v in variables.items())
    return (f"originate {{{block}}}loopback/{token(extension, 'extension')}/"
            f"{token(context, 'context')} &eavesdrop({uuid_arg(call_uuid)})")


def eavesdrop_mode(leg_uuid: str, mode: str) -> str:
    """``uuid_recv_dtmf <leg> <key>``: switch a live eavesdrop between listen, whisper
    and barge, as if the supervisor pressed the key."""
    _eavesdrop_vars(mode)
    return f"uuid_recv_dtmf {uuid_arg(leg_uuid)} {EAVESDROP_DTMF[mode]}"


def uuid_break(call_uuid: str) -> str:
    """Stop what is playing on the channel, and everything queued behind it."""
    return f"uuid_break {uuid_arg(call_uuid)} all"


def uuid_broadcast(call_uuid: str, path: str, leg: str = "aleg") -> str:
    if leg not in ("aleg", "bleg", "both"):
        raise CommandArgumentError("broadcast leg must be aleg, bleg or both")
    return f"uuid_broadcast {uuid_arg(call_uuid)} {media_path(path)} {leg}"


def parse_job_result(body: str) -> tuple[bool, str]:
    """A BACKGROUND_JOB body of originate: ``+OK <uuid>`` or ``-ERR <CAUSE>``."""
    text = (body or "").strip()
    if text.startswith("+OK"):
        return True, "SUCCESS"
    if text.startswith("-ERR"):
        reason = text[4:].strip().split()[0] if text[4:].strip() else "UNKNOWN"
        return False, reason
    return False, "UNKNOWN"


def _json_escape(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("\\u"):
        return text
    char = _JSON_SHORT[match.group(1)] if match.group(1) is not None else text
    return f"\\u{ord(char):04x}"


def command_line_json(doc: dict[str, Any]) -> str:
    """`doc` as one api argument FreeSWITCH passes on unchanged: compact ASCII JSON in
    which every space, quote, apostrophe, backslash, ``$`` and control character inside
    a string is a ``\\u00XX`` escape. The splitter would cut the JSON at a space, eat an
    apostrophe pair, and turn ``\\"``, ``\\\\``, ``\\n`` or ``\\t`` into raw characters (breaking
    the JSON); ``\\u`` is not an escape to it, so the text reaches the module as written
    and still parses to `doc`."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return _JSON_UNSAFE.sub(_json_escape, text)


def audio_fork_start(call_uuid: str, ws_url: str, rate: str = "16k", mix: str = "mono",
                     metadata: ForkMetadata | dict[str, Any] | None = None) -> str:
    """``uuid_audio_fork <uuid> start <url> <mix> <rate> [metadata]``; the metadata, when
    given, is the last argument (mod_audio_fork takes the rest of the line)."""
    if rate not in ("8k", "16k"):
        raise CommandArgumentError("fork sample rate must be 8k or 16k")
    if mix not in ("mono", "mixed", "stereo"):
        raise CommandArgumentError("fork mix must be mono, mixed or stereo")
    if not isinstance(ws_url, str) or not _WS_URL.fullmatch(ws_url) or "${" in ws_url:
        raise CommandArgumentError("fork url must be ws:// or wss:// without spaces, quotes "
                                   "or backslashes")
    line = f"uuid_audio_fork {uuid_arg(call_uuid)} start {ws_url} {mix} {rate}"
    if isinstance(metadata, ForkMetadata):
        metadata = json.loads(metadata.to_json())
    if metadata:
        text = command_line_json(metadata)
        if len(text) > MAX_METADATA_BYTES:
            raise CommandArgumentError(f"fork metadata is {len(text)} bytes on the command "
                                       f"line; mod_audio_fork takes at most {MAX_METADATA_BYTES}")
        line += " " + text
    return line


def audio_fork_send_text(call_uuid: str, doc: dict[str, Any]) -> str:
    """``uuid_audio_fork <uuid> send_text <json>``: mod_audio_fork sends only the first
    argument, so the JSON must hold no raw space (`command_line_json`)."""
    return f"uuid_audio_fork {uuid_arg(call_uuid)} send_text {command_line_json(doc)}"


def audio_fork_stop(call_uuid: str) -> str:
    return f"uuid_audio_fork {uuid_arg(call_uuid)} stop"
