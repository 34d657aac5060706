"""YAML that remembers where each value came from.

`yaml.safe_load` throws line numbers away, and a script author needs them in every error.
This composes the node graph with PyYAML's safe composer and builds plain Python data from
it, recording for each path (``("states", "offer", "on", 0, "goto")``) the line and column
of the node. Keys are kept as the text written, so ``on:`` stays the string "on" (YAML
1.1 would read it as a boolean). Duplicate keys and merge keys are rejected: PyYAML
silently keeps the last duplicate, which hides mistakes.

A script is data from people, so reading it is bounded whatever it holds: anchors and
aliases are refused (an alias is a copy made at read time: a few hundred bytes of nested
aliases expand to millions of values, and an alias inside its own anchor never ends),
as are more than `MAX_NODES` values, nesting deeper than `MAX_DEPTH`, and scalars
Python cannot turn into a value (a 5,000-digit number, the 13th month). Each is a
`ScriptProblem` with its line, never another exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bots.script.problems import ScriptError, ScriptProblem

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_NUMBER_CHARS", "LocatedDocument", "Location",
           "load_located_yaml"]

Path = tuple[Any, ...]

#: values (scalars, lists, mappings; keys count) in one script; the shipped ones have ~600
MAX_NODES = 20_000
#: lists and mappings inside each other; the shipped scripts nest 7 deep
MAX_DEPTH = 40
#: characters of a number (Python's int() of 5,000 digits is slow, then refused)
MAX_NUMBER_CHARS = 100
_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


class _Refused(Exception):
    """Composing stopped at `mark`: something a bot script may not contain."""

    def __init__(self, mark: Any, message: str, expected: str) -> None:
        super().__init__(message)
        self.mark, self.message, self.expected = mark, message, expected


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer, refusing anchors and aliases and counting what it builds,
    so neither memory nor the recursion that follows can run away."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(event.start_mark, "YAML anchors (&name) and aliases (*name) are "
                           "not supported in bot scripts", "each value written out in full")
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise _Refused(event.start_mark, f"the script has more than {MAX_NODES} values",
                           "a smaller script; split it into several bots")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(event.start_mark, f"values nested more than {MAX_DEPTH} deep",
                               "flatter lists and mappings")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


@dataclass(frozen=True)
class Location:
    """1-based line and column of a node; `style` is the scalar's quote/block style."""

    line: int
    column: int
    style: str | None = None

    def column_in(self, text: str, position: int, source_lines: list[str]) -> tuple[int, int]:
        """(line, column) of character `position` of a scalar's text, for pointing into
        an expression. Exact for one-line plain and quoted scalars and for ``|`` blocks;
        a best effort for folded or escaped ones."""
        if self.style in ("|", ">"):
            before = text[:position]
            line = self.line + 1 + before.count("\n")
            source = source_lines[line - 1] if line - 1 < len(source_lines) else ""
            indent = len(source) - len(source.lstrip(" "))
            return line, indent + len(before.rsplit("\n", 1)[-1]) + 1
        offset = 1 if self.style in ("'", '"') else 0
        return self.line, self.column + offset + position


@dataclass
class LocatedDocument:
    """Plain data plus where each part of it was written."""

    data: Any
    file: str
    source_lines: list[str]
    locations: dict[Path, Location] = field(default_factory=dict)

    def locate(self, path: Path) -> Location:
        """The location of `path`, or of its nearest written ancestor."""
        path = tuple(path)
        while path:
            if path in self.locations:
                return self.locations[path]
            path = path[:-1]
        return self.locations.get((), Location(1, 1))

    def known_prefix(self, loc: Path) -> Path:
        """The longest path made of `loc`'s elements that exists in the document;
        elements that are not data keys (pydantic's union tags) are skipped."""
        path: Path = ()
        for element in loc:
            if path + (element,) in self.locations:
                path = path + (element,)
        return path

    def problem(self, path: Path, message: str, expected: str = "",
                severity: str = "error") -> ScriptProblem:
        where = self.locate(path)
        return ScriptProblem(self.file, where.line, where.column, message, expected, severity)  # type: ignore[arg-type]


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locations: dict[Path, Location] = {}
        self.problems: list[ScriptProblem] = []
        self.constructor = SafeConstructor()

    @staticmethod
    def _where(node: Node) -> Location:
        style = getattr(node, "style", None)
        return Location(node.start_mark.line + 1, node.start_mark.column + 1, style)

    def fail(self, node: Node, message: str, expected: str = "") -> None:
        where = self._where(node)
        self.problems.append(ScriptProblem(self.file, where.line, where.column, message, expected))

    def build(self, node: Node, path: Path, key_node: Node | None = None) -> Any:
        # containers point at their key ("offer:" rather than its first child)
        is_container = isinstance(node, MappingNode | SequenceNode)
        self.locations[path] = self._where(key_node if key_node is not None and is_container else node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
                self.fail(node, f"a number of more than {MAX_NUMBER_CHARS} characters",
                          "a shorter number, or quotes if it is text")
                return None
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                self.fail(node, f"cannot read value: {exc}")
                return None
            except Exception as exc:  # PyYAML's scalar constructors raise ValueError (month
                # 13), IndexError ('!!int' with no digits) and others on odd input
                self.fail(node, f"cannot read value: {exc}", "a number, date or quoted text")
                return None
        self.fail(node, "unsupported YAML node")
        return None

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                self.fail(key_node, "merge keys and complex keys are not supported",
                          "a plain name followed by ':'")
                continue
            key = key_node.value
            if key in result:
                first = self.locations.get(path + (key,))
                seen = f" (first written on line {first.line})" if first else ""
                self.fail(key_node, f"duplicate key '{key}'{seen}", "each key once per mapping")
                continue
            result[key] = self.build(value_node, path + (key,), key_node)
            if not isinstance(value_node, MappingNode | SequenceNode):
                # scalars: the value's position, but remember the key's too
                self.locations[path + (key, "__key__")] = self._where(key_node)
        return result


def load_located_yaml(text: str, file: str) -> LocatedDocument:
    """Parse `text` (named `file` in messages); raises `ScriptError` for YAML syntax
    errors, duplicate keys and merge keys, all of them with their lines."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters already here
        root = loader.get_single_node()
    except _Refused as exc:
        line, column = exc.mark.line + 1, exc.mark.column + 1
        raise ScriptError([ScriptProblem(file, line, column, exc.message, exc.expected)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        column = mark.column + 1 if mark else 0
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{reason} ({exc.context})"
        raise ScriptError([ScriptProblem(file, line, column, f"YAML syntax error: {reason}",
                                         "valid YAML (check indentation and quotes)")]) from None
    except yaml.YAMLError as exc:
        raise ScriptError([ScriptProblem(file, 0, 0, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines = text.splitlines()
    if root is None:
        return LocatedDocument(None, file, lines, {(): Location(1, 1)})
    builder = _Builder(file)
    data = builder.build(root, ())
    if builder.problems:
        raise ScriptError(builder.problems)
    return LocatedDocument(data, file, lines, builder.locations)
