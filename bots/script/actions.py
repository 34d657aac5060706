"""Running a script's actions: say, play, set, lookup, FAQ, transfer, hang up, ticket,
callback, webhook message, do-not-call, outcome.

`ActionRunner` is the half of the engine that touches the outside world (lookups and the
knowledge base) and renders templates; `engine.ScriptBot` decides which actions run.
Side effects for the floor are not performed here: they are appended to the turn's output
as typed actions (`turns.py`).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from bots.escalation import Escalation, EscalationPolicy
from bots.script.loader import Script
from bots.script.lookup import LookupFunction, call_function, call_service
from bots.script.schema import ActionSpec
from bots.script.state import DialogState
from bots.script.turns import (
    Callback,
    DoNotCall,
    Hangup,
    Outcome,
    Play,
    Say,
    Segment,
    Ticket,
    Transfer,
    WebhookMessage,
)

__all__ = ["MISS", "ActionRunner", "Event", "FaqLookup", "TurnOutput"]

log = logging.getLogger("callfleet.bots.script")

#: ``faq_lookup(question) -> answer or None``; sync or async. The lead wires the KB here.
FaqLookup = Callable[[str], "str | None | Awaitable[str | None]"]

FAQ_TIMEOUT_S = 3.0
MISS = "\x00miss"  # an FAQ action found nothing and has no on_miss: a no-match


@dataclass
class Event:
    kind: str  # start, speech, dtmf, no_input
    text: str = ""
    intent: str | None = None
    confidence: float = 0.0
    out_of_scope: bool = False
    emotion: dict[str, Any] = field(default_factory=dict)
    entities: dict[str, Any] = field(default_factory=dict)
    dtmf: str | None = None


@dataclass
class TurnOutput:
    segments: list[Segment] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    ended: bool = False
    escalation: Escalation | None = None
    understood: bool = True
    give_up: bool = False  # the no-match limit was reached with no on_no_match state



class ActionRunner:
    """Runs action lists against a call's `DialogState`; shared by all calls."""

    def __init__(self, script: Script, functions: Mapping[str, LookupFunction],
                 services: Mapping[str, str], faq_lookup: FaqLookup | None,
                 policy: EscalationPolicy, http: httpx.AsyncClient | None) -> None:
        self.script = script
        self.spec = script.spec
        self.functions = dict(functions)
        self.services = dict(services)
        self.faq_lookup = faq_lookup
        self.policy = policy
        self._http = http
        self._own_http = False

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()

    async def run(self, state: DialogState, actions: list[ActionSpec], event: Event,
                   out: TurnOutput) -> str | None:
        """Run actions in order; returns a state to go to (lookup failure, FAQ miss)."""
        for action in actions:
            kind, arg = action.kind, action.arg
            if kind == "say":
                out.segments.append(Say(self.render(arg, state, event)))
            elif kind == "play":
                out.segments.append(Play(arg.file, self.render(arg.text, state, event)))
            elif kind == "set":
                env = self.env(state, event)
                for name, value in arg.items():
                    state.variables[name] = self.value(value, env)
            elif kind == "lookup":
                target = await self._lookup(state, arg, event)
                if target:
                    return target
            elif kind == "faq":
                answer = await self._faq(event.text) if event.text else None
                if answer:
                    out.segments.append(Say(answer))
                    state.trace.note_tried("answered from the knowledge base")
                else:
                    state.trace.note_tried("found no knowledge-base answer")
                    return arg.on_miss or MISS
            elif kind == "transfer":
                skills = [self.render(s, state, event) for s in arg.all_skills]
                esc = self.policy.for_transfer(state.trace, state.customer, skills, arg.priority,
                                               self.render(arg.reason, state, event))
                out.escalation = esc
                self.end(state, out, Transfer(esc.skills, esc.priority, esc.detail, esc.brief, esc.reason))
                return None
            elif kind == "hangup":
                self.end(state, out, Hangup(self.render(arg.reason, state, event)))
                return None
            else:
                out.actions.append(self._side_effect(kind, arg, state, event))
        return None

    def _side_effect(self, kind: str, arg: Any, state: DialogState, event: Event) -> Any:
        env = self.env(state, event)
        if kind == "ticket":
            state.trace.note_tried(f"opened a {arg.queue} ticket")
            return Ticket(arg.queue, self.render(arg.subject, state, event), arg.priority,
                          {k: self.value(v, env) for k, v in arg.fields.items()})
        if kind == "callback":
            state.trace.note_tried("scheduled a callback")
            when = self.render(arg.when, state, event).strip()
            return Callback(when or "unspecified", self.render(arg.reason, state, event))
        if kind == "webhook":
            return WebhookMessage(arg.webhook, arg.event,
                                  {k: self.value(v, env) for k, v in arg.payload.items()})
        if kind == "do_not_call":
            state.trace.note_tried("added the number to the do-not-call list")
            return DoNotCall(arg.reason)
        state.outcome = arg.name
        return Outcome(arg.name, arg.converted)

    async def _lookup(self, state: DialogState, spec: Any, event: Event) -> str | None:
        timeout = spec.timeout_s or self.spec.defaults.lookup_timeout_s
        env = self.env(state, event)
        if spec.function:
            args = {k: self.value(v, env) for k, v in spec.args.items()}
            result = await call_function(spec.function, self.functions[spec.function], args, timeout)
            source = spec.function
        else:
            http = spec.http
            base = self.services.get(http.service, "").rstrip("/")
            path = self.script.template(http.path).render(env, quote=lambda v: quote(v, safe="")).text
            body = {k: self.value(v, env) for k, v in http.body.items()} if http.body else None
            result = await call_service(self._client(), http.service, base + path, http.method,
                                        body, timeout)
            source = http.service
        state.variables["lookup"] = result.as_variable()
        if result.ok:
            state.variables[spec.into] = result.value
            state.trace.note_tried(f"looked up {spec.into} ({source})")
            return None
        state.trace.note_tried(f"looked up {spec.into} ({source}): {result.error}")
        if result.error == "not_found" and spec.on_not_found:
            return spec.on_not_found
        return spec.on_failure

    async def _faq(self, question: str) -> str | None:
        if self.faq_lookup is None:
            return None
        try:
            if inspect.iscoroutinefunction(self.faq_lookup):
                answer = await asyncio.wait_for(self.faq_lookup(question), FAQ_TIMEOUT_S)
            else:
                answer = await asyncio.wait_for(asyncio.to_thread(self.faq_lookup, question),
                                                FAQ_TIMEOUT_S)
        except Exception as exc:  # a broken knowledge base is a miss, not a dropped call
            log.warning("bot %s: FAQ lookup failed: %s", self.spec.bot, type(exc).__name__)
            return None
        return answer.strip() if isinstance(answer, str) and answer.strip() else None

    # ---- helpers -------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http, self._own_http = httpx.AsyncClient(), True
        return self._http

    def end(self, state: DialogState, out: TurnOutput, action: Any) -> None:
        out.actions.append(action)
        out.ended = state.ended = True

    def env(self, state: DialogState, event: Event) -> dict[str, Any]:
        env = dict(state.variables)
        env.update(
            intent=event.intent, confidence=event.confidence, out_of_scope=event.out_of_scope,
            emotion=event.emotion, entities=event.entities, text=event.text, dtmf=event.dtmf,
            event=event.kind, turns=state.turns, no_match=state.no_match,
            no_input=state.no_input, customer=state.customer, call=state.call,
            variant=state.variant, state=state.state, lookup=state.variables.get("lookup", {}),
        )
        return env

    def render(self, text: str, state: DialogState, event: Event) -> str:
        rendered = self.script.template(text).render(self.env(state, event))
        if rendered.missing:
            log.info("bot %s state %s: no value for %s", self.spec.bot, state.state,
                     ", ".join(rendered.missing))
        return " ".join(rendered.text.split())

    def value(self, value: Any, env: dict[str, Any]) -> Any:
        """A `set`/argument value: strings are templates (one placeholder keeps its type)."""
        if not isinstance(value, str):
            return copy.deepcopy(value)
        template = self.script.template(value)
        result = template.value(env) if template.is_single_value else template.render(env).text
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            result = str(result)
        return result
