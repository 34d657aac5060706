"""The routing rules on plain snapshots: who may get a call, who gets it, and in which
order waiting calls are served."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from cluster.routing.choice import (
    agent_weight,
    choose_agent,
    ineligibility,
    queue_order,
    smoothed_conversion_rate,
)
from cluster.routing.models import (
    AgentProfile,
    AgentSnapshot,
    AgentState,
    EscalationRecord,
    EscalationRequest,
)
from configs.routing import RoutingSettings

pytestmark = pytest.mark.unit


def agent(agent_id: str, skills=None, *, state=AgentState.AVAILABLE, online=True,
          concurrency=1, calls=(), pending=0, idle_since=0.0, handled=0, converted=0,
          credit=0.0) -> AgentSnapshot:
    return AgentSnapshot(
        profile=AgentProfile(agent_id=agent_id, extension=f"1{len(agent_id):03d}",
                             skills=skills or {}, concurrency=concurrency),
        state=state, online=online, calls=list(calls), pending_offers=pending,
        idle_since=idle_since, handled=handled, converted=converted, rr_credit=credit)


def request(call="c1", skills=None, vip=False, priority=0) -> EscalationRequest:
    return EscalationRequest(call_uuid=call, reason="asked for a person", skills=skills or {},
                             vip=vip, priority=priority)


def pick_many(agents: list[AgentSnapshot], req: EscalationRequest, settings: RoutingSettings,
              rounds: int) -> Counter:
    """Route `rounds` calls with everyone staying free, feeding the credits back as the
    router does through Redis."""
    wins: Counter = Counter()
    for _ in range(rounds):
        choice = choose_agent(agents, req, settings)
        assert choice is not None
        wins[choice.agent_id] += 1
        agents = [a.model_copy(update={"rr_credit": choice.credits.get(a.agent_id, a.rr_credit)})
                  for a in agents]
    return wins


def test_required_skills_and_minimum_levels() -> None:
    req = request(skills={"billing": 3, "german": 1})
    novice = agent("novice", {"billing": 2, "german": 1})
    no_german = agent("nogerman", {"billing": 5})
    expert = agent("expert", {"billing": 4, "german": 2})
    assert "billing" in ineligibility(novice, req)
    assert "german" in ineligibility(no_german, req)
    assert ineligibility(expert, req) is None
    assert choose_agent([novice, no_german, expert], req, RoutingSettings()).agent_id == "expert"
    assert choose_agent([novice, no_german], req, RoutingSettings()) is None


def test_skill_list_means_level_one_and_names_are_case_insensitive() -> None:
    req = EscalationRequest(call_uuid="c", reason="r", skills=["Billing", "de"])
    assert req.skills == {"billing": 1, "de": 1}
    assert ineligibility(agent("a", {"BILLING": 1, "de": 3}), req) is None
    with pytest.raises(ValidationError, match="outside 1..10"):
        EscalationRequest(call_uuid="c", reason="r", skills={"billing": 11})


def test_only_available_agents_with_a_heartbeat_and_room_are_offered() -> None:
    req = request()
    assert ineligibility(agent("a", online=False), req) == "no heartbeat"
    for state in (AgentState.BREAK, AgentState.WRAP_UP, AgentState.LOGGED_OUT):
        assert "state" in ineligibility(agent("a", state=state), req)
    assert "capacity" in ineligibility(agent("a", state=AgentState.ON_CALL, calls=["x"]), req)
    assert "capacity" in ineligibility(agent("a", pending=1), req)
    # concurrency 2: one call in progress still leaves room for one more
    assert ineligibility(agent("a", state=AgentState.ON_CALL, calls=["x"], concurrency=2), req) is None
    assert "capacity" in ineligibility(
        agent("a", state=AgentState.ON_CALL, calls=["x"], pending=1, concurrency=2), req)
    assert "already offered" in ineligibility(agent("a"), req, exclude=["a"])


def test_longest_idle_agent_wins_a_tie() -> None:
    agents = [agent("fresh", idle_since=300.0), agent("waiting", idle_since=100.0),
              agent("middle", idle_since=200.0)]
    assert choose_agent(agents, request(), RoutingSettings()).agent_id == "waiting"


def test_equal_weights_rotate_round_robin() -> None:
    agents = [agent(name, idle_since=i) for i, name in enumerate(["a", "b", "c"])]
    wins = pick_many(agents, request(), RoutingSettings(), rounds=30)
    assert wins == {"a": 10, "b": 10, "c": 10}


def test_higher_conversion_rate_gets_proportionally_more_calls() -> None:
    settings = RoutingSettings(base_weight=1.0, conversion_weight=4.0, prior_calls=0)
    strong = agent("strong", handled=100, converted=50)   # weight 1 + 4 * 0.5 = 3
    weak = agent("weak", handled=100, converted=0)         # weight 1
    wins = pick_many([strong, weak], request(), settings, rounds=400)
    assert wins["strong"] == 300 and wins["weak"] == 100
    # with conversion weighting off it is plain round-robin again
    flat = pick_many([strong, weak], request(), settings.model_copy(update={"conversion_weight": 0}),
                     rounds=100)
    assert flat["strong"] == flat["weak"] == 50


def test_weighted_rotation_does_not_burst_to_the_best_agent() -> None:
    settings = RoutingSettings(conversion_weight=4.0, prior_calls=0)
    agents = [agent("strong", handled=10, converted=5), agent("weak", handled=10)]
    sequence = []
    for _ in range(8):
        choice = choose_agent(agents, request(), settings)
        sequence.append(choice.agent_id)
        agents = [a.model_copy(update={"rr_credit": choice.credits[a.agent_id]}) for a in agents]
    # 3:1, interleaved: the weak agent gets one of every four calls, never starved
    assert sequence.count("weak") == 2
    assert "weak" in sequence[:4] and "weak" in sequence[4:]


def test_new_agent_is_judged_by_the_prior_not_by_zero() -> None:
    settings = RoutingSettings(prior_conversion_rate=0.2, prior_calls=10)
    newcomer = agent("new")
    assert smoothed_conversion_rate(newcomer, settings) == pytest.approx(0.2)
    lucky = agent("lucky", handled=1, converted=1)  # one sale is not a 100 % agent yet
    assert smoothed_conversion_rate(lucky, settings) == pytest.approx(3 / 11)


def test_skill_levels_above_the_minimum_can_add_weight() -> None:
    settings = RoutingSettings(skill_level_weight=1.0, conversion_weight=0.0)
    req = request(skills={"billing": 2})
    assert agent_weight(agent("a", {"billing": 5}), req, settings) == pytest.approx(4.0)
    assert agent_weight(agent("b", {"billing": 2}), req, settings) == pytest.approx(1.0)


def _record(call: str, at: float, vip=False, priority=0) -> EscalationRecord:
    return EscalationRecord(request=request(call, vip=vip, priority=priority),
                            enqueued_at=at, deadline=at + 60)


def test_queue_serves_vip_first_then_priority_then_arrival() -> None:
    records = [_record("early", 1.0), _record("urgent", 5.0, priority=9),
               _record("vip-late", 9.0, vip=True), _record("late", 7.0),
               _record("vip-early", 3.0, vip=True)]
    assert [r.request.call_uuid for r in queue_order(records)] == [
        "vip-early", "vip-late", "urgent", "early", "late"]


def test_profile_validation_messages() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        AgentProfile(agent_id="queue", extension="100")
    with pytest.raises(ValidationError, match="agent_id"):
        AgentProfile(agent_id="bad id:x", extension="100")
    with pytest.raises(ValidationError, match="level 0"):
        AgentProfile(agent_id="a", extension="100", skills={"billing": 0})
    with pytest.raises(ValidationError, match="heartbeat_ttl_s"):
        RoutingSettings(offer_timeout_s=300, heartbeat_ttl_s=5)
