"""The minimal shop bot: what the caller hears, when it hands over to a person, and when
it hangs up."""

from __future__ import annotations

import json

import pytest

from bots.minimal import SHOP_NAME, BotReply, ConversationState, MinimalBot

pytestmark = pytest.mark.unit

CALM = {"label": "neutral", "scores": {"anger": 0.05, "neutral": 0.9}}
ANGRY = {"label": "anger", "scores": {"anger": 0.85, "neutral": 0.1}}


def intent(label: str, out_of_scope: bool = False, confidence: float = 0.9) -> dict:
    return {"label": label, "confidence": confidence, "out_of_scope": out_of_scope}


OOS = intent("oos", out_of_scope=True)


@pytest.fixture
def bot() -> MinimalBot:
    return MinimalBot()


@pytest.fixture
def state() -> ConversationState:
    return ConversationState()


def say(bot: MinimalBot, state: ConversationState, label: str, emotion=CALM, **kw) -> BotReply:
    return bot.respond(state, intent(label, **kw), emotion)


# ---- greeting -----------------------------------------------------------------------------


def test_greets_a_known_customer_by_name(bot: MinimalBot) -> None:
    reply = bot.greeting(ConversationState(customer={"name": "Ada"}))
    assert reply.text.startswith("Hi Ada, thanks for calling")
    assert SHOP_NAME in reply.text
    assert not reply.end_call and reply.escalate is None


def test_greets_an_unknown_caller_without_a_name(bot: MinimalBot, state: ConversationState) -> None:
    reply = bot.greeting(state)
    assert reply.text.startswith("Hi, thanks for calling")
    assert "None" not in reply.text


# ---- answers ------------------------------------------------------------------------------


def test_answers_where_the_order_is(bot: MinimalBot, state: ConversationState) -> None:
    reply = say(bot, state, "order_status")
    assert "shipped" in reply.text
    assert "two business days" in reply.text
    assert not reply.end_call and reply.escalate is None
    assert reply.state == "order_status"
    assert state.turns == 1 and state.last_intent == "order_status"


@pytest.mark.parametrize(
    "label, words",
    [
        ("refund_request", "refund"),
        ("address_change", "address"),
        ("cancel_order", "cancel"),
        ("store_hours", "eight in the morning"),
    ],
)
def test_answers_each_shop_intent(bot: MinimalBot, state: ConversationState, label, words) -> None:
    reply = say(bot, state, label)
    assert words in reply.text
    assert not reply.end_call


# ---- hand-over to a person ----------------------------------------------------------------


def test_asking_for_a_person_escalates(bot: MinimalBot, state: ConversationState) -> None:
    reply = say(bot, state, "talk_to_human")
    assert reply.escalate == "caller asked for a person"
    assert reply.end_call
    assert reply.state == "escalated"
    assert "connecting you" in reply.text
    assert state.escalated


def test_two_angry_turns_escalate(bot: MinimalBot, state: ConversationState) -> None:
    first = say(bot, state, "order_status", ANGRY)
    assert first.escalate is None and not first.end_call  # one angry turn is answered
    second = say(bot, state, "refund_request", ANGRY)
    assert second.escalate == "caller angry on two turns"
    assert second.end_call
    assert "sorry" in second.text.lower()
    assert state.escalated


def test_anger_must_be_on_consecutive_turns(bot: MinimalBot, state: ConversationState) -> None:
    say(bot, state, "order_status", ANGRY)
    say(bot, state, "refund_request", CALM)
    reply = say(bot, state, "cancel_order", ANGRY)
    assert reply.escalate is None
    assert not state.escalated


def test_mild_annoyance_is_not_anger(bot: MinimalBot, state: ConversationState) -> None:
    mild = {"label": "anger", "scores": {"anger": 0.4}}
    say(bot, state, "order_status", mild)
    assert say(bot, state, "refund_request", mild).escalate is None


def test_three_misunderstandings_in_a_row_escalate(
    bot: MinimalBot, state: ConversationState
) -> None:
    first = bot.respond(state, OOS, CALM)
    second = bot.respond(state, OOS, CALM)
    third = bot.respond(state, OOS, CALM)

    for reprompt in (first, second):
        assert reprompt.state == "no_match"
        assert not reprompt.end_call and reprompt.escalate is None
    assert first.text != second.text  # the caller is not told the same thing twice
    assert "order" in first.text
    assert third.escalate == "bot did not understand three times"
    assert third.end_call
    assert state.escalated


def test_a_low_confidence_label_counts_as_not_understood(
    bot: MinimalBot, state: ConversationState
) -> None:
    reply = say(bot, state, "order_status", out_of_scope=True, confidence=0.3)
    assert reply.state == "no_match"
    assert "shipped" not in reply.text


def test_an_understood_turn_resets_the_misunderstanding_count(
    bot: MinimalBot, state: ConversationState
) -> None:
    bot.respond(state, OOS, CALM)
    bot.respond(state, OOS, CALM)
    say(bot, state, "order_status")
    assert state.no_match == 0
    reply = bot.respond(state, OOS, CALM)
    assert reply.escalate is None and reply.state == "no_match"


# ---- ending the call ----------------------------------------------------------------------


def test_goodbye_ends_the_call(bot: MinimalBot, state: ConversationState) -> None:
    say(bot, state, "order_status")
    reply = say(bot, state, "goodbye")
    assert reply.end_call
    assert reply.escalate is None
    assert reply.state == "closed"
    assert f"Thank you for calling {SHOP_NAME}" in reply.text and "Goodbye" in reply.text
    assert not state.escalated


def test_no_after_an_answer_ends_the_call(bot: MinimalBot, state: ConversationState) -> None:
    say(bot, state, "order_status")  # "... Is there anything else?"
    reply = say(bot, state, "deny")
    assert reply.end_call and reply.state == "closed"
    assert reply.escalate is None


def test_no_as_the_first_thing_said_does_not_hang_up(
    bot: MinimalBot, state: ConversationState
) -> None:
    reply = say(bot, state, "deny")
    assert not reply.end_call
    assert "anything else" in reply.text.lower()


def test_no_after_a_greeting_does_not_hang_up(bot: MinimalBot, state: ConversationState) -> None:
    say(bot, state, "greeting")
    assert not say(bot, state, "deny").end_call


def test_the_call_closes_politely_after_max_turns(state: ConversationState) -> None:
    bot = MinimalBot(max_turns=3)
    assert not say(bot, state, "store_hours").end_call
    assert not say(bot, state, "affirm").end_call
    last = say(bot, state, "order_status")
    assert last.end_call and last.escalate is None
    assert "shipped" in last.text  # the question is still answered
    assert last.text.endswith(f"Thank you for calling {SHOP_NAME}. Goodbye!")
    assert "anything else" not in last.text.lower()


# ---- state --------------------------------------------------------------------------------


def test_state_round_trips_through_a_dict(bot: MinimalBot) -> None:
    state = ConversationState(customer={"name": "Ada", "tier": "gold"})
    say(bot, state, "order_status", ANGRY)
    bot.respond(state, OOS, CALM)

    stored = json.loads(json.dumps(state.to_dict()))  # as it travels through Redis
    restored = ConversationState.from_dict(stored)
    assert restored == state
    assert restored.turns == 2 and restored.no_match == 1 and restored.anger_turns == 0


def test_a_resumed_call_continues_where_it_left_off(bot: MinimalBot) -> None:
    state = ConversationState()
    say(bot, state, "order_status", ANGRY)
    resumed = ConversationState.from_dict(state.to_dict())
    assert say(bot, resumed, "refund_request", ANGRY).escalate == "caller angry on two turns"


def test_state_from_a_newer_version_ignores_unknown_fields() -> None:
    restored = ConversationState.from_dict({"turns": 3, "sentiment_trend": [0.1, 0.2]})
    assert restored.turns == 3
    assert restored == ConversationState(turns=3)
