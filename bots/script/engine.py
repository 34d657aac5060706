"""The runtime that plays a bot script on a call.

One `ScriptBot` serves every call of a script: it holds no per-call state. The call
session creates a `DialogState` with `new_state`, then for each event awaits `start`,
`on_turn` (speech), `on_dtmf` or `on_no_input` and gets a `BotTurn`: what to say or play
and the side effects (transfer, hang up, ticket, callback, webhook message, do-not-call,
outcome) for the floor to carry out. Lookups are awaited here, so these are async.

A turn, in order: the state's transitions, then the script's global ones (first match
fires: its actions run, then it goes to its state, whose entry actions run and whose
prompt is said; states that do not wait move on with `next`). No match → a re-prompt,
and after the state's limit its `on_no_match` state (or an escalation). After the script,
the escalation policy looks at the turn (anger, repeated misses, a request for a person);
when it fires, the handover line replaces what the bot was about to say.

Nothing in a script can crash a call: conditions that fail to evaluate are false (and
logged), lookups that fail take their failure branch, runaway `next` chains are cut.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bots.escalation import Escalation, EscalationPolicy, TurnSignals
from bots.expressions import ExpressionError
from bots.script.actions import MISS, ActionRunner, Event, FaqLookup, TurnOutput
from bots.script.entities import extract_entities
from bots.script.loader import Script
from bots.script.lookup import LookupFunction
from bots.script.schema import ActionSpec, TransitionSpec
from bots.script.state import DialogState
from bots.script.turns import BotTurn, Hangup, Say, Transfer, TurnInput
from bots.script.variants import choose_variant
from bots.slots import SlotSpec, slot_value

__all__ = ["FaqLookup", "ScriptBot"]

log = logging.getLogger("callfleet.bots.script")

MAX_HOPS = 25  # states entered in one turn before the engine stops a `next` loop


class ScriptBot:
    """Plays one `Script`. `functions` are the lookup functions scripts may call by name;
    `http` the client for service lookups (one is created when needed); `services`
    overrides the script's service base URLs; `faq_lookup` answers FAQ actions."""

    def __init__(self, script: Script, *, functions: Mapping[str, LookupFunction] | None = None,
                 http: httpx.AsyncClient | None = None, services: Mapping[str, str] | None = None,
                 faq_lookup: FaqLookup | None = None, escalation: EscalationPolicy | None = None,
                 entity_extractor: Callable[[str], dict[str, Any]] = extract_entities) -> None:
        self.script = script
        self.spec = script.spec
        self.policy = escalation or EscalationPolicy()
        self.extract = entity_extractor
        functions = dict(functions or {})
        missing = sorted({a.lookup.function for a in _actions(self.spec)
                          if a.lookup and a.lookup.function} - set(functions))
        if missing:
            raise ValueError(f"bot script {script.file}: lookup function(s) {missing} are not "
                             f"registered (registered: {sorted(functions) or 'none'})")
        self.actions = ActionRunner(script, functions, {**self.spec.services, **(services or {})},
                                    faq_lookup, self.policy, http)

    async def aclose(self) -> None:
        """Close the HTTP client the bot created for lookups (not one passed in)."""
        await self.actions.aclose()

    # ---- the API the call session uses ----------------------------------------------------

    def new_state(self, *, call_uuid: str = "", customer: Mapping[str, Any] | None = None,
                  campaign: str | None = None, direction: str | None = None,
                  variant: str | None = None) -> DialogState:
        """A fresh state for a call; picks the A/B variant from the call uuid unless given."""
        spec = self.spec
        if spec.variants and variant is None:
            variant = choose_variant(call_uuid, {k: v.weight for k, v in spec.variants.items()},
                                     salt=spec.bot)
        if variant is not None and variant not in spec.variants:
            raise ValueError(f"bot {spec.bot} has no variant '{variant}' "
                             f"(variants: {sorted(spec.variants) or 'none'})")
        variables = copy.deepcopy(spec.variables)
        if variant is not None:
            variables.update(copy.deepcopy(spec.variants[variant].set))
        return DialogState(script=spec.bot, script_version=self.script.sha, variables=variables,
                           customer=dict(customer or {}), variant=variant,
                           call={"id": call_uuid, "campaign": campaign, "direction": direction})

    async def start(self, state: DialogState) -> BotTurn:
        """The bot's opening. On a state that already started (a resumed call) it repeats
        the current question instead."""
        out = TurnOutput()
        if state.ended:
            return self._finish(state, out)
        state.seq += 1
        if state.state is not None:
            ask = self.spec.states[state.state].ask if state.state in self.spec.states else None
            if ask and ask.prompt:
                out.segments.append(Say(self.actions.render(ask.prompt, state, Event("start"))))
            return self._finish(state, out)
        state.script, state.script_version = self.spec.bot, self.script.sha
        esc = self.policy.at_start(state.trace, state.customer, **self._base())
        if esc is not None:
            self._escalate(state, Event("start"), out, esc)
        else:
            await self._enter(state, self.spec.start, Event("start"), out)
        return self._finish(state, out)

    async def on_turn(self, state: DialogState, turn: TurnInput) -> BotTurn:
        """The caller said something."""
        intent, emotion = turn.intent, turn.emotion
        scores = {k: float(v) for k, v in emotion.scores.items()} if emotion else {}
        label = intent.label if intent is not None and intent.label else ""
        oos = intent is None or intent.out_of_scope or not label
        entities = dict(turn.entities) if turn.entities is not None else self.extract(turn.text or "")
        expect = self.expectation(state)
        if expect is not None and "slot" not in entities:
            if (value := slot_value(expect, turn.text or "")) is not None:
                entities["slot"] = value
        event = Event("speech", turn.text or "", label or "oos",
                       float(intent.confidence) if intent is not None else 0.0, oos,
                       {**scores, "label": emotion.label if emotion else None},
                       entities)
        return await self._handle(state, event, scores)

    def expectation(self, state: DialogState) -> SlotSpec | None:
        """What the current state asks the caller for (`ask.expect`), for recognition."""
        spec = self.spec.states.get(state.state or "")
        return spec.ask.expect if spec is not None and spec.ask is not None else None

    async def on_dtmf(self, state: DialogState, digits: str) -> BotTurn:
        """The caller pressed keys. In a state that expects digits and has no `dtmf`
        transition of its own, keys fill the slot as if spoken: collected until the
        slot's length or '#', then handled as the answer."""
        expect = self.expectation(state)
        own = self.spec.states[state.state].on if state.state in self.spec.states else []
        if expect is None or expect.kind not in ("digits", "number") or any(t.dtmf for t in own):
            return await self._handle(state, Event("dtmf", dtmf=str(digits)), {})
        state.keys += "".join(k for k in str(digits) if k.isdigit())
        if "#" not in str(digits) and len(state.keys) < expect.lengths[1]:
            return self._finish(state, TurnOutput())  # wait for more keys
        keys, state.keys = state.keys, ""
        return await self.on_turn(state, TurnInput(keys, entities={**self.extract(keys), "slot": keys}))

    async def on_no_input(self, state: DialogState) -> BotTurn:
        """The caller said nothing for the media side's no-input timeout."""
        out = TurnOutput()
        if state.ended:
            return self._finish(state, out)
        state.seq += 1
        event = Event("no_input")
        transition = self._find(state, event)
        if transition is not None:
            await self._fire(state, transition, event, out)
            return self._finish(state, out)
        state.no_input += 1
        ask = self._ask(state)
        limit = ask.max_no_input if ask and ask.max_no_input is not None else self.spec.defaults.max_no_input
        if state.no_input > limit:
            target = (ask.on_no_input if ask else None) or self.spec.defaults.on_no_input
            state.trace.note_tried("caller stayed silent")
            if target:
                await self._enter(state, target, event, out)
            else:
                out.segments.append(Say(self.actions.render(self.spec.defaults.no_input_goodbye, state, event)))
                self.actions.end(state, out, Hangup("no input from the caller"))
        else:
            prompts = (ask.no_input if ask and ask.no_input else None) or self.spec.defaults.no_input
            out.segments.append(Say(self.actions.render(prompts[(state.no_input - 1) % len(prompts)], state, event)))
            if not (ask and ask.no_input) and ask and ask.prompt:
                out.segments.append(Say(self.actions.render(ask.prompt, state, event)))
        return self._finish(state, out)

    # ---- turn handling ------------------------------------------------------------------

    async def _handle(self, state: DialogState, event: Event, scores: dict[str, float]) -> BotTurn:
        out = TurnOutput()
        if state.ended:
            return self._finish(state, out)
        state.seq += 1
        state.turns += 1
        state.no_input = 0
        transition = self._find(state, event)
        if transition is not None:
            await self._fire(state, transition, event, out)
        else:
            await self._no_match(state, event, out)
        signals = TurnSignals(event.intent, event.confidence if event.intent else 1.0,
                              event.out_of_scope, scores, out.understood, event.text)
        self.policy.observe(state.trace, signals)
        if not out.ended:
            esc = self.policy.check(state.trace, signals, state.customer, **self._base())
            if esc is None and out.give_up:
                esc = self.policy.miss_escalation(state.trace, state.customer, **self._base())
            if esc is not None:
                out.segments.clear()  # the handover line replaces the answer
                self._escalate(state, event, out, esc)
        return self._finish(state, out)

    def _find(self, state: DialogState, event: Event) -> TransitionSpec | None:
        own = self.spec.states[state.state].on if state.state in self.spec.states else []
        env = self.actions.env(state, event)
        for transition in [*own, *self.spec.global_]:
            if self._matches(transition, event, env):
                return transition
        return None

    def _matches(self, t: TransitionSpec, event: Event, env: dict[str, Any]) -> bool:
        if t.event != event.kind:
            return False
        if t.intent:
            if event.out_of_scope:
                if "oos" not in t.intent:
                    return False
            else:
                floor = t.min_confidence if t.min_confidence is not None else self.spec.defaults.min_confidence
                if event.intent not in t.intent or event.confidence < floor:
                    return False
        elif t.min_confidence is not None and event.confidence < t.min_confidence:
            return False
        if t.entity and any(name not in event.entities for name in t.entity):
            return False
        if t.dtmf and event.dtmf not in t.dtmf:
            return False
        if t.emotion and event.emotion.get("label") not in t.emotion:
            return False
        return t.when is None or self._condition(t.when, env)

    def _condition(self, text: str, env: dict[str, Any]) -> bool:
        try:
            return bool(self.script.expression(text).evaluate(env, strict=False))
        except ExpressionError as exc:
            log.warning("bot %s: condition %r is false: %s", self.spec.bot, text, exc.reason)
            return False

    async def _fire(self, state: DialogState, t: TransitionSpec, event: Event, out: TurnOutput) -> None:
        redirect = await self.actions.run(state, t.do, event, out)
        if out.ended:
            return
        if redirect == MISS:  # e.g. the knowledge base had no answer
            await self._no_match(state, event, out)
            return
        state.no_match = 0
        if redirect or t.goto:
            await self._enter(state, redirect or t.goto, event, out)

    async def _no_match(self, state: DialogState, event: Event, out: TurnOutput) -> None:
        out.understood = False
        state.no_match += 1
        ask = self._ask(state)
        limit = ask.max_no_match if ask and ask.max_no_match is not None else self.spec.defaults.max_no_match
        if state.no_match > limit:
            target = (ask.on_no_match if ask else None) or self.spec.defaults.on_no_match
            if target:
                await self._enter(state, target, event, out)
            else:
                out.give_up = True  # `_handle` escalates, naming the kind of misses
            return
        own = ask.reprompt if ask and ask.reprompt else None
        prompts = own or self.spec.defaults.reprompt
        out.segments.append(Say(self.actions.render(prompts[(state.no_match - 1) % len(prompts)], state, event)))
        if own is None and ask and ask.prompt:
            out.segments.append(Say(self.actions.render(ask.prompt, state, event)))

    async def _enter(self, state: DialogState, name: str, event: Event, out: TurnOutput) -> None:
        for _ in range(MAX_HOPS):
            spec = self.spec.states[name]
            state.state, state.no_match, state.no_input = name, 0, 0
            if spec.description:
                state.trace.note_tried(spec.description)
            redirect = await self.actions.run(state, spec.entry_actions, event, out)
            if out.ended:
                return
            if redirect and redirect != MISS:
                name = redirect
                continue
            if spec.waits:
                if spec.ask and spec.ask.prompt:
                    out.segments.append(Say(self.actions.render(spec.ask.prompt, state, event)))
                return
            if spec.next is None:
                return
            name = self._next(spec.next, state, event)
        log.error("bot %s: more than %d states entered in one turn (a 'next' loop?); "
                  "handing the call over", self.spec.bot, MAX_HOPS)
        self._escalate(state, event, out, self.policy.escalation(
            "script_error", "the bot script looped", state.trace, state.customer, **self._base()))

    def _next(self, rule: str | list, state: DialogState, event: Event) -> str:
        if isinstance(rule, str):
            return rule
        env = self.actions.env(state, event)
        for item in rule:
            if item.when is None or self._condition(item.when, env):
                return item.goto
        return rule[-1].goto

    # ---- helpers ----------------------------------------------------------------------

    def _base(self) -> dict[str, Any]:
        return {"skills": list(self.spec.escalation.skills), "priority": self.spec.escalation.priority}

    def _ask(self, state: DialogState):
        spec = self.spec.states.get(state.state or "")
        return spec.ask if spec else None

    def _escalate(self, state: DialogState, event: Event, out: TurnOutput, esc: Escalation) -> None:
        out.segments.append(Say(self.actions.render(self.spec.escalation.say, state, event)))
        out.escalation = esc
        self.actions.end(state, out, Transfer(esc.skills, esc.priority, esc.detail, esc.brief, esc.reason))

    def _finish(self, state: DialogState, out: TurnOutput) -> BotTurn:
        return BotTurn(tuple(out.segments), tuple(out.actions), state.state or "",
                       out.ended or state.ended, out.escalation, out.understood)


def _actions(spec: Any) -> list[ActionSpec]:
    found = [a for s in spec.states.values() for a in s.enter]
    found += [a for t in spec.global_ for a in t.do]
    found += [a for s in spec.states.values() for t in s.on for a in t.do]
    return found
