"""An outbound campaign end to end, the way a contact centre runs it: 20 leads uploaded
through the REST API, the predictive dialer dialling through the ESL controller into the
FreeSWITCH simulator, scripted callees talking to the real bot (real ASR, intent,
emotion, TTS), interested callees escalated to a simulated human agent who accepts the
offer through the agent API, and compliance records that add up.

The simulator picks a callee scenario from the number dialled, so the leads' numbers
are chosen to reach every scenario of configs/scenarios/outbound.yaml, five each for
the two whose outcome is asserted (an escalation, a do-not-call request): with the
simulator's random 80 % answer rate, one of them goes unanswered five times in a row
about once in 3,000 runs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import ray
import redis

from cluster.routing import AgentProfile, RoutingStore, SkillRouter
from telephony.sim.scenarios import load_scenarios, scenario_for

pytestmark = pytest.mark.integration

OUTBOUND = Path(__file__).resolve().parents[2] / "configs" / "scenarios" / "outbound.yaml"
# leads per callee scenario: five for the two whose outcome is asserted
QUOTA = {"interested customer": 5, "do not call me again": 5, "call back later": 4,
         "not interested": 3, "price objection, then takes the discount": 3}


def lead_numbers() -> list[str]:
    """E.164 numbers reaching each scenario of outbound.yaml as often as QUOTA says."""
    scenarios = load_scenarios(OUTBOUND)
    assert {s.name for s in scenarios} == set(QUOTA), "outbound.yaml scenarios changed"
    wanted = dict(QUOTA)
    numbers: list[str] = []
    for i in range(10_000):
        number = f"+1212555{1000 + i:04d}"
        name = scenario_for(scenarios, number).name
        if wanted[name] > 0:
            wanted[name] -= 1
            numbers.append(number)
    assert not any(wanted.values()), wanted
    return numbers


NUMBERS = lead_numbers()
LEADS = len(NUMBERS)

CAMPAIGN = {
    "id": "e2e-spring", "name": "E2E spring offer", "bot_script": "outbound_promo",
    "caller_id_number": "+12125550100", "caller_id_name": "CallFleet Test",
    "gateways": ["carrier-a", "carrier-b"],
    "schedule": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                 "start": "00:00", "end": "23:59"},
    "pacing": {"mode": "predictive", "initial_answer_rate": 0.8, "initial_ring_s": 1,
               "initial_handle_s": 20},
    "compliance": {"calling_window_start": "00:00", "calling_window_end": "23:59",
                   "ring_timeout_s": 15, "min_ring_s": 15},
    "retry": {"max_attempts": 1},
}


def leads_csv(numbers: list[str]) -> str:
    rows = ["lead_id,phone,first_name,region,tier,timezone"]
    rows += [f"L{i:03d},{number},Test{i},NY,{'vip' if i % 10 == 0 else 'silver'},UTC"
             for i, number in enumerate(numbers)]
    return "\n".join(rows) + "\n"


class SimulatedAgent:
    """A person at an agent desktop: logs in, keeps the heartbeat, accepts every offer
    through the agent API and completes the call afterwards."""

    def __init__(self, base: str, agent_id: str, token: str):
        self.http = httpx.AsyncClient(base_url=base, timeout=30,
                                      headers={"Authorization": f"Bearer {token}"})
        self.agent_id = agent_id
        self.accepted: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        (await self.http.post(f"/agents/{self.agent_id}/login")).raise_for_status()
        beat = 0.0
        while not stop.is_set():
            if time.monotonic() - beat > 5:
                await self.http.post(f"/agents/{self.agent_id}/heartbeat")
                beat = time.monotonic()
            me = (await self.http.get(f"/agents/{self.agent_id}")).json()
            for offer in me.get("pending", []):
                r = await self.http.post(f"/agents/offers/{offer['offer_id']}/accept")
                if r.status_code == 200:
                    self.accepted.append(offer["call_uuid"])
            for call_uuid in list(me.get("calls", [])):
                if call_uuid in self.accepted:
                    await self.http.post(f"/agents/{self.agent_id}/calls/{call_uuid}/complete",
                                         json={"converted": True})
            await asyncio.sleep(0.5)
        await self.http.aclose()


def test_campaign_of_20_leads_runs_through_the_floor(driver, cluster_settings):
    cluster = driver
    api = f"{cluster.http_url}/api"
    campaign_auth = {"Authorization": "Bearer campaign-token"}

    async def scenario():
        router = SkillRouter(RoutingStore(cluster.redis_url), dispatch=False)
        token = await router.add_agent(AgentProfile(
            agent_id="ann", extension="1001", skills={"sales": 3, "senior": 3, "vip": 3},
            concurrency=2))  # vip: the VIP leads are routed to a person at once
        agent = SimulatedAgent(api, "ann", token)
        stop = asyncio.Event()
        desk = asyncio.ensure_future(agent.run(stop))
        async with httpx.AsyncClient(base_url=api, timeout=60, headers=campaign_auth) as http:
            assert (await http.post("/campaigns", json=CAMPAIGN)).status_code == 201
            r = await http.post(f"/campaigns/{CAMPAIGN['id']}/leads", content=leads_csv(NUMBERS),
                                headers={"Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            assert r.json()["added"] == LEADS
            assert (await http.post(f"/campaigns/{CAMPAIGN['id']}/start")).status_code == 200
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                status = (await http.get(f"/campaigns/{CAMPAIGN['id']}")).json()
                leads = status["leads"]
                if not any(leads[k] for k in ("ready", "waiting_retry_or_window", "dialing",
                                              "connected_now")):
                    break
                await asyncio.sleep(2)
            await asyncio.sleep(5)  # last hangups reach the records
            records = (await http.get(f"/campaigns/{CAMPAIGN['id']}/records")).json()
            status = (await http.get(f"/campaigns/{CAMPAIGN['id']}")).json()
        stop.set()
        await desk
        return status, records, agent.accepted

    status, records, accepted = asyncio.run(scenario())
    leads = status["leads"]
    assert not any(leads[k] for k in ("ready", "dialing", "connected_now")), status
    # one attempt per lead (max_attempts 1), each with a result and a hangup cause
    assert sorted({r["lead_id"] for r in records}) == [f"L{i:03d}" for i in range(LEADS)]
    assert len(records) == LEADS
    assert all(r.get("result") and r.get("cause") for r in records)
    answered = [r for r in records if r["answered"]]
    connected = [r for r in answered if r["result"] == "connected"]
    assert all(r["hangup_cause"] and r["handle_s"] for r in connected), "a call never ended"
    outcomes = Counter((r["result"], r["cause"]) for r in records)
    assert len(answered) >= LEADS // 2, outcomes  # 80 % answer in the simulator
    abandoned = [r for r in records if r.get("abandoned")]
    assert status["abandonment"]["answered"] == len(answered)
    assert status["abandonment"]["abandoned"] == len(abandoned)
    # interested callees were escalated, offered to the agent, accepted and transferred
    assert accepted, "no escalation reached the agent"
    sim = ray.get_actor("callfleet-freeswitch-sim", namespace="callfleet")
    stats = ray.get(sim.stats.remote())
    assert stats["transferred"] >= len(accepted) >= 1
    # a callee who asked not to be called again is on the do-not-call list
    dnc = redis.Redis.from_url(cluster.redis_url)
    assert any(dnc.smembers(k) for k in dnc.scan_iter("*dnc*")), "no do-not-call entry"
