"""The routing vocabulary: agents, escalations, offers and what routing decided.

These are the documents the skill router keeps in Redis and hands to the agent API,
the websocket feed and webhooks. Personal data (customer profile, transcript) lives only
in `EscalationRequest` and the offer brief built from it; nothing here is ever logged.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from telephony.call_data import DEFAULT_HANDOVER_REASON, Handover
from training.models.outputs import emotion_to_json, intent_to_json

__all__ = [
    "AGENT_ID_PATTERN",
    "AgentProfile",
    "AgentSnapshot",
    "AgentState",
    "EscalationRecord",
    "EscalationRequest",
    "EscalationStatus",
    "Offer",
    "OfferState",
    "OverflowAction",
    "QueueItem",
    "RouteResult",
    "Skills",
    "WrapUp",
    "mask_number",
]

#: agent ids appear in Redis keys, URLs and tokens (``<agent_id>:<secret>``)
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_RESERVED_IDS = frozenset({"queue", "offers", "feed", "calls"})
_SKILL_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")  # \Z: "$" allows a trailing newline

OverflowAction = Literal["callback", "voicemail"]


def mask_number(number: str | None) -> str:
    """A phone number as an agent may see it: every digit but the last four masked
    (``+15550100999`` → ``+•••••••0999``). Idempotent, so a masked number stays as it is."""
    text = "".join(ch for ch in str(number or "") if ch.isdigit() or ch in "+•")[:32]
    places = sum(1 for ch in text if ch != "+")  # digits, and digits masked already
    keep = 4 if places > 6 else min(2, places)
    seen, out = 0, []
    for ch in text:
        if ch == "+":
            out.append(ch)
            continue
        seen += 1
        out.append(ch if seen > places - keep else "•")
    return "".join(out)


class AgentState(str, Enum):
    """What an agent is doing. Only `available` (and `on_call` below the agent's
    concurrency) receive offers, and only while the agent's heartbeat is fresh."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    BREAK = "break"


def _normalise_skills(value: Any) -> Any:
    """`["billing", "de"]` means level 1 of each; names are case-insensitive."""
    if isinstance(value, list | tuple | set):
        value = {str(name): 1 for name in value}
    if isinstance(value, dict):
        out = {}
        for name, level in value.items():
            key = str(name).strip().lower()
            if not _SKILL_RE.match(key):
                raise ValueError(f"skill name {name!r} must be 1-64 of a-z 0-9 _ . -")
            out[key] = level
        return out
    return value


def _check_levels(value: dict[str, int]) -> dict[str, int]:
    for name, level in value.items():
        if not 1 <= level <= 10:
            raise ValueError(f"skill {name!r}: level {level} is outside 1..10")
    return value


#: skill -> level 1..10; a list of names means level 1 of each
Skills = Annotated[dict[str, int], BeforeValidator(_normalise_skills), AfterValidator(_check_levels)]


class AgentProfile(BaseModel):
    """Who an agent is and what they can take: set by a supervisor (`callfleet agents
    add`), not by the agent."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="stable id (login name)")
    extension: str = Field(pattern=r"^[0-9A-Za-z*#+_.@-]{1,64}$",
                           description="dialplan extension calls are transferred to")
    name: str = Field("", max_length=120, description="display name")
    skills: Skills = Field(default_factory=dict,
                           description="skill -> level 1..10 (higher = better)")
    concurrency: int = Field(1, ge=1, le=20, description="most calls (and offers) at once")

    @field_validator("agent_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in _RESERVED_IDS:
            raise ValueError(f"agent id {value!r} is reserved (used in API paths)")
        return value


class AgentSnapshot(BaseModel):
    """An agent as routing sees it at one moment (profile + live state + statistics)."""

    profile: AgentProfile
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    idle_since: float = Field(0.0, description="when the agent last became free (longest idle first)")
    online: bool = Field(False, description="heartbeat fresh (key present in Redis)")
    calls: list[str] = Field(default_factory=list, description="call uuids in progress")
    pending_offers: int = 0
    offers: int = Field(0, description="offers made to this agent")
    handled: int = Field(0, description="calls completed by this agent")
    converted: int = Field(0, description="completed calls marked converted")
    no_answers: int = Field(0, description="offers that timed out")
    rejects: int = 0
    wrap_up_until: float = 0.0
    rr_credit: float = Field(0.0, description="smooth weighted round-robin counter")

    @property
    def agent_id(self) -> str:
        return self.profile.agent_id

    @property
    def load(self) -> int:
        return len(self.calls) + self.pending_offers

    def public(self) -> dict[str, Any]:
        """What the API and CLI show (no token hash; it is never part of the snapshot)."""
        doc = self.model_dump(mode="json")
        doc["agent_id"] = self.agent_id
        doc["conversion_rate"] = (self.converted / self.handled) if self.handled else None
        return doc


class EscalationRequest(BaseModel):
    """A call the bot hands to a human: the router's own input type, and the JSON
    document it keeps in Redis and shows agents (`Offer.brief`). A bot's handover
    becomes one through `from_handover`."""

    model_config = ConfigDict(extra="forbid")

    call_uuid: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=1, max_length=200,
                        description="why (anger, asked for a person, out of scope, ...)")
    priority: int = Field(0, ge=0, le=99, description="higher is served first within a VIP class")
    skills: Skills = Field(default_factory=dict,
                           description="required skill -> minimum level (a list = level 1)")
    vip: bool = Field(False, description="VIP calls are served before every non-VIP call")
    brief: str = Field("", max_length=4000, description="short summary for the agent")
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    customer: dict[str, Any] = Field(default_factory=dict, description="customer profile")
    intents: list[dict[str, Any]] = Field(default_factory=list, description="intent trace")
    emotions: list[dict[str, Any]] = Field(default_factory=list, description="emotion trace")
    campaign_id: str | None = None
    caller: str = Field("", max_length=32, description="the caller's number, masked: only "
                        "its last four digits show (`mask_number`)")

    @field_validator("caller")
    @classmethod
    def _masked(cls, value: str) -> str:
        return mask_number(value)

    @field_validator("transcript", mode="before")
    @classmethod
    def _turns(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [t if isinstance(t, dict) else {"text": str(t)} for t in value]
        return value

    @classmethod
    def from_handover(cls, call_uuid: str, handover: Handover,
                      caller_number: str | None = None) -> EscalationRequest:
        """The request for a bot's `Handover` (the serializer of the router's wire);
        `caller_number` (from the switch's record of the call) is kept masked only.
        Agents see the conversation as they always have: ``transcript`` one
        ``{caller, bot}`` per turn, ``intents`` and ``emotions`` one per turn (``{}``
        where a turn had none: keys or silence)."""
        return cls(
            call_uuid=call_uuid,
            reason=(handover.reason or DEFAULT_HANDOVER_REASON)[:200],
            priority=handover.priority,
            skills=list(handover.skills),
            vip=handover.vip,
            brief=handover.brief[:4000],
            transcript=[{"caller": t.caller, "bot": t.bot} for t in handover.turns],
            intents=[intent_to_json(t.intent) if t.intent else {} for t in handover.turns],
            emotions=[emotion_to_json(t.emotion) if t.emotion else {} for t in handover.turns],
            customer=dict(handover.customer),
            campaign_id=handover.campaign_id,
            caller=mask_number(caller_number),
        )


class EscalationStatus(str, Enum):
    QUEUED = "queued"          # waiting for an eligible agent
    OFFERED = "offered"        # an offer is out to one agent
    CONNECTING = "connecting"  # accepted; transfer/bridge in progress
    CONNECTED = "connected"    # with an agent
    OVERFLOW = "overflow"      # waited too long: callback or voicemail
    ENDED = "ended"            # caller hung up, call finished, or connect failed for good


class OfferState(str, Enum):
    PENDING = "pending"
    CONNECTING = "connecting"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"        # no answer in time
    WITHDRAWN = "withdrawn"    # the call ended or was cancelled while offered
    FAILED = "failed"          # accepted but the transfer/bridge failed


class Offer(BaseModel):
    """One escalation offered to one agent. Accept/reject are idempotent by `offer_id`."""

    offer_id: str
    call_uuid: str
    agent_id: str
    state: OfferState = OfferState.PENDING
    created_at: float
    expires_at: float
    attempt: int = Field(1, description="1 for the first agent offered this call, 2 for the next ...")
    connect: Literal["transfer", "bridge"] | None = None

    def brief(self, request: EscalationRequest) -> dict[str, Any]:
        """The context an agent UI or CRM needs to take the call."""
        return {
            "offer_id": self.offer_id,
            "call_uuid": self.call_uuid,
            "agent_id": self.agent_id,
            "expires_at": self.expires_at,
            "attempt": self.attempt,
            "reason": request.reason,
            "vip": request.vip,
            "priority": request.priority,
            "skills": request.skills,
            "brief": request.brief,
            "transcript": request.transcript,
            "customer": request.customer,
            "intents": request.intents,
            "emotions": request.emotions,
            "campaign_id": request.campaign_id,
            "caller": request.caller,
        }


class WrapUp(BaseModel):
    """What the agent notes after a call: a disposition code, free notes, and when to
    call the customer back (None: no callback)."""

    model_config = ConfigDict(extra="forbid")

    disposition: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                             description="e.g. resolved, follow_up, sale, complaint")
    notes: str = Field("", max_length=2000)
    callback_at: float | None = Field(None, description="unix time of the agreed callback")


class EscalationRecord(BaseModel):
    """Where one escalated call stands; kept in Redis under its call uuid."""

    request: EscalationRequest
    status: EscalationStatus = EscalationStatus.QUEUED
    enqueued_at: float
    deadline: float = Field(description="overflow when no agent took it by then")
    offer_id: str | None = None
    agent_id: str | None = None
    tried: list[str] = Field(default_factory=list,
                             description="agents who declined or let an offer of this call time out")
    attempts: int = Field(0, description="offers made for this call (withdrawn ones not counted)")
    converted: bool | None = Field(None, description="outcome the agent reported; None = not yet")
    overflow: OverflowAction | None = None
    ended_reason: str | None = None
    connected_at: float | None = Field(None, description="when an agent took the call")
    wrap_up: WrapUp | None = None


class QueueItem(BaseModel):
    """A waiting call as the queue listing shows it (no transcript, no customer data)."""

    call_uuid: str
    vip: bool
    priority: int
    reason: str
    skills: dict[str, int]
    campaign_id: str | None
    enqueued_at: float
    waited_s: float
    deadline: float
    status: EscalationStatus


class RouteResult(BaseModel):
    """What routing did with a call right now."""

    call_uuid: str
    status: EscalationStatus
    agent_id: str | None = None
    offer_id: str | None = None
    queue_position: int | None = Field(None, description="1 = next, when queued")
    overflow: OverflowAction | None = None
