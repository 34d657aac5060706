"""The small pieces scripts rely on: prompt templates, entity extraction, YAML with line
numbers, and the dialog state's JSON form."""

from __future__ import annotations

import json

import pytest

from bots.script import DialogState
from bots.script.entities import extract_entities
from bots.script.templates import Template, TemplateError
from bots.script.yaml_lines import load_located_yaml

pytestmark = pytest.mark.unit

VARS = {"customer": {"name": "Ada", "vip": True}, "order": {"id": "A1002", "total": 12.0},
        "interest": 0.83, "items": ["shoes", "socks"]}


@pytest.mark.parametrize(("template", "expected"), [
    ("Hi {customer.name}!", "Hi Ada!"),
    ("Hi {customer.surname|there}!", "Hi there!"),
    ("Total {order.total} pounds", "Total 12 pounds"),
    ("VIP: {customer.vip}", "VIP: yes"),
    ("You ordered {items}.", "You ordered shoes, socks."),
    ("Braces {{like this}}", "Braces {like this}"),
    ("{ customer.name }", "Ada"),
])
def test_templates_render_as_a_caller_should_hear_them(template: str, expected: str) -> None:
    assert Template(template).render(VARS).text == expected


def test_missing_values_render_empty_and_are_reported_by_path() -> None:
    rendered = Template("Order {order.status}.").render(VARS)
    assert rendered.text == "Order ." and rendered.missing == ("order.status",)


def test_a_single_placeholder_keeps_the_values_type() -> None:
    assert Template("{interest}").value(VARS) == 0.83
    assert Template("{order}").value(VARS) == {"id": "A1002", "total": 12.0}
    assert not Template("x {interest}").is_single_value


@pytest.mark.parametrize(("template", "column", "reason"), [
    ("Hi {customer.name", 4, "unclosed '{'"),
    ("Hi customer.name}", 17, "unmatched '}'"),
    ("Hi {customer..name}", 5, "is not a variable name"),
    ("Hi {__class__}", 5, "is not a variable name"),
])
def test_bad_templates_say_where(template: str, column: int, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template(template)
    assert info.value.position + 1 == column and reason in info.value.reason


def test_templates_cannot_reach_python_attributes() -> None:
    class Secret:
        token = "s3cr3t"

    assert Template("{thing.token}").render({"thing": Secret()}).text == ""


@pytest.mark.parametrize(("text", "expected"), [
    ("my order is A1002", {"order_id": "A1002"}),
    ("it's a one zero zero two", {"order_id": "A1002"}),
    ("order number b-2001 please", {"order_id": "B2001"}),
    ("yeah sure", {"yes_no": "yes"}),
    ("No, I want a refund", {"yes_no": "no"}),
    ("not really", {"yes_no": "no"}),
    ("I know what I ordered", {}),
    ("call me tomorrow afternoon", {"date": "tomorrow", "time_of_day": "afternoon"}),
    ("next monday at 3 pm please", {"date": "next monday", "time_of_day": "3 pm"}),
    ("maybe at the weekend", {"date": "the weekend"}),
    ("about 6:30 p.m. tonight", {"date": "today", "time_of_day": "6:30 pm"}),
    ("I bought twenty five of them", {"number": 25}),
    ("three items", {"number": 3}),
    ("", {}),
])
def test_entities_found_in_asr_text(text: str, expected: dict) -> None:
    assert extract_entities(text) == expected


def test_yaml_keeps_lines_and_reads_on_as_a_key() -> None:
    doc = load_located_yaml("states:\n  a:\n    on:\n      - goto: b\n", "x.yaml")
    assert doc.data == {"states": {"a": {"on": [{"goto": "b"}]}}}
    assert doc.locate(("states", "a", "on", 0, "goto")).line == 4
    assert doc.locate(("states", "a")).line == 2


def test_dialog_state_round_trips_through_json() -> None:
    state = DialogState(script="shop", state="greet", variables={"order": {"id": "A1"}},
                        customer={"name": "Ada"}, variant="regular", turns=2, seq=7)
    state.trace.intents.append("order_status")
    copy = DialogState.from_json(state.to_json())
    assert copy == state
    newer = json.loads(state.to_json()) | {"field_from_a_newer_version": 1}
    assert DialogState.from_dict(newer) == state
