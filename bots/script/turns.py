"""What goes into the bot on a turn and what comes out.

The bot never performs side effects that belong to the floor (transferring, hanging up,
filing tickets, dialling back, messaging, the do-not-call list): it returns them as typed
actions in a `BotTurn`, and the call session / cluster carries them out. What the caller
hears is a list of segments: `Say` (TTS) and `Play` (a recorded prompt with the text to
speak where it cannot be played).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bots.escalation import Escalation
from training.models.outputs import EmotionResult, IntentResult

__all__ = [
    "Action", "BotTurn", "Callback", "DoNotCall", "Hangup", "Outcome", "Play", "Say",
    "Ticket", "Transfer", "TurnInput", "WebhookMessage", "action_from_dict", "action_to_dict",
]


@dataclass(frozen=True)
class TurnInput:
    """One spoken caller turn: the transcript and what the models made of it.

    `intent` None means "no intent model answered" (treated as out of scope), `emotion`
    None "no emotion known". `entities` None means "extract them from `text` with the
    built-in extractors"."""

    text: str
    intent: IntentResult | None = None
    emotion: EmotionResult | None = None
    entities: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Play:
    file: str
    text: str  # spoken by TTS when the file cannot be played


Segment = Say | Play


@dataclass(frozen=True)
class Transfer:
    """Hand the call to a person with these skills; ends the bot's part of the call."""

    skills: tuple[str, ...]
    priority: int
    reason: str
    brief: str
    escalation_reason: str = "script"  # or the policy rule that fired


@dataclass(frozen=True)
class Hangup:
    reason: str


@dataclass(frozen=True)
class Ticket:
    queue: str
    subject: str
    priority: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Callback:
    """Call the customer back; `when` is what the caller said ("tomorrow afternoon")."""

    when: str
    reason: str


@dataclass(frozen=True)
class WebhookMessage:
    webhook: str  # a name the cluster maps to a URL
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class DoNotCall:
    """Add this number to the do-not-call list now; the dialer applies it at once."""

    reason: str


@dataclass(frozen=True)
class Outcome:
    """The call reached a business outcome; `converted` counts for A/B reports."""

    name: str
    converted: bool


Action = Transfer | Hangup | Ticket | Callback | WebhookMessage | DoNotCall | Outcome
_KIND = {Transfer: "transfer", Hangup: "hangup", Ticket: "ticket", Callback: "callback",
         WebhookMessage: "webhook", DoNotCall: "do_not_call", Outcome: "outcome"}


_BY_KIND: dict[str, type] = {kind: cls for cls, kind in _KIND.items()}


def action_to_dict(action: Action) -> dict[str, Any]:
    """The JSON form of an action (``kind`` plus its fields), as tickets, callbacks and
    the call records store it."""
    doc = asdict(action)
    if "skills" in doc:
        doc["skills"] = list(doc["skills"])
    return {"kind": _KIND[type(action)], **doc}


def action_from_dict(doc: Mapping[str, Any]) -> Action:
    """Inverse of `action_to_dict`. Raises ValueError for an unknown kind or fields."""
    fields_ = dict(doc)
    cls = _BY_KIND.get(str(fields_.pop("kind", "")))
    if cls is None:
        raise ValueError(f"unknown action kind {doc.get('kind')!r}")
    if "skills" in fields_:
        fields_["skills"] = tuple(fields_["skills"])
    try:
        return cls(**fields_)
    except TypeError as exc:
        raise ValueError(f"bad {doc.get('kind')} action: {exc}") from None


@dataclass(frozen=True)
class BotTurn:
    """The bot's answer to one event (start, speech, DTMF, silence)."""

    segments: tuple[Segment, ...] = ()
    actions: tuple[Action, ...] = ()
    state: str = ""
    end_call: bool = False
    escalation: Escalation | None = None
    understood: bool = True  # False when no transition matched (a re-prompt)

    @property
    def text(self) -> str:
        """Everything the caller hears, as one text for TTS."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def of_type(self, kind: type) -> list[Any]:
        return [a for a in self.actions if isinstance(a, kind)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": [
                {"play": s.file, "text": s.text} if isinstance(s, Play) else {"say": s.text}
                for s in self.segments
            ],
            "actions": [action_to_dict(a) for a in self.actions],
            "state": self.state,
            "end_call": self.end_call,
            "escalation": self.escalation.to_dict() if self.escalation else None,
            "understood": self.understood,
        }
