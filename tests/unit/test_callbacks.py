"""Callbacks instead of hang-ups, over a real Redis and a real store: an overflowing caller
becomes a callback lead in the right campaign, the dialer places it ahead of the other
leads once it is due and only inside the caller's calling window, the original call's
record says so, and numbers that must not be called are not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from cluster.actors.esl import RedisCallRecordSink
from cluster.dialer.callbacks import OverflowCallbacks, callback_lead_id
from cluster.dialer.campaign import CampaignState
from cluster.dialer.engine import Dialer
from cluster.dialer.store import DialerStore
from cluster.records.outbox import Outbox
from cluster.runtime.redis_server import EmbeddedRedis
from cluster.store import RecordStore, RecordWriter
from configs.records import RecordsSettings
from configs.routing import RoutingSettings
from telephony.call_fsm import CallPhase, CallRecord
from tests.fakes.dialer import WEDNESDAY_AFTERNOON, Clock, FakeFloor, free_port
from tests.fakes.switch import FakeSwitch
from tests.unit.test_dialer_engine import SETTINGS, campaign, setup

pytestmark = pytest.mark.unit

LA_CALLER = "+14155550123"  # 08:00 in Los Angeles at the test clock's 16:00 UTC
NY_CALLER = "+12125550199"  # 11:00 in New York


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


async def a_call(url: str, call_uuid: str, caller: str, direction: str = "inbound",
                 variables: dict | None = None) -> None:
    """The ESL controller's record of a live call waiting for an agent."""
    sink = RedisCallRecordSink(url)
    record = CallRecord(call_uuid, direction=direction, caller_id=caller,
                        destination="+12125550100" if direction == "inbound" else caller,
                        variables=variables or {})
    record.move(CallPhase.ANSWERED)
    record.move(CallPhase.BOT)
    record.move(CallPhase.ESCALATED)
    await sink.save(record)
    await sink.redis.aclose()


async def finished_campaign(store: DialerStore):
    """A campaign whose leads are all done (here: it had none left)."""
    config = campaign(id="callbacks", pacing={"mode": "progressive"})
    await setup(store, config, 0)
    await store.transition(config.id, "complete")
    return config


async def test_an_overflowing_inbound_caller_is_called_back_inside_their_window(server, store):
    config = await finished_campaign(store)
    await a_call(server.url, "in-1", LA_CALLER)
    routing = RoutingSettings(callback_campaign=config.id, callback_delay_s=300)
    callbacks = OverflowCallbacks(store, routing)
    clock = Clock()
    result = await callbacks.schedule("in-1", campaign_id=None, vip=False, reason="max wait",
                                      now=clock())
    assert result.scheduled and result.lead_id == callback_lead_id("in-1")
    assert result.due_at == WEDNESDAY_AFTERNOON + 300
    again = await callbacks.schedule("in-1", campaign_id=None, vip=False, reason="max wait",
                                     now=clock() + 60)
    assert again.scheduled  # the same call asking twice: one callback
    assert (await store.counts(config.id))["callbacks"] == 1
    lead = await store.get_lead(config.id, result.lead_id)
    assert (lead.phone, lead.timezone, lead.tz_source) == (LA_CALLER, "America/Los_Angeles",
                                                           "number")
    _, state = await store.get_campaign(config.id)
    assert state is CampaignState.RUNNING  # started again for the callback

    switch, floor = FakeSwitch(), FakeFloor(slots=4)
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    assert switch.dialled == []  # not due yet
    clock.advance(301)  # due, but 08:05 in Los Angeles: before its window opens
    await dialer.tick()
    await dialer.close()
    assert switch.dialled == []
    assert (await store.lead_state(config.id, result.lead_id))["next_at"] == pytest.approx(
        WEDNESDAY_AFTERNOON + 3600)  # 09:00 in Los Angeles
    clock.advance(3600)
    await dialer.tick()
    await dialer.close()
    assert [r.destination for r in switch.dialled] == [LA_CALLER]
    assert switch.dialled[0].variables["callfleet_lead"] == result.lead_id


async def test_a_callback_goes_ahead_of_waiting_leads_and_keeps_the_lead(server, store):
    config = campaign(id="spring", pacing={"mode": "progressive"})
    await setup(store, config, 5)  # five leads ready to dial
    lead = await store.get_lead(config.id, (await store.ready_leads(config.id, 1))[0])
    await a_call(server.url, "out-1", lead.phone, direction="outbound",
                 variables={"callfleet_campaign": config.id, "callfleet_lead": lead.id})
    callbacks = OverflowCallbacks(store, RoutingSettings(callback_delay_s=0))
    clock = Clock()
    result = await callbacks.schedule("out-1", campaign_id=config.id, vip=False,
                                      reason="queue full", now=clock())
    copy = await store.get_lead(config.id, result.lead_id)
    assert (copy.phone, copy.tier, copy.timezone) == (lead.phone, lead.tier, lead.timezone)
    switch, floor = FakeSwitch(), FakeFloor(slots=1)
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()
    assert [r.variables["callfleet_lead"] for r in switch.dialled] == [result.lead_id]


async def test_who_must_not_be_called_back_is_not(server, store):
    config = await finished_campaign(store)
    callbacks = OverflowCallbacks(store, RoutingSettings(callback_campaign=config.id))
    await store.add_dnc([NY_CALLER], actor="test")
    await a_call(server.url, "dnc-1", NY_CALLER)
    result = await callbacks.schedule("dnc-1", campaign_id=None, vip=False, reason="", now=0)
    assert not result.scheduled and "do-not-call" in result.reason
    await a_call(server.url, "in-2", LA_CALLER)
    nobody = OverflowCallbacks(store, RoutingSettings())  # no callback campaign for inbound
    assert "callback_campaign" in (await nobody.schedule("in-2", campaign_id=None, vip=False,
                                                         reason="", now=0)).reason
    await store.transition(config.id, "stop")
    stopped = await callbacks.schedule("in-2", campaign_id=None, vip=False, reason="", now=0)
    assert not stopped.scheduled and "stopped" in stopped.reason
    assert not (await callbacks.schedule("unknown", campaign_id=None, vip=False, reason="",
                                         now=0)).scheduled


async def test_the_call_record_shows_its_callback_and_how_it_went(server, store, tmp_path):
    config = await finished_campaign(store)
    await a_call(server.url, "in-3", NY_CALLER)
    clock = Clock()
    callbacks = OverflowCallbacks(store, RoutingSettings(callback_campaign=config.id,
                                                         callback_delay_s=0))
    result = await callbacks.schedule("in-3", campaign_id=None, vip=True, reason="max wait",
                                      now=clock())
    assert json.loads(await store.redis.hget(f"cf:dialer:c:{config.id}:lstate",
                                             result.lead_id))["prio"] == -2  # a VIP's
    switch, floor = FakeSwitch(), FakeFloor(slots=2)
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=clock)
    await dialer.tick()
    await dialer.close()

    records = RecordStore.open(f"sqlite:///{tmp_path / 'callfleet.db'}")
    client = aioredis.from_url(server.url)
    writer = RecordWriter(records, Outbox(client), RecordsSettings())
    while await writer.step():
        pass
    call = records.get_call("in-3")
    assert call["callback_lead_id"] == result.lead_id
    assert call["callback_due_at"].timestamp() == WEDNESDAY_AFTERNOON
    (placed,) = call["callback_attempts"]
    assert placed["attempt_id"] == f"{result.lead_id}#1" and placed["result"] == "connected"
    assert placed["inside_window"] is True
    records.close()
    await client.aclose()
