"""The life of one call as the ESL controller sees it.

    ringing → answered → bot → escalated → agent → ended

Events from FreeSWITCH can arrive late or twice (after a reconnect and resync, or when a
channel hangs up while a command is in flight), so a transition that is not allowed is
refused and reported, never applied: the record only ever moves forward.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from telephony.call_data import Handover
from telephony.media_fork import handover_from_json, handover_to_json

__all__ = ["CallPhase", "CallRecord", "TransitionRefused"]


class CallPhase(str, Enum):
    RINGING = "ringing"
    ANSWERED = "answered"
    BOT = "bot"
    ESCALATED = "escalated"
    AGENT = "agent"
    ENDED = "ended"


_ALLOWED: dict[CallPhase, frozenset[CallPhase]] = {
    CallPhase.RINGING: frozenset({CallPhase.ANSWERED, CallPhase.ENDED}),
    CallPhase.ANSWERED: frozenset({CallPhase.BOT, CallPhase.AGENT, CallPhase.ENDED}),
    CallPhase.BOT: frozenset({CallPhase.ESCALATED, CallPhase.AGENT, CallPhase.ENDED}),
    # an escalation nobody takes goes back to the bot (overflow) or to voicemail/end
    CallPhase.ESCALATED: frozenset({CallPhase.AGENT, CallPhase.BOT, CallPhase.ENDED}),
    CallPhase.AGENT: frozenset({CallPhase.ENDED}),
    CallPhase.ENDED: frozenset(),
}


class TransitionRefused(ValueError):
    pass


@dataclass
class CallRecord:
    """Everything the controller knows about one channel; JSON-serialisable for Redis.
    The caller's number is kept for the dialer and agents but never logged."""

    call_uuid: str
    direction: str = "outbound"
    phase: CallPhase = CallPhase.RINGING
    history: list[tuple[str, float]] = field(default_factory=list)
    destination: str = ""
    caller_id: str = ""
    gateway: str | None = None
    hangup_cause: str | None = None
    dtmf: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    escalation: Handover | None = None  # what the bot handed over (its transfer)
    bot_requested: bool = False  # a fork to the bot was asked for (it holds a bot slot)
    agent_leg: str | None = None  # the B-leg FreeSWITCH created to the agent's phone
    forks: int = 0  # media forks started for the call: the gateway's lease generation
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append((self.phase.value, self.created_at))

    @property
    def ended(self) -> bool:
        return self.phase is CallPhase.ENDED

    def can_move(self, to: CallPhase) -> bool:
        return to in _ALLOWED[self.phase]

    def move(self, to: CallPhase, at: float | None = None) -> None:
        if to is self.phase:
            return
        if not self.can_move(to):
            raise TransitionRefused(f"call cannot go from {self.phase.value} to {to.value}")
        at = time.time() if at is None else at
        self.phase = to
        self.history.append((to.value, at))
        if to is CallPhase.ANSWERED:
            self.answered_at = at
        elif to is CallPhase.ENDED:
            self.ended_at = at

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON form (Redis ``cf:esl:<uuid>``); the handover is kept in the
        form it came in over the fork."""
        doc = asdict(self)
        doc["phase"] = self.phase.value
        doc["escalation"] = handover_to_json(self.escalation) if self.escalation else None
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CallRecord:
        doc = dict(doc)
        doc["phase"] = CallPhase(doc.get("phase", "ringing"))
        doc["history"] = [tuple(h) for h in doc.get("history", [])]
        escalation = doc.get("escalation")
        doc["escalation"] = handover_from_json(escalation) if escalation else None
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        return cls(**known)
