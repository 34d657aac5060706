"""When a call should go to a person, how urgently, to whom, and what the agent is told.

The bot handles easy calls; hard ones go to people before the caller gives up. The rules
(each configurable in `EscalationSettings`): anger above a threshold on one turn or
sustained over N turns, repeated turns the bot did not understand (no transition
matched), repeated low intent confidence, repeated out-of-scope requests, an explicit
request for a person (an intent or a phrase), VIP customers (priority boost, optionally a
transfer at once), and the script's own transfer action.

The policy holds no per-call state: what it needs across turns lives in an
`EscalationTrace` inside the dialog state (JSON, stored in Redis with it). The result is
an `Escalation` with a reason, a priority (1-10, higher = sooner), the skills an agent
needs and a short brief: what the caller wanted and what the bot tried. The brief is built
from intent names and state descriptions, never from what the caller said word for word.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bots.expressions import ExpressionError, parse

__all__ = [
    "Escalation", "EscalationPolicy", "EscalationSettings", "EscalationTrace", "TurnSignals",
]

log = logging.getLogger("callfleet.bots.escalation")

_KEEP_INTENTS = 8
_KEEP_TRIED = 10


class EscalationSettings(BaseModel):
    """Escalation rules (a section of the CallFleet settings)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="off = only the script's own transfers escalate")
    anger_labels: list[str] = Field(
        default_factory=lambda: ["anger", "frustration", "annoyance"],
        description="emotion scores that count as anger (the highest one is used)")
    anger_threshold: float = Field(0.85, ge=0, le=1, description="escalate at once above this")
    sustained_anger_threshold: float = Field(0.6, ge=0, le=1,
                                             description="anger that counts towards a streak")
    sustained_anger_turns: int = Field(2, ge=1, le=20, description="turns in a row of anger")
    no_match_turns: int = Field(3, ge=1, le=20,
                                description="turns in a row the bot did not understand")
    low_confidence_threshold: float = Field(0.5, ge=0, le=1,
                                            description="intent confidence below this is low")
    low_confidence_turns: int = Field(3, ge=1, le=20, description="low-confidence turns in a row")
    out_of_scope_turns: int = Field(3, ge=1, le=20, description="out-of-scope turns in a row")
    person_intents: list[str] = Field(default_factory=lambda: ["talk_to_human"],
                                      description="intents that mean 'let me talk to a person'")
    person_phrases: list[str] = Field(
        default_factory=lambda: ["real person", "human being", "a human", "an agent",
                                 "a person", "an operator", "a representative", "someone real",
                                 "speak to someone", "talk to someone"],
        description="phrases (whole words, any case) that mean the same, for when the "
                    "intent model misses them")
    brief_skip_intents: list[str] = Field(
        default_factory=lambda: ["affirm", "deny", "greeting", "goodbye", "oos"],
        description="intents too generic to list under 'caller wanted' in the brief")
    vip_condition: str = Field("customer.vip == true or customer.tier in ['vip', 'platinum']",
                               description="condition over `customer` that marks a VIP")
    vip_transfer_at_start: bool = Field(False, description="VIPs go to a person at once")
    vip_priority_boost: int = Field(2, ge=0, le=9, description="added to a VIP's priority")
    vip_skills: list[str] = Field(default_factory=lambda: ["vip"],
                                  description="skills added for VIPs")
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"anger": 8, "sustained_anger": 7, "person_requested": 6,
                                 "vip": 7},
        description="priority per reason; other reasons use the bot's own priority")
    skills: dict[str, list[str]] = Field(
        default_factory=lambda: {"anger": ["deescalation"], "sustained_anger": ["deescalation"]},
        description="skills added per reason, on top of the bot's own")

    @field_validator("vip_condition")
    @classmethod
    def _valid_condition(cls, value: str) -> str:
        try:
            parse(value)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("priorities")
    @classmethod
    def _priority_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if not 1 <= v <= 10}
        if bad:
            raise ValueError(f"priorities must be 1..10, got {bad}")
        return value


@dataclass
class EscalationTrace:
    """What the policy remembers about one call (JSON-serialisable)."""

    turns: int = 0
    anger_streak: int = 0
    peak_anger: float = 0.0
    no_match_streak: int = 0
    no_match_total: int = 0
    low_confidence_streak: int = 0
    out_of_scope_streak: int = 0
    intents: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)

    def note_tried(self, what: str) -> None:
        """Record something the bot did, for the brief (bounded, no repeats in a row)."""
        if what and (not self.tried or self.tried[-1] != what):
            self.tried = (self.tried + [what])[-_KEEP_TRIED:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> EscalationTrace:
        doc = doc or {}
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TurnSignals:
    """One caller turn as the policy sees it. `text` is used for phrase matching only and
    is never stored or logged."""

    intent: str | None = None
    confidence: float = 1.0
    out_of_scope: bool = False
    emotion: Mapping[str, float] = field(default_factory=dict)
    understood: bool = True  # a script transition matched
    text: str = ""


@dataclass(frozen=True)
class Escalation:
    """Hand this call to a person: why, how urgently, to whom, with what context."""

    reason: str  # anger, sustained_anger, no_match, low_confidence, out_of_scope,
    #              person_requested, vip, script
    detail: str
    priority: int
    skills: tuple[str, ...]
    brief: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "skills": list(self.skills)}


class EscalationPolicy:
    """Applies `EscalationSettings` to a call's trace. Stateless and shared by all calls."""

    def __init__(self, settings: EscalationSettings | None = None) -> None:
        self.settings = settings or EscalationSettings()
        self._vip = parse(self.settings.vip_condition)
        self._person = [re.compile(rf"\b{re.escape(p.lower())}\b") for p in self.settings.person_phrases]

    # ---- per turn -----------------------------------------------------------------------

    def anger(self, emotion: Mapping[str, float]) -> float:
        values = [float(emotion.get(label) or 0.0) for label in self.settings.anger_labels]
        return max(values, default=0.0)

    def observe(self, trace: EscalationTrace, turn: TurnSignals) -> None:
        """Update the trace with one caller turn (call before `check`)."""
        s = self.settings
        trace.turns += 1
        anger = self.anger(turn.emotion)
        trace.peak_anger = max(trace.peak_anger, round(anger, 3))
        trace.anger_streak = trace.anger_streak + 1 if anger >= s.sustained_anger_threshold else 0
        # a turn the script handled (an entity, an FAQ answer) is not a struggle, whatever
        # the intent model said; misses are classified by what the model said
        if turn.understood:
            trace.no_match_streak = trace.low_confidence_streak = trace.out_of_scope_streak = 0
        else:
            trace.no_match_streak += 1
            trace.no_match_total += 1
            # an in-domain guess below the threshold is "unsure", a confident "oos" is out of
            # scope (the intent engine flags both as out_of_scope)
            low = turn.intent not in (None, "oos") and turn.confidence < s.low_confidence_threshold
            oos = turn.out_of_scope and not low
            trace.low_confidence_streak = trace.low_confidence_streak + 1 if low else 0
            trace.out_of_scope_streak = trace.out_of_scope_streak + 1 if oos else 0
        if turn.intent and not turn.out_of_scope and turn.intent not in trace.intents \
                and turn.intent not in s.brief_skip_intents:
            trace.intents = (trace.intents + [turn.intent])[-_KEEP_INTENTS:]

    def person_requested(self, turn: TurnSignals) -> bool:
        if turn.intent in self.settings.person_intents and not turn.out_of_scope:
            return True
        text = turn.text.lower()
        return bool(text) and any(p.search(text) for p in self._person)

    def check(self, trace: EscalationTrace, turn: TurnSignals, customer: Mapping[str, Any],
              skills: list[str] | tuple[str, ...] = ("support",), priority: int = 5,
              ) -> Escalation | None:
        """The escalation this turn calls for, if any (first matching rule wins)."""
        s = self.settings
        if not s.enabled:
            return None
        anger = self.anger(turn.emotion)
        rules = (
            ("person_requested", self.person_requested(turn), "the caller asked for a person"),
            ("anger", anger >= s.anger_threshold, f"the caller sounds very angry ({anger:.2f})"),
            ("sustained_anger", trace.anger_streak >= s.sustained_anger_turns,
             f"the caller has sounded angry for {trace.anger_streak} turns"),
            ("out_of_scope", trace.out_of_scope_streak >= s.out_of_scope_turns,
             f"{trace.out_of_scope_streak} requests in a row were outside what the bot handles"),
            ("low_confidence", trace.low_confidence_streak >= s.low_confidence_turns,
             f"the bot was unsure what the caller meant {trace.low_confidence_streak} turns in a row"),
            ("no_match", trace.no_match_streak >= s.no_match_turns,
             f"the bot did not understand {trace.no_match_streak} turns in a row"),
        )
        for reason, fired, detail in rules:
            if fired:
                return self.escalation(reason, detail, trace, customer, skills, priority)
        return None

    def miss_escalation(self, trace: EscalationTrace, customer: Mapping[str, Any],
                        skills: list[str] | tuple[str, ...] = ("support",), priority: int = 5,
                        ) -> Escalation:
        """The escalation when the script itself gives up on a run of misses (its no-match
        limit with nowhere to go), named after what the misses were."""
        streak = max(trace.no_match_streak, 1)
        if trace.out_of_scope_streak >= streak:
            reason, detail = "out_of_scope", f"{streak} requests in a row were outside what the bot handles"
        elif trace.low_confidence_streak >= streak:
            reason, detail = "low_confidence", f"the bot was unsure what the caller meant {streak} turns in a row"
        else:
            reason, detail = "no_match", f"the bot did not understand {streak} turns in a row"
        return self.escalation(reason, detail, trace, customer, skills, priority)

    # ---- at start and for the script's own transfers -----------------------------------

    def is_vip(self, customer: Mapping[str, Any]) -> bool:
        try:
            return bool(self._vip.evaluate({"customer": dict(customer)}, strict=False))
        except ExpressionError:
            return False  # e.g. a tier that is not a string: not a VIP by this rule

    def at_start(self, trace: EscalationTrace, customer: Mapping[str, Any],
                 skills: list[str] | tuple[str, ...] = ("support",), priority: int = 5,
                 ) -> Escalation | None:
        """A VIP who should go straight to a person (when configured)."""
        s = self.settings
        if s.enabled and s.vip_transfer_at_start and self.is_vip(customer):
            return self.escalation("vip", "VIP customer: routed to a person at once", trace,
                                   customer, skills, priority)
        return None

    def for_transfer(self, trace: EscalationTrace, customer: Mapping[str, Any],
                     skills: list[str] | tuple[str, ...], priority: int, reason: str,
                     ) -> Escalation:
        """The escalation for a transfer the script asked for (VIP rules still apply)."""
        return self.escalation("script", reason, trace, customer, skills, priority,
                               use_reason_priority=False)

    def escalation(self, reason: str, detail: str, trace: EscalationTrace,
                   customer: Mapping[str, Any], skills: list[str] | tuple[str, ...],
                   priority: int, use_reason_priority: bool = True) -> Escalation:
        s = self.settings
        wanted = list(skills) + s.skills.get(reason, [])
        level = max(priority, s.priorities.get(reason, priority)) if use_reason_priority else priority
        vip = self.is_vip(customer)
        if vip:
            wanted += s.vip_skills
            level += s.vip_priority_boost
        unique = tuple(dict.fromkeys(w for w in wanted if w))
        escalation = Escalation(reason, detail, min(10, max(1, level)), unique,
                                self.brief(trace, detail, vip))
        log.info("escalation %s priority %s skills %s", reason, escalation.priority, unique)
        return escalation

    @staticmethod
    def brief(trace: EscalationTrace, detail: str, vip: bool = False) -> str:
        """A few lines an agent reads in two seconds."""
        wanted = ", ".join(i.replace("_", " ") for i in trace.intents) or "not clear yet"
        tried = "; ".join(trace.tried[-5:]) or "nothing yet"
        parts = [f"Why: {detail}.", f"Caller wanted: {wanted}.", f"Bot tried: {tried}."]
        mood = []
        if trace.peak_anger >= 0.5:
            mood.append(f"peak anger {trace.peak_anger:.2f}")
        if trace.no_match_total:
            mood.append(f"{trace.no_match_total} turn(s) not understood")
        if mood:
            parts.append("Signals: " + ", ".join(mood) + ".")
        if vip:
            parts.append("VIP customer.")
        parts.append(f"Turns so far: {trace.turns}.")
        return " ".join(parts)
