"""The script runtime: what the caller hears and which actions come out for transitions,
misses, silence, key presses, lookups (and their failures), FAQ answers, resumed calls and
A/B variants."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from bots import demo_orders
from bots.script import (
    BotTurn,
    DialogState,
    Hangup,
    ScriptBot,
    Ticket,
    Transfer,
    TurnInput,
    choose_variant,
    load_script_text,
)
from training.models.outputs import EmotionResult, IntentResult

pytestmark = pytest.mark.unit

INTENTS = """
intents:
  order_status: {examples: [where is my order, track my parcel, has it shipped, order status, where is it]}
  refund_request: {examples: [i want a refund, money back, refund please, return it, refund my order]}
  affirm: {examples: ["yes", yeah, sure, correct, right]}
  deny: {examples: ["no", nope, no thanks, not really, nah]}
  talk_to_human: {examples: [agent, a person, human please, operator, real person]}
  oos: {examples: [weather, tell me a joke, football, recipe, bank balance]}
"""

SCRIPT = """
bot: tester
intents: intents.yaml
start: greet
variables: {order_id: null, order: {}, interest: 0}
services: {orders: http://orders.demo}
defaults: {max_no_match: 1, max_no_input: 1}
global:
  - intent: talk_to_human
    goto: handover
  - dtmf: "0"
    goto: handover
states:
  greet:
    ask:
      prompt: "Hi {customer.name|there}, how can I help?"
      reprompt: ["Sorry, say order or refund."]
    on:
      - intent: order_status
        entity: order_id
        do: [{set: {order_id: "{entities.order_id}"}}]
        goto: find
      - intent: order_status
        goto: ask_id
      - intent: refund_request
        do:
          - ticket: {queue: refunds, subject: "Refund for {customer.name|a caller}", fields: {turn: "{turns}"}}
          - say: Refund opened.
        goto: bye
      - silence: true
        do: [{say: "Take your time."}]
      - intent: oos
        do: [{faq: {}}]
  ask_id:
    ask:
      prompt: What is the order number?
      no_input: ["Still there? The order number, please."]
      on_no_input: bye
    on:
      - entity: order_id
        do: [{set: {order_id: "{entities.order_id}"}}]
        goto: find
      - dtmf: ["1", "2"]
        do: [{set: {interest: 0.9}}]
        goto: hot
  find:
    enter:
      - lookup:
          http: {service: orders, path: "/orders/{order_id}"}
          into: order
          timeout_s: 1.5  # generous: a loaded test machine is slow
          on_failure: broken
          on_not_found: unknown
      - say: "Order {order.id} {order.status_text}."
    next: bye
  unknown:
    say: "No order {order_id}."
    next: bye
  broken:
    say: "Order system down ({lookup.error})."
    next: handover
  hot:
    next:
      - {when: "interest > 0.7", goto: handover}
      - {goto: bye}
  handover:
    say: Connecting you.
    enter: [{transfer: {skill: support, priority: 6, reason: caller asked for a person}}]
  bye:
    say: Goodbye.
    enter: [{hangup: done}]
"""

CALM = EmotionResult("neutral", {"anger": 0.05, "neutral": 0.9})


def said(text: str, label: str, confidence: float = 0.9, emotion=CALM) -> TurnInput:
    oos = label == "oos" or confidence < 0.45
    return TurnInput(text, IntentResult(label, confidence, [(label, confidence)], oos), emotion)


@pytest.fixture
def script(tmp_path: Path):
    (tmp_path / "intents.yaml").write_text(INTENTS)
    return load_script_text(textwrap.dedent(SCRIPT), "tester.yaml", tmp_path)


@pytest.fixture
async def http():
    client = demo_orders.asgi_client()
    yield client
    await client.aclose()


@pytest.fixture
def bot(script, http) -> ScriptBot:
    return ScriptBot(script, http=http)


async def test_greeting_fills_in_the_customer_and_falls_back_when_missing(bot) -> None:
    turn = await bot.start(bot.new_state(customer={"name": "Ada"}))
    assert turn.text == "Hi Ada, how can I help?"
    assert (await bot.start(bot.new_state())).text == "Hi there, how can I help?"


async def test_order_status_with_id_looks_it_up_over_http_and_says_goodbye(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    turn = await bot.on_turn(state, said("where is order A1002", "order_status"))
    assert turn.text == ("Order A1002 is being packed and should arrive next Monday. Goodbye.")
    assert turn.end_call and turn.of_type(Hangup) == [Hangup("done")]
    assert state.variables["order"]["item"] == "blue wool sweater"


async def test_unknown_order_takes_the_not_found_branch(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("where is my order", "order_status"))
    turn = await bot.on_turn(state, said("it's Z9999", "oos", 0.2))
    assert turn.text.startswith("No order Z9999.")


async def test_lookup_timeout_takes_the_failure_branch(script) -> None:
    slow = demo_orders.asgi_client(delay_s=6.0)
    try:
        bot = ScriptBot(script, http=slow)
        state = bot.new_state()
        await bot.start(state)
        turn = await bot.on_turn(state, said("where is order A1001", "order_status"))
    finally:
        await slow.aclose()
    assert turn.text == "Order system down (timeout). Connecting you."
    assert turn.of_type(Transfer)[0].skills == ("support",)


async def test_registered_function_lookup_and_its_failures(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    text = SCRIPT.replace('http: {service: orders, path: "/orders/{order_id}"}',
                          'function: find_order\n          args: {order_id: "{order_id}"}')
    script = load_script_text(textwrap.dedent(text), "fn.yaml", tmp_path)

    async def slow(order_id: str):
        await asyncio.sleep(6)

    def broken(order_id: str):
        raise RuntimeError("database on fire")

    for fn, expected in ((demo_orders.find_order, "Order A1003 was delivered"),
                         (slow, "Order system down (timeout)"),
                         (broken, "Order system down (error)"),
                         (lambda order_id: ["not", "a", "mapping"], "Order system down (bad_result)")):
        bot = ScriptBot(script, functions={"find_order": fn})
        state = bot.new_state()
        await bot.start(state)
        turn = await bot.on_turn(state, said("where is order A1003", "order_status"))
        assert turn.text.startswith(expected), (fn, turn.text)


def test_a_script_needing_an_unregistered_function_is_refused(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    text = SCRIPT.replace('http: {service: orders, path: "/orders/{order_id}"}',
                          "function: find_order")
    script = load_script_text(textwrap.dedent(text), "fn.yaml", tmp_path)
    with pytest.raises(ValueError, match=r"\['find_order'\] are not registered"):
        ScriptBot(script)


async def test_low_confidence_is_a_miss_then_the_bot_hands_over(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    first = await bot.on_turn(state, said("erm the thing", "order_status", 0.3))
    assert first.text == "Sorry, say order or refund." and not first.understood
    second = await bot.on_turn(state, said("the stuff", "refund_request", 0.2))
    assert second.end_call and second.escalation is not None
    assert second.escalation.reason == "low_confidence"
    assert second.text == "I'm connecting you with one of my colleagues now. Please hold."


async def test_refund_creates_a_ticket_with_templated_fields(bot) -> None:
    state = bot.new_state(customer={"name": "Ada"})
    await bot.start(state)
    turn = await bot.on_turn(state, said("i want my money back", "refund_request"))
    assert turn.of_type(Ticket) == [Ticket("refunds", "Refund for Ada", "normal", {"turn": 1})]
    assert turn.text == "Refund opened. Goodbye."


async def test_silence_transition_and_no_input_limit(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    assert (await bot.on_no_input(state)).text == "Take your time."
    await bot.on_turn(state, said("where's my order", "order_status"))
    assert (await bot.on_no_input(state)).text == "Still there? The order number, please."
    last = await bot.on_no_input(state)
    assert last.text == "Goodbye." and last.end_call


async def test_default_no_input_goodbye_hangs_up(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    text = textwrap.dedent(SCRIPT).replace("      on_no_input: bye\n", "")
    bot = ScriptBot(load_script_text(text, "t.yaml", tmp_path))
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("where's my order", "order_status"))
    await bot.on_no_input(state)
    last = await bot.on_no_input(state)
    assert last.of_type(Hangup) == [Hangup("no input from the caller")]
    assert "can't hear you" in last.text


async def test_dtmf_routes_and_next_rules_branch_on_variables(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("where's my order", "order_status"))
    turn = await bot.on_dtmf(state, "2")
    assert turn.state == "handover" and turn.of_type(Transfer)[0].priority == 6
    state2 = bot.new_state()
    await bot.start(state2)
    assert (await bot.on_dtmf(state2, "0")).state == "handover"  # global key


async def test_faq_answers_out_of_scope_questions_and_a_miss_reprompts(script) -> None:
    answers = {"do you ship abroad": "We ship to 30 countries."}
    bot = ScriptBot(script, faq_lookup=lambda q: answers.get(q))
    state = bot.new_state()
    await bot.start(state)
    hit = await bot.on_turn(state, said("do you ship abroad", "oos", 0.8))
    assert hit.text == "We ship to 30 countries." and hit.understood
    miss = await bot.on_turn(state, said("what's the weather", "oos", 0.8))
    assert miss.text == "Sorry, say order or refund." and not miss.understood


async def test_a_failing_knowledge_base_is_a_miss_not_a_crash(script) -> None:
    async def down(question: str) -> str:
        raise ConnectionError("kb down")

    bot = ScriptBot(script, faq_lookup=down)
    state = bot.new_state()
    await bot.start(state)
    turn = await bot.on_turn(state, said("do you ship abroad", "oos", 0.8))
    assert not turn.understood and turn.text == "Sorry, say order or refund."


async def test_person_request_anywhere_transfers_with_a_brief(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("where's my order", "order_status"))
    turn = await bot.on_turn(state, said("get me a human", "talk_to_human"))
    transfer = turn.of_type(Transfer)[0]
    assert transfer.reason == "caller asked for a person"
    assert "Caller wanted: order status" in transfer.brief
    assert turn.end_call and transfer.reason == "caller asked for a person"
    assert turn.text == "Connecting you." and turn.state == "handover"


async def test_anger_hands_over_instead_of_answering(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    furious = EmotionResult("anger", {"anger": 0.95, "neutral": 0.02})
    turn = await bot.on_turn(state, said("where is my order", "order_status", emotion=furious))
    assert turn.text == "I'm connecting you with one of my colleagues now. Please hold."
    assert turn.escalation.reason == "anger" and "deescalation" in turn.escalation.skills


async def test_a_resumed_call_continues_from_stored_json_on_another_bot(script, http) -> None:
    first = ScriptBot(script, http=http)
    state = first.new_state(call_uuid="c-1", customer={"name": "Ada"})
    await first.start(state)
    await first.on_turn(state, said("where's my order", "order_status"))
    stored = json.dumps(state.to_dict())  # what Redis holds
    other = ScriptBot(script, http=http)  # another replica
    resumed = DialogState.from_dict(json.loads(stored))
    assert (await other.start(resumed)).text == "What is the order number?"  # repeats question
    turn = await other.on_turn(resumed, said("A1005", "oos", 0.1))
    assert "out for delivery" in turn.text
    assert resumed.seq > state.seq


async def test_dialog_state_round_trips_through_json(bot) -> None:
    state = bot.new_state(customer={"name": "Ada", "tier": "gold"})
    await bot.start(state)
    await bot.on_turn(state, said("where's my order", "order_status"))
    await bot.on_turn(state, said("do you ship abroad", "oos", 0.8))
    restored = DialogState.from_json(state.to_json())  # as it travels through Redis
    assert restored == state
    assert restored.turns == 2 and restored.no_match == 1


def test_dialog_state_from_a_newer_version_ignores_unknown_fields() -> None:
    restored = DialogState.from_dict({"turns": 3, "sentiment_trend": [0.1, 0.2]})
    assert restored.turns == 3
    assert restored == DialogState(turns=3)


async def test_speech_without_model_results_is_out_of_scope(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    turn = await bot.on_turn(state, TurnInput("where is my order"))  # no intent, no emotion
    assert not turn.understood


async def test_an_ended_call_stays_ended(bot) -> None:
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("refund", "refund_request"))
    after = await bot.on_turn(state, said("hello?", "affirm"))
    assert after == BotTurn((), (), "bye", True, None, True)


async def test_conditions_that_fail_at_run_time_are_false(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    text = textwrap.dedent(SCRIPT).replace('{when: "interest > 0.7", goto: handover}',
                                           '{when: "order > 0.7", goto: handover}')
    bot = ScriptBot(load_script_text(text, "t.yaml", tmp_path))
    state = bot.new_state()
    await bot.start(state)
    await bot.on_turn(state, said("where's my order", "order_status"))
    turn = await bot.on_dtmf(state, "1")  # `order` is a mapping: the comparison fails
    assert turn.state == "bye" and turn.end_call


async def test_a_next_loop_is_cut_and_handed_over(tmp_path: Path) -> None:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    loop = textwrap.dedent("""
        bot: loop
        intents: intents.yaml
        start: a
        states:
          a: {say: A, next: b}
          b: {next: a}
    """)
    bot = ScriptBot(load_script_text(loop, "loop.yaml", tmp_path))
    turn = await bot.start(bot.new_state())
    assert turn.end_call and turn.escalation.reason == "script_error"


def test_variants_are_deterministic_per_call_and_follow_the_weights() -> None:
    weights = {"regular": 1, "limited_time": 3}
    assert choose_variant("call-42", weights, "promo") == choose_variant("call-42", weights, "promo")
    picks = [choose_variant(f"call-{i}", weights, "promo") for i in range(4000)]
    share = picks.count("limited_time") / len(picks)
    assert 0.70 < share < 0.80
    with pytest.raises(ValueError):
        choose_variant("x", {"a": 0})
