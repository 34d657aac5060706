"""Bot-script conditions: what script authors can write, what they are told when they get
it wrong, and that nothing in a condition can reach Python."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from bots.expressions import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LENGTH,
    ExpressionError,
    UnknownVariable,
    evaluate,
    parse,
)

pytestmark = pytest.mark.unit

ANGRY_RETURNING_CALLER = {
    "intent": "deny",
    "confidence": 0.35,
    "emotion": {"anger": 0.82, "neutral": 0.1},
    "turns": 3,
    "interest": 0.4,
    "no_match": 1,
    "customer": {"name": "Ada", "tier": "gold", "vip": False},
    "order": {"status": "shipped", "id": "A-1001"},
}
CALM_NEW_CALLER = {
    "intent": "refund_request",
    "confidence": 0.93,
    "emotion": {"anger": 0.05, "neutral": 0.9},
    "turns": 1,
    "interest": 0.75,
    "no_match": 3,
    "customer": {"name": "Bo", "tier": "standard", "vip": True},
    "order": {"status": "processing", "id": "B-2"},
}


# ---- the product's example conditions ------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "angry", "calm"),
    [
        ('intent == "deny"', True, False),
        ("emotion.anger > 0.6 and turns >= 2", True, False),
        ("interest > 0.7", False, True),
        ('customer.tier in ["gold", "vip"]', True, False),
        ("not customer.vip", True, False),
        ('intent in ("refund_request", "cancel_order") or confidence < 0.4', True, True),
        ("order.status == 'shipped'", True, False),
        ("no_match >= 3", False, True),
    ],
)
def test_example_conditions(condition: str, angry: bool, calm: bool) -> None:
    expression = parse(condition)
    assert expression.evaluate(ANGRY_RETURNING_CALLER) is angry
    assert expression.evaluate(CALM_NEW_CALLER) is calm


def test_literals() -> None:
    assert evaluate("42", {}) == 42
    assert evaluate("-2.5", {}) == -2.5
    assert evaluate("1e3", {}) == 1000.0
    assert evaluate(r"'it\'s'", {}) == "it's"
    assert evaluate(r'"a\\b\"c\n"', {}) == 'a\\b"c\n'
    assert evaluate("[true, True, false, False, null, None]", {}) == [
        True, True, False, False, None, None,
    ]
    assert evaluate("()", {}) == ()
    assert evaluate("(1,)", {}) == (1,)
    assert evaluate("(1)", {}) == 1
    assert evaluate("[1, 2,]", {}) == [1, 2]


def test_precedence_follows_python() -> None:
    env = {"a": True, "b": False, "c": False}
    assert evaluate("not a and b", env) is False  # (not a) and b
    assert evaluate("not (a and b)", env) is True
    assert evaluate("a or b and c", env) is True  # a or (b and c)
    assert evaluate("(a or b) and c", env) is False
    assert evaluate("not x == 1", {"x": 2}) is True  # not (x == 1)
    assert evaluate("-x < 0", {"x": 1}) is True
    assert evaluate("not not a", env) is True


def test_and_or_short_circuit_and_return_bools() -> None:
    assert evaluate("0 or 'yes'", {}) is True
    assert evaluate("1 and ''", {}) is False
    # the right side is never looked at, so a missing variable there is no error
    assert evaluate("false and missing > 1", {}) is False
    assert evaluate("true or missing > 1", {}) is True


def test_membership_in_lists_tuples_strings_and_mappings() -> None:
    env = {"tier": "vip", "tags": ["returning", "vip"], "note": "wants a refund", "n": 3}
    assert evaluate('tier in ["gold", "vip"]', env) is True
    assert evaluate('tier not in ("gold", "silver")', env) is True
    assert evaluate('"refund" in note', env) is True
    assert evaluate('"cancel" not in note', env) is True
    assert evaluate('"vip" in tags', env) is True
    assert evaluate("n in [1, 2, 3]", env) is True
    assert evaluate('"tier" in customer', {"customer": {"tier": "gold"}}) is True


def test_objects_are_read_as_plain_data_only() -> None:
    @dataclass
    class Customer:
        tier: str

        @property
        def secret(self) -> str:  # pragma: no cover - must never be reached
            raise AssertionError("evaluation ran caller code")

    env = {"customer": Customer("gold"), "order": SimpleNamespace(status="shipped")}
    assert evaluate('customer.tier == "gold" and order.status == "shipped"', env) is True
    with pytest.raises(UnknownVariable):
        evaluate("customer.secret", env)
    with pytest.raises(UnknownVariable):
        evaluate("intent.upper", {"intent": "deny"})  # no methods on strings either


def test_variables_reports_dotted_paths() -> None:
    expression = parse(
        'emotion.anger > 0.6 and customer.tier in ["gold"] or not customer.vip or turns'
    )
    assert expression.variables == frozenset(
        {"emotion.anger", "customer.tier", "customer.vip", "turns"}
    )
    assert parse("1 == 1").variables == frozenset()


# ---- missing variables and types at evaluation time ----------------------------------


def test_missing_variable_names_the_path() -> None:
    with pytest.raises(UnknownVariable) as info:
        evaluate("turns >= 2 and customer.tier == 'gold'", {"turns": 3, "customer": {}})
    assert info.value.path == "customer.tier"
    assert info.value.position == 15
    assert "unknown variable 'customer.tier'" in str(info.value)
    assert isinstance(info.value, ExpressionError)


def test_not_strict_reads_missing_as_none() -> None:
    assert evaluate("customer.vip", {}, strict=False) is None
    assert evaluate("not customer.vip", {"customer": None}, strict=False) is True
    assert evaluate("order.status == 'shipped'", {}, strict=False) is False


@pytest.mark.parametrize(
    ("condition", "env", "reason"),
    [
        ("intent < 3", {"intent": "deny"}, "cannot compare str with int using '<'"),
        ("turns > null", {"turns": 1}, "cannot compare int with NoneType using '>'"),
        ("true >= 0", {}, "cannot compare bool with int"),
        ("1 in 'abc'", {}, "needs a string on the left"),
        ("'a' in turns", {"turns": 2}, "needs a list, tuple or string on the right"),
        ("-name", {"name": "x"}, "'-' needs a number, got str"),
    ],
)
def test_type_errors_are_expression_errors(condition: str, env: dict, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        evaluate(condition, env)


def test_unhashable_membership_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="cannot test membership"):
        evaluate("x in tags", {"x": [1], "tags": {"a"}})


# ---- parse errors, with columns ------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "position", "reason"),
    [
        ("intent == )", 10, "unexpected ')'"),
        ("(intent == 'deny'", 17, "expected ',' or ')', found end of expression"),
        ("intent == 'deny')", 16, "expected end of expression, found ')'"),
        ('[1, 2', 5, "expected ',' or ']'"),
        ("intent == 'deny", 10, "unterminated string"),
        ("intent === 'deny'", 7, "unknown operator '==='"),
        ("intent = 'deny'", 7, "unknown operator '='; use '=='"),
        ("a && b", 2, "use 'and'"),
        ("len(x) > 2", 3, "function calls are not allowed"),
        ("x.__class__", 2, "names starting with '_' are not allowed"),
        ("_private", 0, "names starting with '_' are not allowed"),
        ("1 < x < 3", 6, "chained comparisons are not allowed"),
        ("a == b != c", 7, "chained comparisons are not allowed"),
        ("x in y in z", 7, "chained comparisons are not allowed"),
        ("a + b", 2, "arithmetic is not allowed"),
        ("a - b", 2, "arithmetic is not allowed"),
        ("turns * 2", 6, "arithmetic is not allowed"),
        ("items[0]", 5, "indexing is not allowed"),
        ("a == not b", 5, "'not' needs parentheses"),
        ("customer.", 9, "expected a name after '.'"),
        ("1.2.3", 0, "invalid number"),
        ("'a\\q'", 2, "invalid escape"),
        ("x is None", 2, "found 'is'"),
        ("   ", 0, "empty expression"),
        ("intent == 'día' and ü", 20, "unexpected character"),
    ],
)
def test_parse_errors_point_at_the_problem(condition: str, position: int, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(condition)
    error = info.value
    assert reason in error.reason
    assert error.position == position
    assert error.expression == condition
    # message columns are 1-based, as an editor shows them
    assert str(error) == f"{error.reason} at column {position + 1} in: {condition}"


def test_message_format_for_a_checker() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("intent == )")
    assert str(info.value) == "unexpected ')' at column 11 in: intent == )"


def test_too_long() -> None:
    text = " or ".join(["a"] * 300)
    assert len(text) > MAX_LENGTH
    with pytest.raises(ExpressionError, match="too long") as info:
        parse(text)
    assert info.value.position == MAX_LENGTH
    assert len(str(info.value)) < 250  # the message shows a shortened expression


def test_too_deep() -> None:
    parse("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH)
    with pytest.raises(ExpressionError, match="nested too deeply") as info:
        parse("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1))
    assert info.value.position == MAX_DEPTH
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("not " * (MAX_DEPTH + 1) + "x")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("-" * (MAX_DEPTH + 1) + "1")


def test_too_many_list_items() -> None:
    assert len(evaluate("[" + ",".join(["1"] * MAX_ITEMS) + "]", {})) == MAX_ITEMS
    with pytest.raises(ExpressionError, match="too many items"):
        parse("[" + ",".join(["1"] * (MAX_ITEMS + 1)) + "]")


# ---- security ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os').system('x')",
        "().__class__.__bases__",
        "().__class__.__bases__[0].__subclasses__()",
        "x.__class__",
        "open('/etc/passwd')",
        "eval('1')",
        "lambda: 1",
        "[c for c in ()]",
        "intent.upper()",
        "(1).real",
        "'a'.join(x)",
        "globals",  # a plain name is only ever a variable lookup, never a builtin
    ],
)
def test_python_is_unreachable(attack: str) -> None:
    try:
        expression = parse(attack)
    except ExpressionError:
        return
    # the few that parse are plain variable lookups that find nothing
    assert attack == "globals"
    assert expression.variables == frozenset({"globals"})
    with pytest.raises(UnknownVariable):
        expression.evaluate({})


def test_dunder_attacks_fail_at_parse_time() -> None:
    for attack in ("__import__('os').system('x')", "().__class__.__bases__"):
        with pytest.raises(ExpressionError, match="names starting with '_'"):
            parse(attack)


# ---- fuzz ----------------------------------------------------------------------------


_TOKENS = [
    "a", "b.c", "_x", "1", "2.5", "-", "'s'", '"t', "(", ")", "[", "]", ",", ".", "==",
    "!=", "<", ">=", "=", "in", "not", "and", "or", "true", "null", "+", " ", "\\",
]


def _check(text: str) -> None:
    try:
        expression = parse(text)
    except ExpressionError:
        return
    try:
        expression.evaluate({"a": 1, "b": {"c": "x"}}, strict=False)
    except ExpressionError:
        pass


def test_fuzz_random_printable_only_raises_expression_error() -> None:
    rng = random.Random(20240611)
    for _ in range(2000):
        _check("".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40))))


def test_fuzz_token_soup_only_raises_expression_error() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        _check(" ".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 12))))
