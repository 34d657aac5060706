"""Everything a scripted conversation knows about one call, as plain JSON-able data.

The bot object is shared by every call and holds nothing per call: the call session keeps
a `DialogState`, passes it in on each event and stores ``to_dict()`` in Redis after each
turn, so a call whose media connection moves to another replica resumes where it was.
`seq` increases with every change; the Redis store refuses to overwrite a newer state
with an older one (a replica that lost the call but is still finishing a turn).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bots.escalation import EscalationTrace

__all__ = ["DialogState"]


@dataclass
class DialogState:
    script: str = ""  # the bot's name
    script_version: str = ""  # sha256 of the script source it started with
    state: str | None = None  # current script state; None before `start`
    variables: dict[str, Any] = field(default_factory=dict)
    customer: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)  # id, campaign, direction
    variant: str | None = None
    turns: int = 0
    no_match: int = 0  # misses in the current state
    no_input: int = 0  # silences in the current state
    ended: bool = False
    outcome: str | None = None
    trace: EscalationTrace = field(default_factory=EscalationTrace)
    seq: int = 0
    keys: str = ""  # DTMF keys collected toward the current state's digit slot

    @property
    def call_uuid(self) -> str:
        return str(self.call.get("id") or "")

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["trace"] = self.trace.to_dict()
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DialogState:
        """Inverse of `to_dict`; unknown keys (from a newer version) are ignored."""
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        known["trace"] = EscalationTrace.from_dict(known.get("trace"))
        return cls(**known)

    @classmethod
    def from_json(cls, text: str | bytes) -> DialogState:
        return cls.from_dict(json.loads(text))
