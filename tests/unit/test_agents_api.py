"""The agent API through FastAPI's TestClient, over a real Redis and a fake switch:
authentication, agent actions, accept/reject, and offers arriving on the websocket feed.

Everything the test does to the router runs on the app's event loop (`client.portal`),
as it would inside the API process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from cluster.routing import (
    AgentProfile,
    EscalationRequest,
    FeedHub,
    RedisFeedPublisher,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
)
from cluster.runtime.redis_server import EmbeddedRedis
from deployments.api.agents import AgentApi, AgentApiSettings, build_agents_router
from tests.fakes.switch import FakeSwitch

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

SUPERVISOR_KEY = "supervisor-key-for-tests"


class Desk:
    """The app under test plus handles on its parts."""

    def __init__(self, client: TestClient, router: SkillRouter, switch: FakeSwitch):
        self.client, self.router, self.switch = client, router, switch
        self.tokens: dict[str, str] = {}

    def run(self, fn, *args: Any) -> Any:
        return self.client.portal.call(fn, *args)

    def add(self, agent_id: str, extension: str, login: bool = True) -> str:
        token = self.run(self.router.add_agent, AgentProfile(agent_id=agent_id, extension=extension))
        self.tokens[agent_id] = token
        if login:
            self.run(self.router.login, agent_id)
        return token

    def auth(self, agent_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[agent_id]}"}

    def escalate(self, call: str = "call-1", **fields: Any):
        request = EscalationRequest(
            call_uuid=call, reason="asked for a person", brief="wants to cancel",
            transcript=[{"speaker": "caller", "text": "get me a human"}],
            customer={"name": "Pat", "tier": "vip"}, intents=[{"label": "cancel"}],
            emotions=[{"label": "anger", "score": 0.9}], **fields)
        return self.run(self.router.escalate, request)


@pytest.fixture
def desk(redis_server: EmbeddedRedis) -> Iterator[Desk]:
    store = RoutingStore(redis_server.url)
    switch = FakeSwitch()
    router = SkillRouter(store, switch, RoutingSettings(transfer_context="agents"),
                         sinks=[RedisFeedPublisher(store)])
    hub = FeedHub(redis_server.url, channel=store.feed_channel)
    api = AgentApi(service=router, settings=AgentApiSettings(api_key=SUPERVISOR_KEY), feed=hub)
    app = FastAPI()
    app.include_router(build_agents_router(api))
    with TestClient(app) as client:
        client.portal.call(store.redis.flushdb)
        yield Desk(client, router, switch)
        client.portal.call(hub.close)
        client.portal.call(store.close)


def test_requests_without_a_valid_token_get_401(desk: Desk) -> None:
    desk.add("ann", "7001")
    for headers in ({}, {"Authorization": "Bearer ann:not-the-secret"},
                    {"Authorization": "Basic YW5uOng="}):
        response = desk.client.get("/agents/ann", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert desk.client.get("/agents/ann", headers=desk.auth("ann")).status_code == 200


def test_an_agent_cannot_act_for_another_agent(desk: Desk) -> None:
    desk.add("ann", "7001")
    desk.add("bob", "7002", login=False)
    for method, path in (("get", "/agents/bob"), ("post", "/agents/bob/login"),
                         ("post", "/agents/bob/heartbeat"), ("get", "/agents")):
        response = getattr(desk.client, method)(path, headers=desk.auth("ann"))
        assert response.status_code == 403, path
    offer_id = desk.escalate().offer_id  # offered to ann, the only agent logged in
    response = desk.client.post(f"/agents/offers/{offer_id}/accept", headers=desk.auth("bob"))
    assert response.status_code == 403 and desk.switch.transfers == []
    response = desk.client.post(f"/agents/offers/{offer_id}/accept", headers=desk.auth("ann"),
                                json={"agent_id": "bob"})
    assert response.status_code == 403


def test_supervisor_key_sees_everyone_and_acts_for_an_agent(desk: Desk) -> None:
    desk.add("ann", "7001")
    supervisor = {"Authorization": f"Bearer {SUPERVISOR_KEY}"}
    listing = desk.client.get("/agents", headers=supervisor)
    assert listing.status_code == 200 and [a["agent_id"] for a in listing.json()] == ["ann"]
    assert "token" not in listing.text
    offer_id = desk.escalate().offer_id
    missing = desk.client.post(f"/agents/offers/{offer_id}/accept", headers=supervisor)
    assert missing.status_code == 422
    accepted = desk.client.post(f"/agents/offers/{offer_id}/accept", headers=supervisor,
                                json={"agent_id": "ann"})
    assert accepted.status_code == 200 and desk.switch.transfers == [("call-1", "7001", "agents")]


def test_agent_states_through_the_api(desk: Desk) -> None:
    desk.add("ann", "7001", login=False)
    headers = desk.auth("ann")
    assert desk.client.post("/agents/ann/login", headers=headers).json()["state"] == "available"
    beat = desk.client.post("/agents/ann/heartbeat", headers=headers).json()
    assert beat["online"] is True
    state = desk.client.post("/agents/ann/state", headers=headers, json={"state": "break"})
    assert state.json()["state"] == "break"
    refused = desk.client.post("/agents/ann/state", headers=headers, json={"state": "on_call"})
    assert refused.status_code == 422 and "router" in refused.text
    assert desk.client.post("/agents/ann/logout", headers=headers).json()["state"] == "logged_out"
    assert desk.client.post("/agents/nobody/login",
                            headers={"Authorization": f"Bearer {SUPERVISOR_KEY}"}).status_code == 404


def test_accept_transfers_or_bridges_and_is_idempotent(desk: Desk) -> None:
    desk.add("ann", "7001")
    headers = desk.auth("ann")
    first = desk.escalate("call-1").offer_id
    one = desk.client.post(f"/agents/offers/{first}/accept", headers=headers)
    two = desk.client.post(f"/agents/offers/{first}/accept", headers=headers)
    assert one.status_code == two.status_code == 200 and one.json()["state"] == "accepted"
    assert desk.switch.transfers == [("call-1", "7001", "agents")]
    desk.client.post("/agents/ann/calls/call-1/complete", headers=headers, json={"converted": True})
    desk.run(desk.router.set_state, "ann", "available")  # skip the wrap-up
    second = desk.escalate("call-2").offer_id
    bridged = desk.client.post(f"/agents/offers/{second}/accept", headers=headers,
                               json={"agent_leg_uuid": "ann-softphone-leg"})
    assert bridged.json()["connect"] == "bridge"
    assert desk.switch.bridges == [("call-2", "ann-softphone-leg")]
    late = desk.client.post(f"/agents/offers/{second}/reject", headers=headers)
    assert late.status_code == 409 and "accepted" in late.text
    unknown = desk.client.post("/agents/offers/nope/accept", headers=headers)
    assert unknown.status_code == 404


def test_reject_reroutes_and_complete_records_the_outcome(desk: Desk) -> None:
    desk.add("ann", "7001")
    first = desk.escalate()
    desk.add("bob", "7002")
    moved = desk.client.post(f"/agents/offers/{first.offer_id}/reject",
                             headers=desk.auth(first.agent_id))
    assert moved.status_code == 200 and moved.json()["agent_id"] not in (None, first.agent_id)
    other = moved.json()["agent_id"]
    desk.client.post(f"/agents/offers/{moved.json()['offer_id']}/accept", headers=desk.auth(other))
    done = desk.client.post(f"/agents/{other}/calls/call-1/complete", headers=desk.auth(other),
                            json={"converted": True})
    assert done.status_code == 200
    assert (done.json()["state"], done.json()["converted"]) == ("wrap_up", 1)
    wrong = desk.client.post(f"/agents/{first.agent_id}/calls/call-1/complete",
                             headers=desk.auth(first.agent_id), json={"converted": False})
    assert wrong.status_code == 403


def test_queue_lists_waiting_calls_without_customer_data(desk: Desk) -> None:
    desk.add("ann", "7001", login=False)
    desk.escalate("call-1")
    desk.escalate("call-2", vip=True)
    response = desk.client.get("/agents/queue", headers=desk.auth("ann"))
    assert [q["call_uuid"] for q in response.json()] == ["call-2", "call-1"]
    assert "Pat" not in response.text and "human" not in response.text


def test_feed_pushes_offers_with_the_context_brief(desk: Desk) -> None:
    desk.add("ann", "7001")
    with desk.client.websocket_connect(f"/agents/feed?token={desk.tokens['ann']}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["agent"]["state"] == "available"
        assert hello["pending_offers"] == []
        result = desk.escalate()
        event = ws.receive_json()
        assert event["type"] == "offer" and event["agent_id"] == "ann"
        brief = event["offer"]
        assert brief["offer_id"] == result.offer_id and brief["reason"] == "asked for a person"
        assert brief["transcript"][0]["text"] == "get me a human"
        assert brief["customer"]["tier"] == "vip" and brief["emotions"][0]["label"] == "anger"
        assert brief["intents"] == [{"label": "cancel"}]
        desk.client.post(f"/agents/offers/{result.offer_id}/accept", headers=desk.auth("ann"))
        closed = ws.receive_json()
        assert (closed["type"], closed["state"]) == ("offer_closed", "accepted")
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] in ("agent_state", "pong")


def test_feed_authenticates_by_first_message_and_shows_pending_offers(desk: Desk) -> None:
    desk.add("ann", "7001")
    offer_id = desk.escalate().offer_id
    with desk.client.websocket_connect("/agents/feed") as ws:
        ws.send_json({"type": "auth", "token": desk.tokens["ann"]})
        hello = ws.receive_json()
        assert [o["offer_id"] for o in hello["pending_offers"]] == [offer_id]


def test_feed_closes_on_a_bad_token_or_another_agent(desk: Desk) -> None:
    desk.add("ann", "7001")
    desk.add("bob", "7002")
    for url in ("/agents/feed?token=ann:wrong",
                f"/agents/feed?token={desk.tokens['ann']}&agent_id=bob"):
        with desk.client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008
    with desk.client.websocket_connect(f"/agents/feed?token={desk.tokens['ann']}") as ws:
        ws.receive_json()
        ws.send_text("not json")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1003
