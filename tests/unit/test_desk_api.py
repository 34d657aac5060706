"""What the agent desk and the wallboard rely on, without a browser (tests/browser drives
the pages): masked numbers, the supervisor's eavesdrop command lines, a caller who hung
up answering 409 (not 502), the brief's turn count, wrap-up notes, and the page and
wallboard routes' credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bots.script.turns import Transfer
from cluster.routing import (
    AgentProfile,
    EscalationRequest,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
    mask_number,
)
from cluster.runtime.redis_server import EmbeddedRedis
from deployments.api.agents import AgentApi, AgentApiSettings, build_agents_router
from deployments.api.desk import DeskView, build_desk_router
from telephony import esl_commands as cmd
from telephony.call_control import CallGoneError
from telephony.call_data import Handover, TurnRecord
from tests.fakes.switch import FakeSwitch

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

KEY = "supervisor-key-for-desk-tests"
LEG = "5b1f3c2e-0000-4000-8000-000000000001"
CALL = "5b1f3c2e-0000-4000-8000-000000000002"


def test_numbers_are_masked_to_their_last_four_digits_and_masking_is_idempotent() -> None:
    assert mask_number("+15550107788") == "+•••••••7788"
    assert mask_number(mask_number("+15550107788")) == "+•••••••7788"
    assert mask_number("7001") == "••01" and mask_number(None) == ""
    request = EscalationRequest(call_uuid="c", reason="r", caller="+15550107788")
    assert request.caller == "+•••••••7788"


def test_eavesdrop_lines_ring_the_supervisor_and_pick_the_mode() -> None:
    line = cmd.eavesdrop(LEG, CALL, "7900", "agents", "whisper")
    assert line.startswith("originate {origination_uuid=" + LEG + ",callfleet_role=supervisor,")
    assert "eavesdrop_whisper_aleg=false,eavesdrop_whisper_bleg=true}" in line
    assert line.endswith(f"}}loopback/7900/agents &eavesdrop({CALL})")
    assert "eavesdrop_whisper_aleg=true,eavesdrop_whisper_bleg=true" in cmd.eavesdrop(
        LEG, CALL, "7900", "agents", "barge")
    assert cmd.eavesdrop_mode(LEG, "listen") == f"uuid_recv_dtmf {LEG} 0"
    for bad in (lambda: cmd.eavesdrop(LEG, CALL, "79 00", "agents"),
                lambda: cmd.eavesdrop(LEG, CALL, "7900", "agents", "shout"),
                lambda: cmd.eavesdrop(LEG, "x;y", "7900", "agents")):
        with pytest.raises(cmd.CommandArgumentError):
            bad()


def test_the_brief_counts_the_turns_its_transcript_holds() -> None:
    transfer = Transfer(("support",), 6, "caller pressed zero",
                        "Why: caller pressed zero. Bot tried: nothing yet. Turns so far: 0.")
    turns = [TurnRecord(n=1, bot="Press zero for a person.", bot_state="cancel",
                        caller="cancel my order"),
             TurnRecord(n=1, bot="Connecting you now.", bot_state="handover", dtmf="0")]
    handover = Handover.build(transfer, turns)
    assert handover.brief.endswith("Turns so far: 2.") and len(handover.turns) == 2


class Rig:
    def __init__(self, client: TestClient, router: SkillRouter, switch: FakeSwitch):
        self.client, self.router, self.switch = client, router, switch

    def run(self, fn, *args):
        return self.client.portal.call(fn, *args)


@pytest.fixture
def rig(redis_server: EmbeddedRedis) -> Iterator[Rig]:
    store = RoutingStore(redis_server.url)
    switch = FakeSwitch()
    router = SkillRouter(store, switch, RoutingSettings(wrap_up_s=0))
    agents = AgentApi(router, AgentApiSettings(api_key=KEY))
    view = DeskView(agents=agents, router=router,
                    redis=aioredis.from_url(redis_server.url, decode_responses=True))
    app = FastAPI()
    app.include_router(build_agents_router(agents))
    app.include_router(build_desk_router(view))
    with TestClient(app) as client:
        client.portal.call(store.redis.flushdb)
        yield Rig(client, router, switch)
        client.portal.call(view.redis.aclose)
        client.portal.call(store.close)


def escalate(rig: Rig, call: str = "call-1") -> str:
    result = rig.run(rig.router.escalate, EscalationRequest(
        call_uuid=call, reason="caller pressed zero", caller="+15550107788",
        transcript=[{"caller": "cancel my order", "bot": "One moment."}]))
    return result.offer_id


def add(rig: Rig, agent_id: str) -> dict[str, str]:
    token = rig.run(rig.router.add_agent, AgentProfile(agent_id=agent_id, extension="7001"))
    rig.run(rig.router.login, agent_id)
    return {"Authorization": f"Bearer {token}"}


def test_accepting_a_call_whose_caller_hung_up_is_409_with_the_reason(rig: Rig) -> None:
    ann = add(rig, "ann")
    offer = escalate(rig)
    rig.switch.fail = CallGoneError()  # the channel went between offer and accept
    response = rig.client.post(f"/agents/offers/{offer}/accept", headers=ann)
    assert response.status_code == 409
    assert response.json()["detail"]["reason"] == "caller_hung_up"
    record = rig.run(rig.router.store.get_escalation, "call-1")
    assert (record.status.value, record.ended_reason) == ("ended", "caller hung up")
    rig.switch.fail = None
    offer = escalate(rig, "call-2")
    rig.run(rig.router.call_ended, "call-2")  # hung up while offered: withdrawn
    again = rig.client.post(f"/agents/offers/{offer}/accept", headers=ann)
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "caller_hung_up"
    figures = rig.client.get("/wallboard/state", headers={"Authorization": f"Bearer {KEY}"})
    assert figures.json()["queue_figures"]["abandoned"] == 2


def test_an_agent_hangs_up_and_wraps_up_their_own_call_only(rig: Rig) -> None:
    ann = add(rig, "ann")
    offer = escalate(rig)
    assert rig.client.post(f"/agents/offers/{offer}/accept", headers=ann).is_success
    bob = add(rig, "bob")
    assert rig.client.get("/agents/bob/calls/call-1", headers=bob).status_code == 404
    assert rig.client.get("/agents/ann/calls/call-1", headers=bob).status_code == 403
    call = rig.client.get("/agents/ann/calls/call-1", headers=ann).json()
    assert call["caller"] == "+•••••••7788" and call["transcript"][0]["caller"] == "cancel my order"
    assert rig.client.post("/agents/ann/calls/call-1/hangup", headers=ann).is_success
    assert rig.switch.hangups[-1][0] == "call-1"
    bad = rig.client.post("/agents/ann/calls/call-1/wrap-up", headers=ann,
                          json={"disposition": "made_up"})
    assert bad.status_code == 422
    done = rig.client.post("/agents/ann/calls/call-1/wrap-up", headers=ann,
                           json={"disposition": "resolved", "notes": "refunded",
                                 "callback_at": None, "converted": True})
    assert done.is_success and done.json()["handled"] == 1
    record = rig.run(rig.router.store.get_escalation, "call-1")
    assert record.wrap_up.disposition == "resolved" and record.converted is True


def test_pages_are_public_but_every_data_route_checks_the_credential(rig: Rig) -> None:
    ann = add(rig, "ann")
    page = rig.client.get("/desk")
    assert page.status_code == 200 and "Token" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert rig.client.get("/static/desk.js").status_code == 200
    assert rig.client.get("/static/..%2Fdesk.py").status_code == 404
    assert rig.client.get("/session").status_code == 401
    assert rig.client.get("/session", headers=ann).json()["role"] == "agent"
    boss = {"Authorization": f"Bearer {KEY}"}
    assert rig.client.get("/session", headers=boss).json()["role"] == "supervisor"
    refused = rig.client.get("/wallboard/state", headers=ann)
    assert refused.status_code == 403 and "supervisor" in refused.json()["detail"]
    state = rig.client.get("/wallboard/state", headers=boss).json()
    assert {"calls", "queue", "agents", "campaigns", "models", "turn_latency"} <= set(state)
    weights = rig.client.put("/wallboard/routing/weights", headers=boss,
                             json={"conversion_weight": 2.5})
    assert weights.json()["conversion_weight"] == 2.5
    assert rig.client.put("/wallboard/routing/weights", headers=boss,
                          json={"base_weight": -1}).status_code == 422
    assert rig.client.post("/wallboard/agents/ann/state", headers=boss,
                           json={"state": "break"}).json()["state"] == "break"
    listen = rig.client.post(f"/wallboard/calls/{CALL}/eavesdrop", headers=boss,
                             json={"mode": "listen", "extension": "7900"})
    assert listen.status_code == 503  # no call control in this rig
