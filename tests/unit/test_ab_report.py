"""A/B results: Wilson intervals and the tests agree with textbook values, a winner is
named only when it beats every other variant with enough calls, `callfleet campaign
ab-report` shows it, and with ``auto_stop`` the dialer pins the winner and sends every
further call to it (the ``callfleet_variant`` the gateway hands to the bot)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bots.script.variants import VariantStats
from cluster.cli.main import main
from cluster.dialer.ab import ab_report, settle_ab_test, wilson_interval
from cluster.dialer.campaign import ABTestConfig
from cluster.dialer.engine import Dialer
from cluster.dialer.store import DialerStore
from cluster.records.conversations import RedisConversionCounter
from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.dialer import Clock, FakeFloor, free_port
from tests.fakes.switch import FakeSwitch
from tests.unit.test_dialer_engine import SETTINGS, campaign, setup

pytestmark = pytest.mark.unit


def test_wilson_interval_matches_the_textbook():
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)  # Newcombe (1998), 95 %
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_two_variants_a_clear_winner_with_the_z_test_p_value():
    report = ab_report("spring", {"a": VariantStats(1000, 150), "b": VariantStats(1000, 200)},
                       alpha=0.05, min_calls_per_variant=200)
    # two-proportion z-test by hand: pooled 0.175, z = 0.05 / sqrt(.175 * .825 * 2 / 1000)
    z = 0.05 / math.sqrt(0.175 * 0.825 * 2 / 1000)
    assert report.test == "chi-square"
    assert report.p_value == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-3)
    assert [v.variant for v in report.variants] == ["b", "a"]
    assert report.best == report.winner == "b"
    b, a = report.variants
    assert (b.rate, a.rate) == (0.2, 0.15) and b.ci_low < 0.2 < b.ci_high
    assert a.p_vs_best < 0.05 and b.p_vs_best is None


def test_no_winner_without_enough_calls_or_a_real_difference():
    few = ab_report("s", {"a": VariantStats(50, 2), "b": VariantStats(50, 20)},
                    min_calls_per_variant=200)
    assert few.winner is None and "too few calls" in few.reason and few.best == "b"
    close = ab_report("s", {"a": VariantStats(1000, 150), "b": VariantStats(1000, 158)})
    assert close.winner is None and "no significant winner" in close.reason
    small = ab_report("s", {"a": VariantStats(30, 1), "b": VariantStats(30, 3)}, min_calls_per_variant=10)
    assert small.test == "fisher"  # expected counts under 5
    assert ab_report("s", {"a": VariantStats(300, 0), "b": VariantStats(300, 0)}).test == "none"
    assert "two variants" in ab_report("s", {"a": VariantStats(500, 50)}).reason


def test_three_variants_the_best_must_beat_each_other_after_holm():
    counts = {"a": VariantStats(2000, 300), "b": VariantStats(2000, 400),
              "c": VariantStats(2000, 380)}  # b is best but not clearly better than c
    report = ab_report("s", counts)
    assert report.best == "b" and report.winner is None and "vs c" in report.reason
    by = {v.variant: v for v in report.variants}
    assert by["a"].p_vs_best < 0.001 and by["c"].p_vs_best > 0.05
    counts["c"] = VariantStats(2000, 250)
    assert ab_report("s", counts).winner == "b"


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


async def count(counter: RedisConversionCounter, campaign_id: str, variant: str, calls: int,
                conversions: int) -> None:
    for i in range(calls):
        call_uuid = f"{variant}-{i}"
        await counter.record_call(campaign_id, variant, call_uuid)
        if i < conversions:
            await counter.record_conversion(campaign_id, variant, call_uuid)


async def test_auto_stop_pins_the_winner_once(store):
    counter = RedisConversionCounter(store.redis)
    await count(counter, "spring", "a", 300, 30)
    await count(counter, "spring", "b", 300, 75)
    assert await settle_ab_test(counter, "spring", ABTestConfig()) is None  # auto_stop off
    rule = ABTestConfig(auto_stop=True, min_calls_per_variant=100)
    assert await settle_ab_test(counter, "spring", rule) == "b"
    pinned = await counter.winner("spring")
    assert pinned["variant"] == "b" and pinned["report"]["winner"] == "b"
    await count(counter, "spring", "a", 2000, 1500)  # later counts do not move the decision
    assert await settle_ab_test(counter, "spring", rule) == "b"


async def test_the_dialer_sends_further_calls_to_the_pinned_winner(store):
    config = campaign(pacing={"mode": "progressive"},
                      ab_test={"auto_stop": True, "min_calls_per_variant": 100})
    await setup(store, config, 4)
    counter = RedisConversionCounter(store.redis)
    await count(counter, config.id, "a", 200, 10)
    await count(counter, config.id, "b", 200, 60)
    switch, floor = FakeSwitch(), FakeFloor(slots=4)
    dialer = Dialer(store, switch, floor, floor, SETTINGS, clock=Clock())
    await dialer.tick()
    await dialer.close()
    assert switch.dialled and all(r.variables["callfleet_variant"] == "b"
                                  for r in switch.dialled)


def test_ab_report_command(server, capsys):
    async def fill() -> None:
        counter = RedisConversionCounter(server.url)
        await count(counter, "inbound-support", "short", 400, 40)
        await count(counter, "inbound-support", "warm", 400, 80)
        await counter.close()

    asyncio.run(fill())
    args = ["campaign", "ab-report", "inbound-support", "--redis-url", server.url]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "verdict: winner warm" in shown and "20.00%" in shown
    assert main([*args, "--json", "--min-calls", "1000"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["winner"] is None and doc["best"] == "warm" and doc["pinned"] is None
    assert main(["campaign", "ab-report", "nothing", "--redis-url", server.url]) == 2
    assert "no A/B counts" in capsys.readouterr().err
