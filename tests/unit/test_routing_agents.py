"""Agents as the router keeps them in a real Redis: login, breaks, heartbeats that
expire, wrap-up after a call, conversion counts, and API tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cluster.routing import (
    AgentExistsError,
    AgentProfile,
    AgentState,
    EscalationRequest,
    EscalationStatus,
    InvalidStateChangeError,
    NotYourCallError,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
    UnknownAgentError,
)
from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.switch import FakeSwitch

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now






@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[RoutingStore]:
    store = RoutingStore(redis_server.url)
    await store.redis.flushdb()
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_router(store, clock):
    def make(**settings: Any) -> SkillRouter:
        return SkillRouter(store, FakeSwitch(), RoutingSettings(**settings), clock=clock)

    return make


def profile(agent_id: str, **fields: Any) -> AgentProfile:
    return AgentProfile(agent_id=agent_id, extension=fields.pop("extension", "3000"), **fields)


def escalation(call: str = "call-1") -> EscalationRequest:
    return EscalationRequest(call_uuid=call, reason="angry customer")


async def test_a_vanished_agent_stops_receiving_calls(make_router, store) -> None:
    router = make_router(heartbeat_ttl_s=30)
    await router.add_agent(profile("ann"))
    await router.login("ann")
    ttl_ms = await store.redis.pttl(store.k("agent", "ann", "hb"))
    assert 0 < ttl_ms <= 30_000  # Redis expires the heartbeat by itself
    await store.redis.delete(store.k("agent", "ann", "hb"))  # as if 30 s passed silently
    assert (await router.escalate(escalation())).status is EscalationStatus.QUEUED
    report = await router.sweep()
    assert report.logged_out == ["ann"]
    assert (await router.get_agent("ann")).state is AgentState.LOGGED_OUT
    await router.heartbeat("ann")  # a heartbeat alone does not log the agent back in
    assert (await router.status("call-1")).status is EscalationStatus.QUEUED
    await router.login("ann")
    assert (await router.status("call-1")).agent_id == "ann"


async def test_pending_offers_of_a_vanished_agent_move_on(make_router, store) -> None:
    router = make_router()
    await router.add_agent(profile("ann"))
    await router.add_agent(profile("bob"))
    await router.login("ann")
    first = await router.escalate(escalation())
    await router.login("bob")
    await store.redis.delete(store.k("agent", "ann", "hb"))
    report = await router.sweep()
    assert report.expired_offers == [first.offer_id]
    assert (await router.status("call-1")).agent_id == "bob"


async def test_going_on_break_hands_back_pending_offers(make_router) -> None:
    router = make_router()
    for name in ("ann", "bob"):
        await router.add_agent(profile(name))
    await router.login("ann")
    first = await router.escalate(escalation())
    await router.login("bob")
    snapshot = await router.set_state("ann", "break")
    assert snapshot.state is AgentState.BREAK and snapshot.pending_offers == 0
    assert snapshot.no_answers == 0  # a break is not a missed call
    assert (await router.status("call-1")).agent_id == "bob"
    assert first.agent_id == "ann"


async def test_complete_counts_conversions_then_wrap_up_then_available(make_router, clock) -> None:
    router = make_router(wrap_up_s=15)
    await router.add_agent(profile("ann"))
    await router.login("ann")
    offer_id = (await router.escalate(escalation())).offer_id
    await router.accept(offer_id, "ann")
    snapshot = await router.complete("call-1", "ann", converted=True)
    assert snapshot.state is AgentState.WRAP_UP and snapshot.calls == []
    assert (snapshot.handled, snapshot.converted) == (1, 1)
    again = await router.complete("call-1", "ann", converted=True)
    assert (again.handled, again.converted) == (1, 1)  # idempotent
    assert snapshot.public()["conversion_rate"] == 1.0
    await router.escalate(escalation("call-2"))
    assert (await router.status("call-2")).status is EscalationStatus.QUEUED  # wrap-up
    clock.now += 16
    report = await router.sweep()
    assert report.back_from_wrap_up == ["ann"]
    assert (await router.status("call-2")).agent_id == "ann"


async def test_hangup_frees_the_agent_and_the_outcome_comes_later(make_router) -> None:
    router = make_router(wrap_up_s=0)
    await router.add_agent(profile("ann"))
    await router.add_agent(profile("bob"))
    await router.login("ann")
    offer_id = (await router.escalate(escalation())).offer_id
    await router.accept(offer_id, "ann")
    await router.call_ended("call-1")
    assert (await router.get_agent("ann")).state is AgentState.AVAILABLE
    with pytest.raises(NotYourCallError):
        await router.complete("call-1", "bob", converted=False)
    snapshot = await router.complete("call-1", "ann", converted=False)
    assert (snapshot.handled, snapshot.converted) == (1, 0)


async def test_agents_cannot_set_router_states(make_router) -> None:
    router = make_router()
    await router.add_agent(profile("ann"))
    with pytest.raises(InvalidStateChangeError, match="on_call"):
        await router.set_state("ann", AgentState.ON_CALL)
    with pytest.raises(UnknownAgentError, match="callfleet agents add"):
        await router.login("nobody")
    with pytest.raises(AgentExistsError):
        await router.add_agent(profile("ann"))


async def test_tokens_identify_their_agent_only(make_router, store) -> None:
    router = make_router()
    token = await router.add_agent(profile("ann"))
    assert token.startswith("ann:") and await router.authenticate(token) == "ann"
    assert await router.authenticate("ann:wrong") is None
    assert await router.authenticate("bob:" + token.split(":", 1)[1]) is None
    assert await router.authenticate("no-separator") is None
    stored = await store.redis.hgetall(store.k("agent", "ann"))
    assert token not in stored.values() and token.split(":", 1)[1] not in str(stored)
    fresh = await router.rotate_token("ann")
    assert await router.authenticate(token) is None and await router.authenticate(fresh) == "ann"


async def test_removing_an_agent_reroutes_their_offer(make_router) -> None:
    router = make_router()
    await router.add_agent(profile("ann"))
    await router.login("ann")
    await router.escalate(escalation())
    assert await router.remove_agent("ann")
    assert (await router.status("call-1")).status is EscalationStatus.QUEUED
    assert [a.agent_id for a in await router.list_agents()] == []
