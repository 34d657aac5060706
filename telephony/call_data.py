"""The call's own vocabulary: what one turn was and how long its stages took, how the
bot's part of a call ended, and what a person taking the call over is handed.

`CallSession` builds these from the model outputs (`training.models.outputs`) and the
bot's answers; they travel typed to the records (`CallRecorder`), the metrics, the fork
and the skill router. Each is turned into JSON only at a wire, by that wire's
serializer: the Redis call records (`cluster.records.call_state`), the fork's
``transfer`` message (`telephony.media_fork`), the router's request and the agents'
brief (`cluster.routing.models.EscalationRequest.from_handover`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from training.models.outputs import EmotionResult, IntentResult

if TYPE_CHECKING:  # annotations only: the wire modules that import this stay light
    from bots.script.state import DialogState
    from bots.script.turns import Action, Transfer

__all__ = [
    "DEFAULT_HANDOVER_REASON",
    "STAGES",
    "CallOutcome",
    "Handover",
    "HandoverTurn",
    "ResumedCall",
    "TurnProsody",
    "TurnRecord",
    "TurnTiming",
    "percentile",
]

DEFAULT_HANDOVER_REASON = "bot asked for a person"
# the count at the end of the escalation policy's brief (`EscalationPolicy.brief`); the
# handover restates it from its own transcript, so the two always agree
_TURN_COUNT = re.compile(r"Turns so far: \d+\.")


@dataclass(frozen=True)
class TurnTiming:
    """Milliseconds from the end of the caller's speech to the end of each stage of one
    turn (cumulative); None where a stage was not measured."""

    endpoint_ms: float | None = None  # VAD decided the utterance was over
    prep_ms: float | None = None  # prosody measured, audio resampled for ASR
    asr_ms: float | None = None
    asr_engine_ms: float | None = None  # of which the ASR batch itself (the rest is queueing)
    nlu_ms: float | None = None  # intent and emotion both answered
    bot_ms: float | None = None
    first_audio_ms: float | None = None

    def measured(self) -> dict[str, float]:
        """Stage name -> ms, for the stages that were measured."""
        return {name: float(value) for name in STAGES
                if (value := getattr(self, name)) is not None}


#: the turn stages in order, as metrics, records and benchmarks name them
STAGES: tuple[str, ...] = tuple(f.name for f in fields(TurnTiming))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile of latencies (`q` in 0..1); None for no values. The
    one definition the gateway's turn metrics, the call simulator and the benchmarks
    share, so their p50/p95 figures agree."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True)
class TurnProsody:
    """How the caller sounded: absolute cues and z-scores against their own baseline
    (None where the baseline has no earlier value or the utterance no such cue)."""

    loudness_db: float
    pitch_hz: float | None = None
    loudness_z: float | None = None
    pitch_z: float | None = None


@dataclass(frozen=True)
class TurnRecord:
    """One caller event and the bot's answer, as the call records keep it: speech
    (`caller` with what the models made of it), keys (`dtmf`) or silence (`no_input`)."""

    n: int  # the dialog's turn count after this event
    bot: str  # what the bot said back
    bot_state: str
    caller: str | None = None
    dtmf: str | None = None
    no_input: bool = False
    intent: IntentResult | None = None
    emotion: EmotionResult | None = None
    prosody: TurnProsody | None = None
    actions: tuple[Action, ...] = ()
    timing: TurnTiming | None = None

    @property
    def kind(self) -> Literal["speech", "dtmf", "no_input"]:
        if self.no_input:
            return "no_input"
        return "dtmf" if self.dtmf is not None else "speech"


@dataclass(frozen=True)
class ResumedCall:
    """What the records hold of a call whose fork moved to this replica mid-call."""

    state: DialogState
    turns: tuple[TurnRecord, ...] = ()


@dataclass(frozen=True)
class HandoverTurn:
    """One turn as the person taking the call over sees it."""

    caller: str | None  # None for keys or silence
    bot: str
    intent: IntentResult | None = None
    emotion: EmotionResult | None = None


@dataclass(frozen=True)
class Handover:
    """Everything a person taking the call over is handed: why, which skills, how urgent,
    the bot's brief and the conversation so far. Built once, by the call session
    (`Handover.build`), and carried unchanged over the fork and the ESL controller to the
    skill router."""

    reason: str = DEFAULT_HANDOVER_REASON
    skills: tuple[str, ...] = ()
    priority: int = 0
    brief: str = ""
    rule: str = "script"  # the escalation rule that fired, or "script"
    vip: bool = False
    customer: Mapping[str, Any] = field(default_factory=dict)
    campaign_id: str | None = None
    turns: tuple[HandoverTurn, ...] = ()

    @classmethod
    def build(cls, transfer: Transfer, turns: Sequence[TurnRecord],
              customer: Mapping[str, Any] | None = None,
              campaign_id: str | None = None) -> Handover:
        """The handover for the bot's `transfer` after `turns` (every turn of the call)."""
        customer = dict(customer or {})
        return cls(
            reason=transfer.reason or DEFAULT_HANDOVER_REASON,
            skills=tuple(transfer.skills),
            priority=int(transfer.priority),
            # the policy counts the caller turns it observed, which misses the turn a
            # script transfer fires on (and key presses collected for a slot); the agent
            # reads the count next to the transcript, so it is the transcript's
            brief=_TURN_COUNT.sub(f"Turns so far: {len(turns)}.", transfer.brief),
            rule=transfer.escalation_reason,
            vip=bool(customer.get("vip") or customer.get("tier") == "vip"),
            customer=customer,
            campaign_id=campaign_id or None,
            turns=tuple(HandoverTurn(t.caller, t.bot, t.intent, t.emotion) for t in turns),
        )


@dataclass
class CallOutcome:
    """How the bot's part of a call ended. The session fills it in as the call goes and
    records it once, when the fork closes."""

    reason: str = "caller hung up"
    handover: Handover | None = None  # set when the bot handed the call to a person
    turns: int = 0
    barge_ins: int = 0
    dtmf: str = ""
    heard: tuple[str, ...] = ()  # segment texts the module reported as played out
    cut: tuple[str, ...] = ()  # segments stopped by barge-in
    # caller input over a bound (`gateway.limits`), by kind: "events" (queue full),
    # "dtmf_rate" (keys too fast), "dtmf_record" (keys past the recorded length)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def escalation(self) -> str | None:
        """Why the call went to a person (None when it did not)."""
        return self.handover.reason if self.handover else None
