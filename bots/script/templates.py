"""Prompt templates: ``"Hi {customer.name|there}, your order is {order.status}."``

Placeholders are dotted variable paths, looked up the same safe way as in conditions
(plain data only; never ``str.format``, which can reach attributes). ``{path|fallback}``
says what to speak when the value is missing or empty; ``{{`` and ``}}`` are literal
braces. A missing value without a fallback renders as an empty string and is counted in
`Rendered.missing`, so the engine can log it (by path, never by value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bots.expressions import Expression, ExpressionError, parse

__all__ = ["Rendered", "Template", "TemplateError", "format_value"]

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")


class TemplateError(ValueError):
    """A template that cannot be parsed; `position` is the 0-based column."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        super().__init__(f"{reason} at column {position + 1} in: {text}")
        self.reason = reason
        self.text = text
        self.position = position


@dataclass(frozen=True)
class _Field:
    path: str
    fallback: str | None
    position: int


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...] = ()


def format_value(value: Any) -> str:
    """How a variable sounds: numbers without a trailing .0, lists joined with commas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    return str(value)


class Template:
    """A parsed template; parse once at load, render per turn."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TemplateError(f"expected text, got {type(text).__name__}", str(text), 0)
        self.text = text
        self._parts: list[str | _Field] = []
        last = 0
        for match in _PLACEHOLDER.finditer(text):
            self._parts.append(text[last:match.start()])
            last = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                self._parts.append(token[0])
            elif token in ("{", "}"):
                hint = "unclosed '{'" if token == "{" else "unmatched '}'"
                raise TemplateError(f"{hint} (write '{token * 2}' for a literal brace)", text,
                                    match.start())
            else:
                self._parts.append(self._field(match.group(1), match.start(1)))
        self._parts.append(text[last:])
        self.fields = tuple(p for p in self._parts if isinstance(p, _Field))

    def _field(self, inner: str, position: int) -> _Field:
        path, _, fallback = inner.partition("|")
        stripped = path.strip()
        if not _PATH.fullmatch(stripped):
            raise TemplateError(f"'{{{inner}}}' is not a variable name such as "
                                "{customer.name}", self.text, position)
        return _Field(stripped, fallback.strip() if "|" in inner else None,
                      position + (len(path) - len(path.lstrip())))

    @property
    def variables(self) -> dict[str, int]:
        """Dotted paths used, with the 0-based column of their first use."""
        found: dict[str, int] = {}
        for item in self.fields:
            found.setdefault(item.path, item.position)
        return found

    @property
    def is_single_value(self) -> bool:
        """The template is exactly one placeholder: `set` keeps the value's own type."""
        return len(self.fields) == 1 and self.text.strip() == "{" + self._raw(self.fields[0]) + "}"

    @staticmethod
    def _raw(item: _Field) -> str:
        return item.path if item.fallback is None else f"{item.path}|{item.fallback}"

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The raw value of a single-placeholder template (None when missing)."""
        item = self.fields[0]
        value = lookup_path(variables, item.path)
        return item.fallback if value in (None, "") and item.fallback is not None else value

    def render(self, variables: Mapping[str, Any], quote=None) -> Rendered:
        """The text with values filled in; `quote` transforms each value (URL paths)."""
        out: list[str] = []
        missing: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = lookup_path(variables, part.path)
            text = format_value(value)
            if not text:
                if part.fallback is None:
                    missing.append(part.path)
                text = part.fallback or ""
            out.append(quote(text) if quote else text)
        return Rendered("".join(out), tuple(missing))


def lookup_path(variables: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path through plain data (same rules as conditions); None if absent."""
    try:
        return _compiled_path(path).evaluate(variables, strict=False)
    except ExpressionError:
        return None


@lru_cache(maxsize=4096)
def _compiled_path(path: str) -> Expression:
    return parse(path)
