"""The skill router on a real Redis server (port 6592) with real time: heartbeats that
expire by Redis TTL, a router killed and replaced mid-offer while its sweep loop runs,
two API processes racing to accept one offer, and events reaching the websocket feed
hub and a signed-webhook receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster.records.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    WebhookSettings,
    verify_signature,
)
from cluster.routing import (
    AgentProfile,
    AgentState,
    EscalationRequest,
    EscalationStatus,
    FeedHub,
    OfferClosedError,
    RedisFeedPublisher,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
    WebhookNotifier,
)
from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.switch import FakeSwitch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PORT = 6592
SECRET = "integration-secret"


def slow_switch() -> FakeSwitch:
    """The shared fake switch, slow to transfer like a real one."""
    return FakeSwitch(transfer_s=0.05)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), PORT)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[RoutingStore]:
    store = RoutingStore(redis_server.url)
    await store.redis.flushdb()
    yield store
    await store.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    """Poll until `check` holds; generous deadline so a loaded machine does not fail it."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.1)


def request(call: str) -> EscalationRequest:
    return EscalationRequest(call_uuid=call, reason="asked for a person", brief="cancel",
                             transcript=[{"speaker": "caller", "text": "a human please"}],
                             customer={"tier": "gold"})


async def test_heartbeat_expires_by_redis_ttl(store: RoutingStore) -> None:
    router = SkillRouter(store, slow_switch(), RoutingSettings(heartbeat_ttl_s=3, offer_timeout_s=10))
    await router.add_agent(AgentProfile(agent_id="ann", extension="7001"))
    await router.login("ann")
    assert (await router.get_agent("ann")).online

    async def gone() -> bool:
        return not (await router.get_agent("ann")).online

    await eventually(gone)
    assert (await router.escalate(request("c1"))).status is EscalationStatus.QUEUED
    assert (await router.sweep()).logged_out == ["ann"]
    await router.login("ann")
    assert (await router.status("c1")).agent_id == "ann"


async def test_a_replaced_router_reroutes_an_unanswered_offer(store: RoutingStore) -> None:
    settings = RoutingSettings(offer_timeout_s=2, sweep_interval_s=0.2, no_answer_action="break")
    first = SkillRouter(store, slow_switch(), settings)
    await first.add_agent(AgentProfile(agent_id="ann", extension="7001"))
    await first.login("ann")
    offered = await first.escalate(request("c1"))
    assert offered.agent_id == "ann"
    stop_first = asyncio.Event()
    loop_task = asyncio.create_task(first.run(stop_first))
    await asyncio.sleep(0.3)
    loop_task.cancel()  # killed, not stopped: nothing gets to clean up
    await asyncio.gather(loop_task, return_exceptions=True)

    second = SkillRouter(store, slow_switch(), settings)
    await second.add_agent(AgentProfile(agent_id="bob", extension="7002"))
    await second.login("bob")
    stop = asyncio.Event()
    runner = asyncio.create_task(second.run(stop))
    try:
        async def with_bob() -> bool:
            status = await second.status("c1")
            return status is not None and status.agent_id == "bob"

        await eventually(with_bob)
    finally:
        stop.set()
        await runner
    ann = await second.get_agent("ann")
    assert ann.state is AgentState.BREAK and ann.no_answers == 1


async def test_two_api_processes_accepting_at_once_connect_once(store: RoutingStore,
                                                                redis_server: EmbeddedRedis) -> None:
    switch = slow_switch()
    router = SkillRouter(store, switch, RoutingSettings())
    await router.add_agent(AgentProfile(agent_id="ann", extension="7001"))
    await router.login("ann")
    offer_id = (await router.escalate(request("c1"))).offer_id
    other_store = RoutingStore(redis_server.url)  # a second process, its own connection
    try:
        other = SkillRouter(other_store, switch, RoutingSettings())
        results = await asyncio.gather(router.accept(offer_id, "ann"), other.accept(offer_id, "ann"),
                                       return_exceptions=True)
    finally:
        await other_store.close()
    assert switch.transfers == [("c1", "7001", "default")]
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, OfferClosedError)]
    await asyncio.sleep(0.1)
    assert (await router.status("c1")).status is EscalationStatus.CONNECTED


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, bool]] = []
        got = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((body, verify_signature(SECRET, body, self.headers[TIMESTAMP_HEADER],
                                                   self.headers[SIGNATURE_HEADER])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_offers_reach_the_feed_hub_and_a_signed_webhook(store: RoutingStore,
                                                              redis_server: EmbeddedRedis) -> None:
    receiver = Receiver()
    sender = WebhookSender(WebhookSettings(urls=[receiver.url], secret=SECRET))
    hub = FeedHub(redis_server.url, channel=store.feed_channel)
    router = SkillRouter(store, slow_switch(), RoutingSettings(),
                         sinks=[RedisFeedPublisher(store), WebhookNotifier(sender)])
    try:
        await router.add_agent(AgentProfile(agent_id="ann", extension="7001"))
        async with hub.subscribe("ann") as ann_feed, hub.subscribe(None) as supervisor_feed:
            await router.login("ann")
            result = await router.escalate(request("c1"))
            seen = []
            while not any(e["type"] == "offer" for e in seen):
                seen.append(await asyncio.wait_for(ann_feed.get(), 10))
            offer = next(e for e in seen if e["type"] == "offer")
            assert offer["offer"]["offer_id"] == result.offer_id
            assert offer["offer"]["customer"] == {"tier": "gold"}
            first_all = await asyncio.wait_for(supervisor_feed.get(), 10)
            assert first_all["type"] == "agent_state"
        await sender.drain(timeout_s=10)
        events = [json.loads(body) for body, ok in receiver.bodies if ok]
        assert len(events) == len(receiver.bodies)  # every delivery verifies
        offered = [e["data"] for e in events if e["event"] == "offer"]
        assert offered and offered[0]["offer"]["transcript"][0]["text"] == "a human please"
    finally:
        await hub.close()
        await sender.aclose()
        receiver.stop()
