"""Safe condition expressions for bot scripts.

Bot scripts are YAML data written by contact-centre staff, so their transition
conditions (``emotion.anger > 0.6 and turns >= 2``) must never run as Python. This
module has its own tokenizer and Pratt parser: `parse` compiles a condition once into a
small tree and `Expression.evaluate` runs it against a mapping of variables. Nothing in an
expression can call code, index, do arithmetic or reach a name starting with ``_``.

Grammar (lowest precedence first, as in Python)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := unary [cmp_op unary]        # not chained: 1 < x < 3 is an error
    cmp_op     := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "null" | "True" | "False" | "None"
                | path | "(" expr ")" | "(" [items] ")" | "[" [items] "]"
    items      := expr ("," expr)* [","]      # "(a, b)" / "(a,)" / "()" are tuples
    path       := NAME ("." NAME)*            # no NAME may start with "_"

STRING is single- or double-quoted with backslash escapes (``\\\\ \\' \\" \\n \\t \\r``).
Limits: 1000 characters, 32 levels of brackets and unary operators, 100 items per list
or tuple literal. `ExpressionError.position` is a 0-based column; the message shows it
1-based, as editors do.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["Expression", "ExpressionError", "UnknownVariable", "evaluate", "parse"]

MAX_LENGTH = 1000
MAX_DEPTH = 32
MAX_ITEMS = 100

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "True", "False", "None"}
_CONSTANTS = {"true": True, "True": True, "false": False, "False": False,
              "null": None, "None": None}
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
_OP_HINTS = {"=": "use '==' to compare", "===": "use '=='", "!": "use 'not'",
             "&&": "use 'and'", "&": "use 'and'", "||": "use 'or'", "|": "use 'or'"}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")  # ASCII digits only
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATOR = re.compile(r"[=!<>&|]+")
_OR, _AND, _NOT, _CMP, _NEG = 1, 2, 3, 4, 5  # binding powers


class ExpressionError(ValueError):
    """A condition that cannot be parsed or evaluated; says where and why."""

    def __init__(self, reason: str, expression: str, position: int) -> None:
        shown = expression if len(expression) <= 120 else expression[:117] + "..."
        super().__init__(f"{reason} at column {position + 1} in: {shown}")
        self.reason = reason
        self.expression = expression
        self.position = position


class UnknownVariable(ExpressionError):
    """A variable path the caller's mapping does not provide (only when ``strict``)."""

    def __init__(self, path: str, expression: str, position: int) -> None:
        super().__init__(f"unknown variable '{path}'", expression, position)
        self.path = path


class _Token(NamedTuple):
    kind: str  # "num", "str", "name", "eof", or the operator/keyword/punctuation itself
    value: Any
    pos: int


def _tokenize(text: str) -> list[_Token]:
    def fail(reason: str, pos: int) -> ExpressionError:
        return ExpressionError(reason, text, pos)

    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif m := _NUMBER.match(text, i):
            end = m.end()
            if end < len(text) and (text[end].isalnum() or text[end] in "._"):
                raise fail(f"invalid number '{text[i:end + 1]}'", i)
            number = m.group()
            is_float = any(c in number for c in ".eE")
            tokens.append(_Token("num", float(number) if is_float else int(number), i))
            i = end
        elif m := _NAME.match(text, i):
            name = m.group()
            if name.startswith("_"):
                raise fail(f"names starting with '_' are not allowed ('{name}')", i)
            tokens.append(_Token(name if name in _KEYWORDS else "name", name, i))
            i = m.end()
        elif ch in "'\"":
            chars, j = [], i + 1
            while j < len(text) and text[j] != ch:
                if text[j] == "\\":
                    if j + 1 >= len(text) or text[j + 1] not in _ESCAPES:
                        raise fail("invalid escape in string", j)
                    chars.append(_ESCAPES[text[j + 1]])
                    j += 2
                else:
                    chars.append(text[j])
                    j += 1
            if j >= len(text):
                raise fail("unterminated string", i)
            tokens.append(_Token("str", "".join(chars), i))
            i = j + 1
        elif m := _OPERATOR.match(text, i):
            op = m.group()
            if op not in _COMPARISONS:
                hint = f"; {_OP_HINTS[op]}" if op in _OP_HINTS else ""
                raise fail(f"unknown operator '{op}'{hint}", i)
            tokens.append(_Token(op, op, i))
            i = m.end()
        elif ch in "()[],.-":
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch in "+*/%":
            raise fail(f"arithmetic is not allowed ('{ch}')", i)
        else:
            raise fail(f"unexpected character {ch!r}", i)
    tokens.append(_Token("eof", None, len(text)))
    return tokens


# ---- tree and evaluation --------------------------------------------------------------


class _Literal(NamedTuple):
    pos: int
    value: Any


class _Path(NamedTuple):
    pos: int
    parts: tuple[str, ...]


class _Sequence(NamedTuple):
    pos: int
    items: tuple[_Node, ...]
    is_list: bool


class _Unary(NamedTuple):
    pos: int
    op: str  # "not" or "-"
    operand: _Node


class _Binary(NamedTuple):
    pos: int
    op: str  # "and", "or", a comparison, "in" or "not in"
    left: _Node
    right: _Node


_Node = _Literal | _Path | _Sequence | _Unary | _Binary


class _Env(NamedTuple):
    variables: Mapping[str, Any]
    strict: bool
    text: str


def _lookup(obj: Any, name: str) -> tuple[bool, Any]:
    """One path step over plain data only: mappings, dataclass fields, SimpleNamespace.
    Properties and methods are never reached, so evaluation cannot run caller code."""
    if isinstance(obj, Mapping):
        return (True, obj[name]) if name in obj else (False, None)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if name in {f.name for f in dataclasses.fields(obj)}:
            return True, getattr(obj, name)
    elif isinstance(obj, types.SimpleNamespace) and name in vars(obj):
        return True, vars(obj)[name]
    return False, None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _eval(node: _Node, env: _Env) -> Any:
    def fail(reason: str) -> ExpressionError:
        return ExpressionError(reason, env.text, node.pos)

    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Path):
        value: Any = env.variables
        for part in node.parts:
            found, value = _lookup(value, part)
            if not found:
                if env.strict:
                    raise UnknownVariable(".".join(node.parts), env.text, node.pos)
                return None
        return value
    if isinstance(node, _Sequence):
        values = [_eval(item, env) for item in node.items]
        return values if node.is_list else tuple(values)
    if isinstance(node, _Unary):
        value = _eval(node.operand, env)
        if node.op == "not":
            return not value
        if not _is_number(value):
            raise fail(f"'-' needs a number, got {type(value).__name__}")
        return -value
    op, left = node.op, _eval(node.left, env)
    if op in ("and", "or"):  # short-circuit, always a bool
        return bool(left) if bool(left) == (op == "or") else bool(_eval(node.right, env))
    right = _eval(node.right, env)
    left_type, right_type = type(left).__name__, type(right).__name__
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op in ("in", "not in"):
        if isinstance(right, str) and not isinstance(left, str):
            raise fail(f"'{op}' a string needs a string on the left, got {left_type}")
        if not isinstance(right, (str, list, tuple, set, frozenset, Mapping)):
            raise fail(f"'{op}' needs a list, tuple or string on the right, got {right_type}")
        try:
            return (left in right) != (op == "not in")
        except TypeError as exc:  # e.g. an unhashable value tested against a set
            raise fail(f"cannot test membership: {exc}") from None
    both_str = isinstance(left, str) and isinstance(right, str)
    if not (both_str or _is_number(left) and _is_number(right)):
        raise fail(f"cannot compare {left_type} with {right_type} using '{op}'")
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


# ---- parser ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.paths: dict[str, int] = {}  # dotted path -> column of its first use

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, reason: str, pos: int) -> ExpressionError:
        return ExpressionError(reason, self.text, pos)

    def unexpected(self, tok: _Token, expected: str = "") -> ExpressionError:
        special = {"(": "function calls are not allowed", "[": "indexing is not allowed",
                   ".": "attribute access is only allowed on variable names",
                   "-": "arithmetic is not allowed ('-')"}
        if expected and tok.kind in special:
            return self.fail(special[tok.kind], tok.pos)
        found = "end of expression" if tok.kind == "eof" else repr(str(tok.value))
        reason = f"expected {expected}, found {found}" if expected else f"unexpected {found}"
        return self.fail(reason, tok.pos)

    def expect(self, kind: str, expected: str) -> _Token:
        if self.peek().kind != kind:
            raise self.unexpected(self.peek(), expected)
        return self.advance()

    def parse(self) -> _Node:
        node = self.expr(0)
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek(), "end of expression")
        return node

    def infix(self) -> tuple[str, int] | None:
        tok = self.peek()
        if tok.kind in ("or", "and"):
            return tok.kind, _OR if tok.kind == "or" else _AND
        if tok.kind in _COMPARISONS or tok.kind == "in":
            return tok.kind, _CMP
        if tok.kind == "not" and self.peek(1).kind == "in":
            return "not in", _CMP
        return None

    def expr(self, min_bp: int) -> _Node:
        left = self.prefix(min_bp)
        while (info := self.infix()) is not None and info[1] > min_bp:
            op, bp = info
            tok = self.advance()
            if op == "not in":
                self.advance()
            left = _Binary(tok.pos, op, left, self.expr(bp))
            if bp == _CMP and (nxt := self.infix()) is not None and nxt[1] == _CMP:
                reason = "chained comparisons are not allowed; join them with 'and'"
                raise self.fail(reason, self.peek().pos)
        return left

    def prefix(self, min_bp: int) -> _Node:
        tok = self.advance()
        if tok.kind in ("num", "str"):
            return _Literal(tok.pos, tok.value)
        if tok.kind in _CONSTANTS:
            return _Literal(tok.pos, _CONSTANTS[tok.kind])
        if tok.kind == "name":
            parts = [tok.value]
            while self.peek().kind == ".":
                self.advance()
                parts.append(self.expect("name", "a name after '.'").value)
            self.paths.setdefault(".".join(parts), tok.pos)
            return _Path(tok.pos, tuple(parts))
        if tok.kind in ("(", "[", "not", "-"):
            if tok.kind == "not" and min_bp > _NOT:
                raise self.fail("'not' needs parentheses here", tok.pos)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"expression is nested too deeply (max {MAX_DEPTH})", tok.pos)
            try:
                if tok.kind in ("not", "-"):
                    return _Unary(tok.pos, tok.kind, self.expr(_NOT if tok.kind == "not" else _NEG))
                return self.sequence(tok)
            finally:
                self.depth -= 1
        raise self.unexpected(tok)

    def sequence(self, opener: _Token) -> _Node:
        closer = ")" if opener.kind == "(" else "]"
        items: list[_Node] = []
        saw_comma = False
        while self.peek().kind != closer:
            if len(items) == MAX_ITEMS:
                raise self.fail(f"too many items in a list (max {MAX_ITEMS})", self.peek().pos)
            items.append(self.expr(0))
            if self.peek().kind != ",":
                break
            saw_comma = True
            self.advance()
        self.expect(closer, f"',' or '{closer}'")
        if closer == ")" and len(items) == 1 and not saw_comma:
            return items[0]  # plain grouping parentheses
        return _Sequence(opener.pos, tuple(items), closer == "]")


class Expression:
    """A parsed condition: parse once when the script loads, evaluate on every turn."""

    def __init__(self, text: str, root: _Node, positions: Mapping[str, int]) -> None:
        self.text = text
        self._root = root
        self.variables = frozenset(positions)  # dotted paths used, for a script checker
        #: 0-based column of each path's first use, so a checker can point at it
        self.variable_positions: dict[str, int] = dict(positions)

    def evaluate(self, variables: Mapping[str, Any], *, strict: bool = True) -> Any:
        """Value of the condition; a missing path raises `UnknownVariable` unless not
        ``strict``, when it reads as None (ordering None against a number still fails)."""
        return _eval(self._root, _Env(variables, strict, self.text))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def parse(text: str) -> Expression:
    """Compile ``text``; raises `ExpressionError` for anything outside the grammar."""
    if not isinstance(text, str):
        reason = f"expression must be a string, got {type(text).__name__}"
        raise ExpressionError(reason, str(text), 0)
    if len(text) > MAX_LENGTH:
        reason = f"expression is too long ({len(text)} characters, max {MAX_LENGTH})"
        raise ExpressionError(reason, text, MAX_LENGTH)
    if not text.strip():
        raise ExpressionError("empty expression", text, 0)
    parser = _Parser(text)
    root = parser.parse()
    return Expression(text, root, parser.paths)


def evaluate(text: str, variables: Mapping[str, Any], *, strict: bool = True) -> Any:
    """Parse and evaluate in one go; prefer `parse` once for conditions used repeatedly."""
    return parse(text).evaluate(variables, strict=strict)
