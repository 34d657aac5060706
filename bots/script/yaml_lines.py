"""YAML that remembers where each value came from.

`yaml.safe_load` throws line numbers away, and a script author needs them in every error.
This composes the node graph with PyYAML's safe composer and builds plain Python data from
it, recording for each path (``("states", "offer", "on", 0, "goto")``) the line and column
of the node. Keys are kept as the text written, so ``on:`` stays the string "on" (YAML
1.1 would read it as a boolean). Duplicate keys and merge keys are rejected: PyYAML
silently keeps the last duplicate, which hides mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bots.script.problems import ScriptError, ScriptProblem

__all__ = ["LocatedDocument", "Location", "load_located_yaml"]

Path = tuple[Any, ...]


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
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                self.fail(node, f"cannot read value: {exc}")
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
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
    lines = text.splitlines()
    if root is None:
        return LocatedDocument(None, file, lines, {(): Location(1, 1)})
    builder = _Builder(file)
    data = builder.build(root, ())
    if builder.problems:
        raise ScriptError(builder.problems)
    return LocatedDocument(data, file, lines, builder.locations)
