"""The meaning checks of a script whose shape is valid: names that must exist do, every
state can be reached, conditions and templates parse and use known variables.

Everything is collected, nothing raised: the author sees all problems at once, each with
the line (and the column inside a condition or template) and what was expected. The
compiled conditions and templates are returned so the runtime never parses again.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bots.expressions import Expression, ExpressionError, parse
from bots.script.entities import ENTITY_NAMES
from bots.script.schema import ActionSpec, ScriptSpec, TransitionSpec
from bots.script.templates import Template, TemplateError
from bots.script.yaml_lines import LocatedDocument

__all__ = ["BUILTIN_VARIABLES", "CheckResult", "check_spec", "read_intent_names"]

Path_ = tuple[Any, ...]

#: variables every script can read; sub-fields listed where they are fixed
BUILTIN_VARIABLES: dict[str, tuple[str, ...] | None] = {
    "intent": (), "confidence": (), "out_of_scope": (), "text": (), "dtmf": (), "event": (),
    "turns": (), "no_match": (), "no_input": (), "variant": (), "state": (),
    "emotion": None,  # any score name, plus `label`
    "entities": ENTITY_NAMES,
    "customer": None,  # whatever the call metadata carries
    "call": ("id", "campaign", "direction"),
    "lookup": ("ok", "error", "status"),
}
KNOWN_EMOTIONS = {"anger", "neutral", "positive"}
_DTMF = re.compile(r"[0-9*#]{1,16}")  # fullmatch: no trailing newline
_TERMINAL = {"hangup", "transfer"}


@dataclass
class CheckResult:
    problems: list[Any] = field(default_factory=list)
    expressions: dict[str, Expression] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    intents: frozenset[str] = frozenset()
    intents_file: Path | None = None


#: the largest intent data file a script may name (the shipped ones are under 25 KiB)
MAX_INTENT_FILE_BYTES = 2 * 1024 * 1024


def read_intent_names(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(intent names, emotion names) of an intent data file (`bots/data/*.yaml` format).
    Raises OSError, ValueError, yaml.YAMLError or RecursionError (nesting past Python's
    limit) for a file that is not one; reads at most MAX_INTENT_FILE_BYTES."""
    if path.exists() and not path.is_file():  # a FIFO or /dev/zero would never end
        raise OSError("not a regular file")
    with path.open("rb") as handle:
        raw = handle.read(MAX_INTENT_FILE_BYTES + 1)
    if len(raw) > MAX_INTENT_FILE_BYTES:
        raise ValueError(f"larger than {MAX_INTENT_FILE_BYTES} bytes")
    doc = yaml.safe_load(raw.decode("utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("intents"), dict):
        raise ValueError("expected a top-level 'intents' mapping")
    emotions = doc.get("emotions") if isinstance(doc.get("emotions"), dict) else {}
    return frozenset(map(str, doc["intents"])), frozenset(map(str, emotions))


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), sorted(map(str, choices)), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _listing(choices: Any, limit: int = 12) -> str:
    names = sorted(map(str, choices))
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"one of: {shown}" if names else "(none declared)"


class _Checker:
    def __init__(self, spec: ScriptSpec, doc: LocatedDocument, base_dir: Path,
                 functions: frozenset[str] | None) -> None:
        self.spec = spec
        self.doc = doc
        self.base_dir = base_dir
        self.functions = functions
        self.result = CheckResult()
        self.emotions = set(KNOWN_EMOTIONS)
        self.variables = self._declared_variables()

    # ---- helpers --------------------------------------------------------------------

    def error(self, path: Path_, message: str, expected: str = "", *, line: int = 0,
              column: int = 0, severity: str = "error") -> None:
        problem = self.doc.problem(path, message, expected, severity)
        if line:
            problem = type(problem)(problem.file, line, column, message, expected, severity)  # type: ignore[arg-type]
        self.result.problems.append(problem)

    def point(self, path: Path_, text: str, position: int) -> tuple[int, int]:
        return self.doc.locate(path).column_in(text, position, self.doc.source_lines)

    def _declared_variables(self) -> set[str]:
        names = set(self.spec.variables)
        for variant in self.spec.variants.values():
            names |= set(variant.set)
        for _, action in self._all_actions():
            if action.set:
                names |= set(action.set)
            if action.lookup:
                names.add(action.lookup.into)
        return names

    def _all_transitions(self) -> Iterator[tuple[Path_, TransitionSpec]]:
        for i, t in enumerate(self.spec.global_):
            yield ("global", i), t
        for name, state in self.spec.states.items():
            for i, t in enumerate(state.on):
                yield ("states", name, "on", i), t

    def _action_lists(self) -> Iterator[tuple[Path_, list[ActionSpec]]]:
        for name, state in self.spec.states.items():
            yield ("states", name, "enter"), list(state.enter)
        for path, t in self._all_transitions():
            yield path + ("do",), list(t.do)

    def _all_actions(self) -> Iterator[tuple[Path_, ActionSpec]]:
        for path, actions in self._action_lists():
            for i, action in enumerate(actions):
                yield path + (i,), action

    # ---- checks -----------------------------------------------------------------------

    def run(self) -> CheckResult:
        self.check_intents_file()
        self.check_states()
        self.check_transitions()
        self.check_actions()
        self.check_texts()
        self.check_reachability()
        for name in set(self.spec.variables) & set(BUILTIN_VARIABLES):
            self.error(("variables", name), f"'{name}' is a built-in variable and cannot be "
                       "declared", "another name")
        return self.result

    def check_intents_file(self) -> None:
        path = (self.base_dir / self.spec.intents).resolve()
        self.result.intents_file = path
        try:
            intents, emotions = read_intent_names(path)
        except FileNotFoundError:
            self.error(("intents",), f"intent data file not found: {path}",
                       "a path relative to the script, e.g. ../data/shop_intents.yaml")
            return
        except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
            self.error(("intents",), f"cannot read intent data file {path}: {exc}",
                       "the bots/data/*.yaml format (intents: {name: {examples: [...]}})")
            return
        self.result.intents = intents
        self.emotions |= emotions

    def state_ref(self, path: Path_, name: str | None) -> None:
        if name is not None and name not in self.spec.states:
            self.error(path, f"unknown state '{name}'{_suggest(name, self.spec.states)}",
                       f"a state defined under 'states:' ({_listing(self.spec.states)})")

    def check_states(self) -> None:
        spec = self.spec
        self.state_ref(("start",), spec.start)
        self.state_ref(("defaults", "on_no_match"), spec.defaults.on_no_match)
        self.state_ref(("defaults", "on_no_input"), spec.defaults.on_no_input)
        for name, state in spec.states.items():
            base = ("states", name)
            if state.ask:
                self.state_ref(base + ("ask", "on_no_match"), state.ask.on_no_match)
                self.state_ref(base + ("ask", "on_no_input"), state.ask.on_no_input)
            if isinstance(state.next, str):
                self.state_ref(base + ("next",), state.next)
            elif isinstance(state.next, list):
                for i, rule in enumerate(state.next):
                    self.state_ref(base + ("next", i, "goto"), rule.goto)
                    if rule.when is not None:
                        self.condition(base + ("next", i, "when"), rule.when)
                if not state.next or state.next[-1].when is not None:
                    self.error(base + ("next",), f"state '{name}': the last 'next' rule has a "
                               "'when', so the bot could get stuck here",
                               "a last rule with only 'goto' (the default)")
            kinds = [a.kind for a in state.entry_actions]
            if not state.waits and state.next is None and not _TERMINAL & set(kinds):
                self.error(base, f"state '{name}' neither waits for the caller, moves on, nor "
                           "ends the call", "'ask'/'on', a 'next' state, or a hangup/transfer action")
            if state.waits and not state.on and not spec.global_:
                self.error(base, f"state '{name}' waits, but nothing the caller says can leave it",
                           "transitions under 'on:' or 'global:'", severity="warning")

    def check_transitions(self) -> None:
        for path, t in self._all_transitions():
            for i, name in enumerate(t.intent or []):
                if self.result.intents and name not in self.result.intents:
                    self.error(path + ("intent", i) if len(t.intent or []) > 1 else path + ("intent",),
                               f"unknown intent '{name}'{_suggest(name, self.result.intents)}",
                               f"an intent of {self.spec.intents} ({_listing(self.result.intents)})")
            for name in t.entity or []:
                if name not in ENTITY_NAMES:
                    self.error(path + ("entity",), f"unknown entity '{name}'{_suggest(name, ENTITY_NAMES)}",
                               _listing(ENTITY_NAMES))
            for name in t.emotion or []:
                if name not in self.emotions:
                    self.error(path + ("emotion",), f"unknown emotion '{name}'",
                               _listing(self.emotions), severity="warning")
            for key in t.dtmf or []:
                if not isinstance(key, str) or not _DTMF.fullmatch(key):
                    self.error(path + ("dtmf",), f"invalid DTMF keys '{key}'",
                               "digits, '*' or '#', e.g. \"1\" or \"#\"")
            if t.when is not None:
                self.condition(path + ("when",), t.when)
            self.state_ref(path + ("goto",), t.goto)

    def check_actions(self) -> None:
        spec = self.spec
        for path, actions in self._action_lists():
            kinds = [a.kind for a in actions]
            for i, kind in enumerate(kinds[:-1]):
                if kind in _TERMINAL:
                    self.error(path + (i + 1,), f"this action comes after a {kind} and never runs",
                               f"nothing after '{kind}'", severity="warning")
                    break
        for path, action in self._all_actions():
            if action.lookup:
                lk = action.lookup
                self.state_ref(path + ("lookup", "on_failure"), lk.on_failure)
                self.state_ref(path + ("lookup", "on_not_found"), lk.on_not_found)
                if lk.function and self.functions is not None and lk.function not in self.functions:
                    self.error(path + ("lookup", "function"), f"unknown lookup function "
                               f"'{lk.function}'{_suggest(lk.function, self.functions)}",
                               f"a registered function ({_listing(self.functions)})")
                if lk.http and lk.http.service not in spec.services:
                    self.error(path + ("lookup", "http", "service"), f"unknown service "
                               f"'{lk.http.service}'", f"a name under 'services:' ({_listing(spec.services)})")
            if action.faq:
                self.state_ref(path + ("faq", "on_miss"), action.faq.on_miss)
            if action.webhook and action.webhook.webhook not in spec.webhooks:
                self.error(path + ("webhook", "webhook"), f"unknown webhook "
                           f"'{action.webhook.webhook}'", f"a name listed under 'webhooks:' "
                           f"({_listing(spec.webhooks)})")
            if action.set:
                for name in action.set:
                    if name in BUILTIN_VARIABLES or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                        self.error(path + ("set", name), f"cannot set '{name}'",
                                   "a plain name that is not a built-in variable")

    # ---- conditions and templates ------------------------------------------------------

    def condition(self, path: Path_, text: str) -> None:
        try:
            expression = parse(text)
        except ExpressionError as exc:
            line, column = self.point(path, text, exc.position)
            self.error(path, f"bad condition: {exc.reason}", "a condition such as "
                       "\"intent == 'deny' and confidence > 0.6\"", line=line, column=column)
            return
        self.result.expressions[text] = expression
        for var, position in expression.variable_positions.items():
            self.variable(path, text, var, position)

    def template(self, path: Path_, text: Any) -> None:
        if not isinstance(text, str) or text in self.result.templates:
            return
        try:
            template = Template(text)
        except TemplateError as exc:
            line, column = self.point(path, text, exc.position)
            self.error(path, f"bad template: {exc.reason}", "text with placeholders such as "
                       "{customer.name}", line=line, column=column)
            return
        self.result.templates[text] = template
        for var, position in template.variables.items():
            self.variable(path, text, var, position)

    def variable(self, path: Path_, text: str, var: str, position: int) -> None:
        root, _, rest = var.partition(".")
        line, column = self.point(path, text, position)
        if root in BUILTIN_VARIABLES:
            fields = BUILTIN_VARIABLES[root]
            if fields is None or not rest:
                return
            sub = rest.split(".")[0]
            if root == "intent":
                self.error(path, f"'intent' is the intent's name itself; '{var}' does not exist",
                           "intent == 'name' or confidence > 0.6", line=line, column=column)
            elif sub not in fields:
                self.error(path, f"unknown field '{sub}' of '{root}'{_suggest(sub, fields)}",
                           _listing(fields), line=line, column=column)
            return
        if root not in self.variables:
            known = set(BUILTIN_VARIABLES) | self.variables
            self.error(path, f"unknown variable '{var}'{_suggest(root, known)}",
                       "a built-in (intent, confidence, emotion, entities, customer, ...), a "
                       "name under 'variables:', a 'set' target or a lookup's 'into'",
                       line=line, column=column)

    def check_texts(self) -> None:
        spec = self.spec
        for i, text in enumerate(spec.defaults.reprompt):
            self.template(("defaults", "reprompt", i), text)
        for i, text in enumerate(spec.defaults.no_input):
            self.template(("defaults", "no_input", i), text)
        self.template(("escalation", "say"), spec.escalation.say)
        for name, state in spec.states.items():
            base = ("states", name)
            if state.say is not None:
                self.template(base + ("say",), state.say)
            if state.ask:
                if state.ask.prompt is not None:
                    self.template(base + ("ask", "prompt"), state.ask.prompt)
                for key in ("reprompt", "no_input"):
                    for i, text in enumerate(getattr(state.ask, key)):
                        self.template(base + ("ask", key, i), text)
        for path, action in self._all_actions():
            for sub, text in _action_texts(action):
                self.template(path + sub, text)

    def check_reachability(self) -> None:
        spec = self.spec
        edges: dict[str, set[str]] = {name: set() for name in spec.states}
        roots = {spec.start, spec.defaults.on_no_match, spec.defaults.on_no_input}
        for path, t in self._all_transitions():
            targets = {t.goto} | {ref for a in t.do for ref in _action_refs(a)}
            if path[0] == "global":
                roots |= targets
            else:
                edges[path[1]] |= targets
        for name, state in spec.states.items():
            refs = {ref for a in state.enter for ref in _action_refs(a)}
            if state.ask:
                refs |= {state.ask.on_no_match, state.ask.on_no_input}
            if isinstance(state.next, str):
                refs.add(state.next)
            elif isinstance(state.next, list):
                refs |= {rule.goto for rule in state.next}
            edges[name] |= refs
        seen: set[str] = set()
        todo = [r for r in roots if r in edges]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(n for n in edges[name] if n in edges and n not in seen)
        for name in spec.states:
            if name not in seen:
                self.error(("states", name), f"state '{name}' can never be reached",
                           f"a goto/next/on_failure leading to it from '{spec.start}' "
                           "or a global transition")


def _action_refs(action: ActionSpec) -> set[str]:
    refs: set[str | None] = set()
    if action.lookup:
        refs |= {action.lookup.on_failure, action.lookup.on_not_found}
    if action.faq:
        refs.add(action.faq.on_miss)
    return {r for r in refs if r}


def _action_texts(action: ActionSpec) -> Iterator[tuple[Path_, Any]]:
    """(sub-path, text) of every template inside an action."""
    kind, arg = action.kind, action.arg
    if kind == "say":
        yield ("say",), arg
    elif kind == "play":
        yield ("play", "text"), arg.text
    elif kind == "set":
        for name, value in arg.items():
            yield ("set", name), value
    elif kind == "lookup":
        for name, value in arg.args.items():
            yield ("lookup", "args", name), value
        if arg.http:
            yield ("lookup", "http", "path"), arg.http.path
            for name, value in (arg.http.body or {}).items():
                yield ("lookup", "http", "body", name), value
    elif kind == "transfer":
        yield ("transfer", "reason"), arg.reason
    elif kind == "ticket":
        yield ("ticket", "subject"), arg.subject
        for name, value in arg.fields.items():
            yield ("ticket", "fields", name), value
    elif kind == "callback":
        yield ("callback", "when"), arg.when
        yield ("callback", "reason"), arg.reason
    elif kind == "webhook":
        for name, value in arg.payload.items():
            yield ("webhook", "payload", name), value


def check_spec(spec: ScriptSpec, doc: LocatedDocument, base_dir: Path,
               functions: frozenset[str] | None = None) -> CheckResult:
    """Run every meaning check; `functions` (names of registered lookup functions) is
    checked only when given."""
    return _Checker(spec, doc, base_dir, functions).run()
