"""Fuzzing the bot-script condition language (bots/expressions.py).

Scripts are data and are never executed as Python. The contract: `parse` returns an
`Expression` or raises `ExpressionError` with a position inside the text; `evaluate`
returns plain data (never a function, a type or anything a Python attribute would give)
or raises `ExpressionError`; neither runs caller code nor takes long, whatever the text
(huge exponents, deep nesting, long strings) and whatever plain data the variables hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bots.expressions import MAX_DEPTH, MAX_LENGTH, ExpressionError, parse

pytestmark = pytest.mark.unit

FUZZ = settings(max_examples=200, deadline=1000, database=None,
                suppress_health_check=[HealthCheck.too_slow])
PLAIN = (type(None), bool, int, float, str, list, tuple, dict)


@dataclass
class Order:
    """A dataclass in the variables: its fields are readable, nothing else is."""

    id: str = "A1001"
    items: list = field(default_factory=lambda: [1, 2])
    touched: list = field(default_factory=list)

    @property
    def secret(self) -> str:  # a property runs code: evaluation must never reach it
        self.touched.append("secret")
        return "s3cr3t"

    def cancel(self) -> str:
        self.touched.append("cancel")
        return "cancelled"


NAMES = st.sampled_from(["turns", "intent", "confidence", "customer", "order", "ns", "text",
                         "missing", "x", "__class__", "_private", "__import__", "os",
                         "upper", "keys", "items", "secret", "cancel", "id", "name",
                         "__globals__", "mro", "eval"])
paths = st.lists(NAMES, min_size=1, max_size=4).map(".".join)
numbers = st.sampled_from(["0", "1", "2.5", "1e999", "9" * 999, "1e-999", "٣", "²", "0x10",
                           "9**9**9", "1_000"]) | st.integers(0, 10**6).map(str)
strings = st.text(max_size=20).map(lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'")
                                   + "'") | st.sampled_from(["'" + "a" * 990 + "'", "'\\x'",
                                                             "'unterminated"])
atoms = numbers | strings | paths | st.sampled_from(
    ["true", "false", "null", "True", "None", "()", "[]", "(1,)", "print", "open"])
expressions = st.recursive(atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in",
                                      "and", "or", "**", "+", "*", "//", "|", "&", "="]),
              inner).map(" ".join),
    inner.map(lambda e: f"not {e}"), inner.map(lambda e: f"-{e}"),
    inner.map(lambda e: f"({e})"), st.lists(inner, max_size=3).map(
        lambda items: "[" + ", ".join(items) + "]"),
    st.tuples(inner, NAMES).map(lambda t: f"{t[0]}.{t[1]}"),
    st.tuples(inner, inner).map(lambda t: f"{t[0]}({t[1]})"),
    st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
), max_leaves=12)
nesting = st.integers(1, 200).flatmap(lambda n: st.sampled_from(
    ["(" * n + "1" + ")" * n, "[" * n + "]" * n, "not " * n + "x", "-" * n + "1",
     "x" + " or x" * n, "1 == 1" + " and 1 == 1" * n, "- " * n + "1"]))
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "name", "x", "upper", "keys", "__class__"]), inner, max_size=3),
    max_leaves=10)


def variables(order: Order, extra: dict) -> dict:
    return {"turns": 2, "intent": "deny", "confidence": 0.4, "text": "hello",
            "customer": {"name": "Ada", "keys": "not the method"},
            "order": order, "ns": SimpleNamespace(id="n1", secret="ok"), **extra}


def check(text: str, extra: dict, strict: bool) -> None:
    started = time.perf_counter()
    try:
        expression = parse(text)
    except ExpressionError as err:
        assert 0 <= err.position <= max(len(text), MAX_LENGTH)
        assert err.reason
        return
    finally:
        assert time.perf_counter() - started < 0.2
    order = Order()
    started = time.perf_counter()
    try:
        value = expression.evaluate(variables(order, extra), strict=strict)
    except ExpressionError as err:
        assert err.reason
        return
    finally:
        assert time.perf_counter() - started < 0.2
        assert order.touched == []  # no property or method of the data ran
    assert_plain(value)


def assert_plain(value) -> None:
    """Literals, or the variables' own data (a dataclass or namespace read whole); never
    a method, a function, a type or a module."""
    assert isinstance(value, PLAIN + (Order, SimpleNamespace)), repr(value)
    assert not callable(value), repr(value)
    if isinstance(value, list | tuple):
        for item in value:
            assert_plain(item)
    if isinstance(value, dict):
        for item in value.values():
            assert_plain(item)


@FUZZ
@given(text=st.text(max_size=60), strict=st.booleans())
def test_any_text_parses_or_is_an_expression_error(text: str, strict: bool) -> None:
    check(text, {}, strict)


@FUZZ
@given(text=expressions | nesting, strict=st.booleans(),
       extra=st.dictionaries(st.sampled_from(["x", "missing", "os", "upper"]), plain_values,
                             max_size=3))
def test_grammar_like_conditions_give_plain_data_or_an_expression_error(text, strict,
                                                                        extra) -> None:
    check(text, extra, strict)


# ---- regressions and limits ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["turns > ٣", "turns > ²", "confidence > ١.٥", "x == ３"])
def test_only_ascii_digits_are_numbers(text: str) -> None:
    """'\\d' matched other scripts' digits: 'turns > ٣' compared turns with 3."""
    with pytest.raises(ExpressionError, match="unexpected character"):
        parse(text)


@pytest.mark.parametrize("text", ["9**9**9", "9 ** 9 ** 9", "2 ** 100000000"])
def test_exponents_are_refused_at_parse_time(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError):
        parse(text)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("text", ["(" * 400 + "1" + ")" * 400, "not " * 200 + "x",
                                  "-" * 900 + "1", "[" * 400 + "]" * 400])
def test_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError, match=f"nested too deeply \\(max {MAX_DEPTH}\\)"):
        parse(text)


def test_the_longest_chain_allowed_evaluates_without_deep_recursion() -> None:
    text = ("x or " * (MAX_LENGTH // 5))[:-4].strip()
    assert len(text) <= MAX_LENGTH
    assert parse(text).evaluate({"x": 0}) is False


@pytest.mark.parametrize("text", ["order.cancel", "order.secret", "ns.__class__",
                                  "customer.keys", "text.upper", "order.__dict__",
                                  "customer.__class__.__mro__"])
def test_attributes_methods_and_dunders_are_unreachable(text: str) -> None:
    order = Order()
    try:
        value = parse(text).evaluate(variables(order, {}), strict=False)
    except ExpressionError:
        return
    assert value in (None, "not the method")
    assert order.touched == []


def test_long_strings_and_numbers_stay_within_the_length_limit() -> None:
    assert parse("'" + "a" * (MAX_LENGTH - 2) + "'").evaluate({}) == "a" * (MAX_LENGTH - 2)
    assert parse("9" * MAX_LENGTH).evaluate({}) == int("9" * MAX_LENGTH)
    with pytest.raises(ExpressionError, match="too long"):
        parse("'" + "a" * MAX_LENGTH + "'")
