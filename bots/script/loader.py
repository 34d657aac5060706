"""Read a bot script: YAML with line numbers → shape (pydantic) → meaning (`checker`).

`load_script` returns a ready `Script` or raises `ScriptError` listing every problem with
its file and line; `check_script` returns the problems without raising (for
`callfleet bot check`). A `Script` is immutable and carries its compiled conditions and
templates, so the runtime never parses on a call.
"""

from __future__ import annotations

import copy
import hashlib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bots.expressions import Expression, parse
from bots.script.checker import check_spec
from bots.script.problems import ScriptError, ScriptProblem
from bots.script.schema import ScriptSpec
from bots.script.templates import Template
from bots.script.yaml_lines import LocatedDocument, load_located_yaml

__all__ = ["MAX_SCRIPT_BYTES", "Script", "check_script", "load_script", "load_script_text"]

#: the largest script read (UTF-8 bytes); the shipped ones are under 9 KiB
MAX_SCRIPT_BYTES = 256 * 1024


@dataclass(frozen=True, eq=False)
class Script:
    """A validated bot script."""

    spec: ScriptSpec
    file: str
    sha: str  # first 16 hex digits of the source's sha256: the version a call started on
    intents: frozenset[str]
    intents_file: Path | None
    warnings: tuple[ScriptProblem, ...] = ()
    expressions: dict[str, Expression] = field(default_factory=dict, repr=False)
    templates: dict[str, Template] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.bot

    def expression(self, text: str) -> Expression:
        found = self.expressions.get(text)
        return found if found is not None else parse(text)

    def template(self, text: str) -> Template:
        found = self.templates.get(text)
        return found if found is not None else Template(text)

    def summary(self) -> dict[str, Any]:
        spec = self.spec
        transitions = len(spec.global_) + sum(len(s.on) for s in spec.states.values())
        return {"bot": spec.bot, "file": self.file, "version": self.sha,
                "states": len(spec.states), "transitions": transitions,
                "intents": len(self.intents), "variants": sorted(spec.variants),
                "warnings": len(self.warnings)}


def _too_large(file: str, size: int | None) -> ScriptError:
    shown = f" ({size} bytes)" if size is not None else ""
    return ScriptError([ScriptProblem(file, 0, 0, f"file is too large{shown}",
                                      f"at most {MAX_SCRIPT_BYTES} bytes")])


def _readable(path: str | os.PathLike) -> tuple[str, str]:
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO or /dev/zero would never end
            raise ScriptError([ScriptProblem(str(path), 0, 0, "not a regular file",
                                             "a path to a bot script (.yaml)")])
        size = path.stat().st_size
        if size > MAX_SCRIPT_BYTES:
            raise _too_large(str(path), size)
        with path.open("rb") as handle:
            data = handle.read(MAX_SCRIPT_BYTES + 1)  # the file may grow after stat()
        if len(data) > MAX_SCRIPT_BYTES:
            raise _too_large(str(path), None)
        return str(path), data.decode("utf-8")
    except FileNotFoundError:
        raise ScriptError([ScriptProblem(str(path), 0, 0, "file not found",
                                         "a path to a bot script (.yaml)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError([ScriptProblem(str(path), 0, 0, f"cannot read file: {exc}")]) from None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Allowed keys of the model that `loc` (a pydantic error location) points into."""
    current: Any = ScriptSpec
    for element in loc[:-1]:
        current = _step(current, element)
    models = [c for c in _members(current) if isinstance(c, type) and issubclass(c, BaseModel)]
    return [f.alias or name for name, f in models[0].model_fields.items()] if models else []


def _members(tp: Any) -> tuple[Any, ...]:
    """The alternatives of a union (``X | None``), or the type itself."""
    return typing.get_args(tp) if isinstance(tp, types.UnionType) or \
        typing.get_origin(tp) is typing.Union else (tp,)


def _step(tp: Any, element: Any) -> Any:
    for member in _members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(element, str):
            for name, info in member.model_fields.items():
                if element in (name, info.alias):
                    return info.annotation
        origin = typing.get_origin(member)
        if origin is list and isinstance(element, int):
            return typing.get_args(member)[0]
        if origin is dict and isinstance(element, str):
            return typing.get_args(member)[1]
    return tp  # a union tag in the location ("list[NextRule]"): stay where we are


def _shape_problems(exc: ValidationError, doc: LocatedDocument) -> list[ScriptProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path = doc.known_prefix(loc)
        kind = error["type"]
        key = loc[-1] if loc else ""
        expected = ""
        if kind == "extra_forbidden":
            message = f"unknown key '{key}'"
            allowed = _fields_at(loc)
            expected = "one of: " + ", ".join(allowed) if allowed else ""
            path = doc.known_prefix(loc)
            where = doc.locations.get(path + ("__key__",))
            if where is not None:
                problems.append(ScriptProblem(doc.file, where.line, where.column, message, expected))
                continue
        elif kind == "missing":
            message = f"missing required key '{key}'"
            expected = f"'{key}:' in this mapping"
        else:
            message = error["msg"].removeprefix("Value error, ")
            shown = ".".join(str(p) for p in path) or "script"
            message = f"{shown}: {message}"
        problems.append(doc.problem(path, message, expected))
    return problems


def load_script_text(text: str, file: str = "<script>", base_dir: str | os.PathLike = ".",
                     functions: frozenset[str] | set[str] | None = None) -> Script:
    """Validate `text` and build a `Script`; raises `ScriptError` with every problem
    (never another exception, whatever `text` holds)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SCRIPT_BYTES:
        raise _too_large(file, size)
    doc = load_located_yaml(text, file)
    if not isinstance(doc.data, dict):
        raise ScriptError([ScriptProblem(file, 1, 1, "a bot script must be a mapping",
                                         "keys such as bot:, intents:, start:, states:")])
    try:
        spec = ScriptSpec.model_validate(doc.data)
    except ValidationError as exc:
        shape = _shape_problems(exc, doc)
        pruned = _without_bad_parts(doc.data, exc)
        if pruned is None:
            raise ScriptError(shape) from None
        # the rest of the script is checked too, so the author sees every problem at once;
        # "never reached" is left out: a pruned transition may have been the way in
        result = check_spec(pruned, doc, Path(base_dir),
                            frozenset(functions) if functions is not None else None)
        more = [p for p in result.problems if "can never be reached" not in p.message]
        raise ScriptError(sorted(shape + more, key=lambda p: (p.line, p.column))) from None
    result = check_spec(spec, doc, Path(base_dir),
                        frozenset(functions) if functions is not None else None)
    problems = sorted(result.problems, key=lambda p: (p.line, p.column))
    if any(p.severity == "error" for p in problems):
        raise ScriptError(problems)
    sha = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Script(spec, file, sha, result.intents, result.intents_file, tuple(problems),
                  result.expressions, result.templates)


def _without_bad_parts(data: dict[str, Any], exc: ValidationError,
                       rounds: int = 5) -> ScriptSpec | None:
    """The script with each invalid transition or action (the innermost list item holding
    an error) or unknown key removed, if that leaves a valid script; else None."""
    data = copy.deepcopy(data)
    for _ in range(rounds):
        for error in exc.errors(include_url=False):
            if not _prune(data, tuple(error["loc"]), error["type"] == "extra_forbidden"):
                return None
        try:
            return ScriptSpec.model_validate(data)
        except ValidationError as again:
            exc = again
    return None


def _prune(data: Any, loc: tuple[Any, ...], drop_key: bool) -> bool:
    """Neutralise what `loc` points at: drop an unknown key, or replace the innermost list
    item holding the error with a harmless one of the same kind (indices stay, so later
    problems keep their lines). False when there is nothing safe to do."""
    trail: list[tuple[Any, Any, Any]] = []  # (container, key, declared type of the value)
    node, tp = data, ScriptSpec
    for element in loc:
        if isinstance(node, dict) and element in node or \
                isinstance(node, list) and isinstance(element, int) and element < len(node):
            tp = _step(tp, element)
            trail.append((node, element, tp))
            node = node[element]
    if drop_key and trail and isinstance(trail[-1][0], dict):
        container, key, _ = trail[-1]
        del container[key]
        return True
    for container, key, item_type in reversed(trail):
        if isinstance(container, list):
            stub = _stub(item_type, data)
            if stub is None:
                return False
            container[key] = stub
            return True
    return False


def _stub(item_type: Any, data: dict[str, Any]) -> Any:
    """A valid item that does nothing, for the list kinds a script has."""
    names = {getattr(m, "__name__", "") for m in _members(item_type)}
    if "TransitionSpec" in names:
        return {"when": "false", "do": [{"set": {}}]}
    if "ActionSpec" in names:
        return {"set": {}}
    if "NextRule" in names and isinstance(data.get("start"), str):
        return {"goto": data["start"]}
    if str in _members(item_type):
        return ""
    return None


def load_script(path: str | os.PathLike,
                functions: frozenset[str] | set[str] | None = None) -> Script:
    """Load and validate a script file (its intent file is resolved next to it)."""
    file, text = _readable(path)
    return load_script_text(text, file, Path(file).parent, functions)


def check_script(path: str | os.PathLike,
                 functions: frozenset[str] | set[str] | None = None,
                 ) -> tuple[Script | None, list[ScriptProblem]]:
    """(the script or None, every problem found, warnings included); never raises for a
    bad script."""
    try:
        script = load_script(path, functions)
    except ScriptError as exc:
        return None, exc.problems
    return script, list(script.warnings)
