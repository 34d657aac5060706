"""The bot script format, as pydantic models (the shape; `checker` does the meaning).

See ``docs/bots.md`` for the reference a script author reads. Every model forbids unknown
keys, so a typo (``got: offer``) is an error at load, not a transition that never fires.
An action is a one-key mapping (``- say: "..."``, ``- transfer: {...}``); a few take a
shorthand (``- hangup: true``, ``- faq: {}``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bots.slots import SlotSpec

__all__ = [
    "ACTION_KINDS", "ActionSpec", "AskSpec", "CallbackSpec", "DefaultsSpec", "DoNotCallSpec",
    "EscalationSpec", "FaqSpec", "HangupSpec", "HttpSpec", "LookupSpec", "NextRule",
    "OutcomeSpec", "PlaySpec", "ScriptSpec", "StateSpec", "TicketSpec", "TransferSpec",
    "TransitionSpec", "VariantSpec", "WebhookSpec",
]

NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"
VAR_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    """``intent: refund_request`` and ``intent: [a, b]`` both mean a list."""
    if value is None or isinstance(value, list):
        return value
    return [value]


# ---- actions ------------------------------------------------------------------------


class PlaySpec(_Spec):
    """A recorded prompt. `file` is played by the media side (a FreeSWITCH sound path or
    URL); `text` is what the caller hears through TTS where the file cannot be played, and
    what `bot chat` shows."""

    file: str = Field(min_length=1)
    text: str = Field(min_length=1)


class HttpSpec(_Spec):
    service: str = Field(description="a name from the script's `services` (base URL)")
    path: str = Field(description="path template; placeholders are URL-quoted")
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | None = Field(None, description="JSON body; string values are templates")


class LookupSpec(_Spec):
    """Fetch data into a variable, from a registered function or an HTTP service."""

    function: str | None = Field(None, pattern=VAR_NAME)
    http: HttpSpec | None = None
    args: dict[str, Any] = Field(default_factory=dict, description="function arguments (templates)")
    into: str = Field(pattern=VAR_NAME, description="variable that receives the result")
    timeout_s: float | None = Field(None, gt=0, le=30)
    on_failure: str = Field(description="state entered on timeout or error")
    on_not_found: str | None = Field(None, description="state when nothing is found "
                                     "(function returned None, HTTP 404); default on_failure")

    @model_validator(mode="after")
    def _one_source(self) -> LookupSpec:
        if (self.function is None) == (self.http is None):
            raise ValueError("a lookup needs exactly one of 'function' or 'http'")
        return self


class TransferSpec(_Spec):
    skill: str | None = None
    skills: list[str] = Field(default_factory=list)
    priority: int = Field(5, ge=1, le=10, description="1 = lowest, 10 = most urgent")
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _some_skill(self) -> TransferSpec:
        if not self.skill and not self.skills:
            raise ValueError("a transfer needs 'skill' or 'skills'")
        return self

    @property
    def all_skills(self) -> list[str]:
        return ([self.skill] if self.skill else []) + [s for s in self.skills if s != self.skill]


class TicketSpec(_Spec):
    queue: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    fields: dict[str, Any] = Field(default_factory=dict, description="string values are templates")


class CallbackSpec(_Spec):
    when: str = Field(description="template, e.g. '{entities.date} {entities.time_of_day}'")
    reason: str = "caller asked to be called back"


class WebhookSpec(_Spec):
    webhook: str = Field(description="a name from the script's `webhooks`")
    event: str = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict, description="string values are templates")


class HangupSpec(_Spec):
    reason: str = "bot closed the call"


class DoNotCallSpec(_Spec):
    reason: str = "caller asked not to be called again"


class FaqSpec(_Spec):
    on_miss: str | None = Field(None, description="state when the knowledge base has no "
                                "answer; default: treat the turn as not understood")


class OutcomeSpec(_Spec):
    name: str = Field(pattern=NAME)
    converted: bool = False


_SHORTHAND = {"hangup": "reason", "do_not_call": "reason", "outcome": "name"}
ACTION_KINDS = ("say", "play", "lookup", "set", "transfer", "ticket", "callback", "webhook",
                "hangup", "do_not_call", "faq", "outcome")


class ActionSpec(_Spec):
    """Exactly one of the fields is set."""

    say: str | None = None
    play: PlaySpec | None = None
    lookup: LookupSpec | None = None
    set: dict[str, Any] | None = None
    transfer: TransferSpec | None = None
    ticket: TicketSpec | None = None
    callback: CallbackSpec | None = None
    webhook: WebhookSpec | None = None
    hangup: HangupSpec | None = None
    do_not_call: DoNotCallSpec | None = None
    faq: FaqSpec | None = None
    outcome: OutcomeSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            shown = list(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"an action is a mapping with exactly one key, got {shown}; "
                             f"expected one of: {', '.join(ACTION_KINDS)}")
        (kind, arg), = value.items()
        if kind in _SHORTHAND and (arg is True or arg is None):
            return {kind: {}}
        if kind in _SHORTHAND and isinstance(arg, str):
            return {kind: {_SHORTHAND[kind]: arg}}
        if kind == "faq" and (arg is True or arg is None):
            return {kind: {}}
        if arg is None and kind in ACTION_KINDS:
            raise ValueError(f"action '{kind}' has no value (write what to {kind}, or remove it)")
        return value

    @property
    def kind(self) -> str:
        return next(name for name in ACTION_KINDS if getattr(self, name) is not None)

    @property
    def arg(self) -> Any:
        return getattr(self, self.kind)


# ---- transitions and states -----------------------------------------------------------


class TransitionSpec(_Spec):
    """Fires when every condition given holds. Without `dtmf` or `silence` it is tried
    on spoken turns; with `dtmf` on key presses; with ``silence: true`` on no-input."""

    intent: list[str] | None = None
    entity: list[str] | None = None
    dtmf: list[str] | None = None
    silence: bool = False
    emotion: list[str] | None = None
    min_confidence: float | None = Field(None, ge=0, le=1)
    when: str | None = None
    do: list[ActionSpec] = Field(default_factory=list)
    goto: str | None = None

    @field_validator("intent", "entity", "emotion", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("dtmf", mode="before")
    @classmethod
    def _dtmf(cls, value: Any) -> Any:
        value = _as_list(value)
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v
                for v in value] if value else value

    @model_validator(mode="after")
    def _consistent(self) -> TransitionSpec:
        has_condition = any((self.intent, self.entity, self.dtmf, self.silence, self.emotion,
                             self.when, self.min_confidence is not None))
        if not has_condition:
            raise ValueError("a transition needs a condition: intent, entity, dtmf, silence, "
                             "emotion, min_confidence or when")
        if self.silence and (self.intent or self.entity or self.dtmf or self.emotion):
            raise ValueError("'silence: true' cannot be combined with intent, entity, dtmf "
                             "or emotion (nothing was said)")
        if self.dtmf and (self.intent or self.entity):
            raise ValueError("'dtmf' cannot be combined with intent or entity")
        if not self.do and self.goto is None:
            raise ValueError("a transition needs 'do' actions, a 'goto' state, or both")
        return self

    @property
    def event(self) -> str:
        return "no_input" if self.silence else "dtmf" if self.dtmf else "speech"


class AskSpec(_Spec):
    """The state waits for the caller. `reprompt`/`no_input` are said in turn on each
    miss; after `max_no_match`/`max_no_input` misses the state goes to
    `on_no_match`/`on_no_input` (defaults from the script's `defaults`)."""

    prompt: str | None = None
    reprompt: list[str] = Field(default_factory=list)
    no_input: list[str] = Field(default_factory=list)
    max_no_match: int | None = Field(None, ge=0, le=10)
    max_no_input: int | None = Field(None, ge=0, le=10)
    on_no_match: str | None = None
    on_no_input: str | None = None
    expect: SlotSpec | None = Field(None, description="what the answer is (digits, order_id, "
                                    "yes_no, number, choice): recognition listens for it and "
                                    "the value arrives as the 'slot' entity; keys fill digits")


class NextRule(_Spec):
    when: str | None = None
    goto: str


class StateSpec(_Spec):
    description: str | None = Field(None, description="what the bot does here, in words; "
                                    "it goes into the agent's brief on escalation")
    say: str | None = None
    enter: list[ActionSpec] = Field(default_factory=list)
    ask: AskSpec | None = None
    on: list[TransitionSpec] = Field(default_factory=list)
    next: str | list[NextRule] | None = None

    @model_validator(mode="after")
    def _waits_or_moves(self) -> StateSpec:
        if self.next is not None and (self.ask is not None or self.on):
            raise ValueError("a state either waits for the caller ('ask'/'on') or moves on "
                             "('next'), not both")
        return self

    @property
    def waits(self) -> bool:
        return self.ask is not None or bool(self.on)

    @property
    def entry_actions(self) -> list[ActionSpec]:
        return ([ActionSpec(say=self.say)] if self.say else []) + list(self.enter)


# ---- the script -----------------------------------------------------------------------


class DefaultsSpec(_Spec):
    max_no_match: int = Field(2, ge=0, le=10, description="reprompts before on_no_match")
    max_no_input: int = Field(2, ge=0, le=10, description="reprompts before on_no_input")
    on_no_match: str | None = Field(None, description="state; default: escalate to a person")
    on_no_input: str | None = Field(None, description="state; default: say goodbye, hang up")
    min_confidence: float = Field(0.5, ge=0, le=1, description="intent transitions need this")
    lookup_timeout_s: float = Field(3.0, gt=0, le=30)
    reprompt: list[str] = Field(default_factory=lambda: [
        "Sorry, I didn't catch that. Could you say it another way?"])
    no_input: list[str] = Field(default_factory=lambda: ["Are you still there?"])
    no_input_goodbye: str = Field(
        "I'm sorry, I can't hear you. Please call us again. Goodbye.",
        description="said before hanging up when silence reaches the limit and no "
                    "on_no_input state is set")


class EscalationSpec(_Spec):
    """How this bot hands over when the escalation policy fires."""

    say: str = "I'm connecting you with one of my colleagues now. Please hold."
    skills: list[str] = Field(default_factory=lambda: ["support"])
    priority: int = Field(5, ge=1, le=10)


class VariantSpec(_Spec):
    weight: float = Field(1.0, gt=0, le=1000)
    set: dict[str, Any] = Field(default_factory=dict, description="variables this variant sets")


class ScriptSpec(_Spec):
    bot: str = Field(pattern=NAME, description="the bot's name")
    description: str = ""
    version: str | int = 1
    intents: str = Field(description="intent data file, relative to the script")
    start: str
    variables: dict[str, Any] = Field(default_factory=dict)
    services: dict[str, str] = Field(default_factory=dict, description="HTTP base URLs by name")
    webhooks: list[str] = Field(default_factory=list, description="webhook names the cluster maps")
    variants: dict[str, VariantSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)
    global_: list[TransitionSpec] = Field(default_factory=list, alias="global")
    states: dict[str, StateSpec] = Field(min_length=1)
