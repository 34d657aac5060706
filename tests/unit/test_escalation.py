"""Escalation policy: each rule hands the call to a person when it should, with the
priority, skills and brief an agent needs, and stays quiet when it should not."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bots.escalation import (
    Escalation,
    EscalationPolicy,
    EscalationSettings,
    EscalationTrace,
    TurnSignals,
)

pytestmark = pytest.mark.unit

CALM = {"anger": 0.05, "neutral": 0.9}
ANNOYED = {"anger": 0.7, "neutral": 0.3}
FURIOUS = {"anger": 0.93, "neutral": 0.05}
CUSTOMER = {"name": "Ada"}


def turn(intent: str | None = "order_status", confidence: float = 0.9, emotion=CALM,
         understood: bool = True, out_of_scope: bool = False, text: str = "") -> TurnSignals:
    return TurnSignals(intent, confidence, out_of_scope, emotion, understood, text)


def run(policy: EscalationPolicy, turns: list[TurnSignals], customer=CUSTOMER,
        ) -> tuple[list[Escalation | None], EscalationTrace]:
    trace = EscalationTrace()
    results = []
    for signals in turns:
        policy.observe(trace, signals)
        results.append(policy.check(trace, signals, customer, skills=["support"], priority=5))
    return results, trace


@pytest.fixture
def policy() -> EscalationPolicy:
    return EscalationPolicy(EscalationSettings())


def test_calm_understood_call_never_escalates(policy: EscalationPolicy) -> None:
    results, _ = run(policy, [turn("order_status"), turn("affirm"), turn("refund_request")])
    assert results == [None, None, None]


def test_one_furious_turn_escalates_at_once_with_deescalation_skill(policy) -> None:
    results, _ = run(policy, [turn(emotion=FURIOUS)])
    esc = results[0]
    assert esc is not None and esc.reason == "anger"
    assert esc.priority == 8
    assert esc.skills == ("support", "deescalation")
    assert "very angry" in esc.brief


def test_anger_sustained_over_two_turns_escalates_on_the_second(policy) -> None:
    results, trace = run(policy, [turn(emotion=ANNOYED), turn(emotion=ANNOYED)])
    assert results[0] is None
    assert results[1] is not None and results[1].reason == "sustained_anger"
    assert trace.anger_streak == 2


def test_a_calm_turn_breaks_the_anger_streak(policy) -> None:
    results, _ = run(policy, [turn(emotion=ANNOYED), turn(emotion=CALM), turn(emotion=ANNOYED)])
    assert results == [None, None, None]


def test_frustration_counts_as_anger_when_configured() -> None:
    policy = EscalationPolicy(EscalationSettings(anger_labels=["anger", "frustration"]))
    results, _ = run(policy, [turn(emotion={"frustration": 0.9, "anger": 0.1})])
    assert results[0] is not None and results[0].reason == "anger"


def test_three_misunderstood_turns_in_a_row_escalate(policy) -> None:
    misses = [turn("deny", 0.8, understood=False)] * 3
    results, trace = run(policy, misses)
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].reason == "no_match"
    assert trace.no_match_total == 3


def test_an_understood_turn_resets_the_misses(policy) -> None:
    results, _ = run(policy, [turn(understood=False), turn(understood=False), turn(),
                              turn(understood=False), turn(understood=False)])
    assert results == [None] * 5


def test_low_confidence_misses_are_named_as_such(policy) -> None:
    unsure = [turn("refund_request", 0.3, understood=False)] * 3
    results, _ = run(policy, unsure)
    assert results[2] is not None and results[2].reason == "low_confidence"


def test_out_of_scope_misses_are_named_as_such(policy) -> None:
    oos = [turn("oos", 0.9, out_of_scope=True, understood=False)] * 3
    results, _ = run(policy, oos)
    assert results[2] is not None and results[2].reason == "out_of_scope"


def test_out_of_scope_questions_the_bot_answered_do_not_escalate(policy) -> None:
    answered = [turn("oos", 0.9, out_of_scope=True, understood=True)] * 4
    results, _ = run(policy, answered)
    assert results == [None] * 4


def test_asking_for_a_person_escalates_by_intent(policy) -> None:
    results, _ = run(policy, [turn("talk_to_human")])
    assert results[0] is not None and results[0].reason == "person_requested"
    assert results[0].priority == 6


def test_asking_for_a_person_escalates_by_phrase_when_the_model_misses_it(policy) -> None:
    results, _ = run(policy, [turn("oos", 0.3, out_of_scope=True,
                                   text="Can I just talk to a Real Person please")])
    assert results[0] is not None and results[0].reason == "person_requested"
    results, _ = run(policy, [turn("order_status", text="the personal shopper sent it")])
    assert results[0] is None  # "person" inside another word is not a request


def test_vip_customers_get_higher_priority_and_the_vip_skill(policy) -> None:
    results, _ = run(policy, [turn("talk_to_human")], customer={"name": "Bo", "vip": True})
    esc = results[0]
    assert esc is not None
    assert esc.priority == 6 + 2
    assert "vip" in esc.skills
    assert "VIP customer" in esc.brief


def test_vip_tier_is_recognised_by_the_configurable_condition(policy) -> None:
    assert policy.is_vip({"tier": "platinum"})
    assert not policy.is_vip({"tier": "standard"})
    assert not policy.is_vip({"tier": 3})  # wrong type: not a VIP, no crash


def test_vips_go_to_a_person_at_start_only_when_configured() -> None:
    trace = EscalationTrace()
    default = EscalationPolicy()
    assert default.at_start(trace, {"vip": True}) is None
    eager = EscalationPolicy(EscalationSettings(vip_transfer_at_start=True))
    esc = eager.at_start(trace, {"vip": True}, skills=["support"])
    assert esc is not None and esc.reason == "vip" and "vip" in esc.skills
    assert eager.at_start(trace, {"vip": False}) is None


def test_script_transfer_keeps_the_scripts_priority_and_skills(policy) -> None:
    trace = EscalationTrace()
    policy.observe(trace, turn("refund_request"))
    trace.note_tried("looked up order (orders)")
    esc = policy.for_transfer(trace, CUSTOMER, ["sales", "senior"], 7, "very interested")
    assert (esc.reason, esc.priority, esc.skills) == ("script", 7, ("sales", "senior"))
    assert "Caller wanted: refund request." in esc.brief
    assert "Bot tried: looked up order (orders)." in esc.brief


def test_brief_says_what_the_caller_wanted_and_what_the_bot_tried(policy) -> None:
    trace = EscalationTrace()
    for intent in ("greeting", "order_status", "refund_request", "affirm"):
        policy.observe(trace, turn(intent))
    trace.note_tried("asked for the order number")
    trace.note_tried("asked for the order number")  # repeats are not listed twice
    trace.note_tried("looked up order (orders): timeout")
    policy.observe(trace, turn(emotion=FURIOUS, understood=False))
    esc = policy.check(trace, turn(emotion=FURIOUS), CUSTOMER)
    assert esc is not None
    assert "Caller wanted: order status, refund request." in esc.brief
    assert "asked for the order number; looked up order (orders): timeout" in esc.brief
    assert "peak anger 0.93" in esc.brief and "1 turn(s) not understood" in esc.brief
    assert len(esc.brief) < 400


def test_brief_never_contains_what_the_caller_said(policy) -> None:
    results, _ = run(policy, [turn("talk_to_human", text="my card 4111 1111 get me an agent")])
    assert results[0] is not None and "4111" not in results[0].brief


def test_disabled_policy_never_escalates() -> None:
    policy = EscalationPolicy(EscalationSettings(enabled=False))
    results, _ = run(policy, [turn("talk_to_human", emotion=FURIOUS)])
    assert results == [None]


def test_trace_survives_json_round_trip() -> None:
    policy = EscalationPolicy()
    trace = EscalationTrace()
    policy.observe(trace, turn("order_status", emotion=ANNOYED))
    copy = EscalationTrace.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert copy == trace


def test_settings_reject_bad_values_with_clear_messages() -> None:
    with pytest.raises(ValidationError, match="unknown operator"):
        EscalationSettings(vip_condition="customer.vip = true")
    with pytest.raises(ValidationError, match="1..10"):
        EscalationSettings(priorities={"anger": 11})
    with pytest.raises(ValidationError, match="extra"):
        EscalationSettings(angr_threshold=0.5)
