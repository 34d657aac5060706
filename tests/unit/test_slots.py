"""Slots a script state expects: the spec, reading values from ASR text, DTMF filling
digits, and the value reaching the script as the 'slot' entity."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from bots.script.engine import ScriptBot
from bots.script.loader import load_script_text
from bots.script.turns import TurnInput
from bots.slots import SlotSpec, slot_value, spoken_digits

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("said", "digits"), [
    ("one oh two", "102"), ("double seven", "77"), ("1 0 2", "102"), ("Five.", "5"),
    ("triple nine one", "9991"), ("twenty one", "21"), ("it's four four two one", "4421"),
    ("nineteen eighty", "1980"), ("I want to talk to a person", None), ("", None),
])
def test_spoken_digits_are_normalised(said, digits):
    assert spoken_digits(said) == digits


def test_digit_length_and_pattern_decide_whether_the_slot_is_filled():
    pin = SlotSpec(kind="digits", length=4)
    assert slot_value(pin, "one two three four") == "1234"
    assert slot_value(pin, "one two three") is None
    ranged = SlotSpec(kind="digits", min_length=2, max_length=3)
    assert slot_value(ranged, "Five.") is None and slot_value(ranged, "5 5") == "55"
    odd = SlotSpec(kind="digits", pattern=r"[13579]+")
    assert slot_value(odd, "three") == "3" and slot_value(odd, "four") is None


@pytest.mark.parametrize(("said", "value"), [
    ("A one zero zero two", "A1002"), ("a1002", "A1002"), ("it's B 7 4 1 9", "B7419"),
    ("one zero zero two", None),
])
def test_order_ids(said, value):
    assert slot_value(SlotSpec(kind="order_id", pattern=r"[A-Z][0-9]{4}"), said) == value


def test_yes_no_and_choice():
    yes_no = SlotSpec(kind="yes_no")
    assert slot_value(yes_no, "Yeah, sure.") == "yes" and slot_value(yes_no, "No thanks") == "no"
    assert slot_value(yes_no, "Maybe later") is None
    plan = SlotSpec(kind="choice", options=("gold", "gold plus", "silver"))
    assert slot_value(plan, "the gold plus one please") == "gold plus"
    assert slot_value(plan, "bronze") is None


def test_bad_specs_are_refused_with_a_reason():
    with pytest.raises(ValidationError, match="needs 'options'"):
        SlotSpec(kind="choice")
    with pytest.raises(ValidationError, match="not a regular expression"):
        SlotSpec(kind="digits", pattern="[")
    with pytest.raises(ValidationError, match="not both"):
        SlotSpec(kind="digits", length=4, max_length=6)


SCRIPT = """
bot: pin-check
intents: intents.yaml
start: ask_pin
states:
  ask_pin:
    ask:
      prompt: "Your four digit PIN, please."
      expect: {kind: digits, length: 4}
    on:
      - entity: slot
        do: [{say: "Thanks, {entities.slot}."}]
        goto: done
  done:
    say: "Goodbye."
    enter: [{hangup: done}]
"""


@pytest.fixture
def bot(tmp_path):
    (tmp_path / "intents.yaml").write_text("intents:\n  pin: {examples: [my pin is]}\n")
    return ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "pin.yaml", tmp_path))


async def test_the_state_tells_recognition_what_it_expects(bot):
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)
    assert bot.expectation(state) == SlotSpec(kind="digits", length=4)


async def test_a_spoken_answer_fills_the_slot(bot):
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)
    turn = await bot.on_turn(state, TurnInput("one two three four"))
    assert "Thanks, 1234." in " ".join(s.text for s in turn.segments)


async def test_keys_fill_a_digit_slot_as_if_spoken(bot):
    state = bot.new_state(call_uuid="call-1")
    await bot.start(state)
    for key in "123":
        waiting = await bot.on_dtmf(state, key)
        assert not waiting.segments  # still collecting
    turn = await bot.on_dtmf(state, "4")
    assert "Thanks, 1234." in " ".join(s.text for s in turn.segments)
    assert state.keys == ""
