"""The dialer as a real detached Ray actor over a real Redis: killed in the middle of a
campaign, it is restarted by Ray, resumes by itself, and no lead is ever dialled twice.

Runs its own in-process Ray (`address="local"`) and a redis-server on port 6593, so it
does not share the session cluster of the other integration tests.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.leads import parse_leads_csv
from cluster.dialer.store import DialerStore
from cluster.runtime.redis_server import EmbeddedRedis
from configs.dialer import DialerSettings
from tests.fakes.dialer import FakeFloor
from tests.fakes.switch import FakeSwitch

pytestmark = pytest.mark.integration

REDIS_PORT = 6593
LEADS = 30
SETTINGS = DialerSettings(tick_s=0.2, answer_poll_s=0.05, actor_name="dialer-under-test",
                          namespace="callfleet-test")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path, REDIS_PORT)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def ray_local() -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():  # the session cluster's driver: this test runs its own
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


async def prepare_campaign(url: str) -> None:
    config = CampaignConfig.model_validate({
        "id": "restart", "bot_script": "shop", "caller_id_number": "+12125550100",
        "gateways": ["carrier-a"], "pacing": {"mode": "progressive"},
        "schedule": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "start": "00:00", "end": "24:00"},
        "compliance": {"calling_window_start": "00:00", "calling_window_end": "24:00"},
    })
    rows = "\n".join(f"+1 212 555 {100 + i:04d}" for i in range(LEADS))
    store = DialerStore(url)
    try:
        await store.create_campaign(config)
        await store.add_leads(config.id, parse_leads_csv("phone\n" + rows).leads)
        await store.transition(config.id, "start")
    finally:
        await store.close()


def test_killed_dialer_actor_resumes_without_dialling_a_lead_twice(redis_url, ray_local):
    import ray

    from cluster.actors.dialer import start_dialer

    asyncio.run(prepare_campaign(redis_url))
    db = redis.Redis.from_url(redis_url, decode_responses=True)
    handle = start_dialer(
        redis_url,
        functools.partial(FakeSwitch, ring_s=0.4, log_url=redis_url),
        functools.partial(FakeFloor, slots=3, hold_s=0.6),
        settings=SETTINGS,
    )
    try:
        wait_for(lambda: db.llen("test:dialled") >= 8, 90, "the first dials")
        ray.kill(handle.actor, no_restart=False)  # mid-campaign: calls are ringing
        killed_at = db.llen("test:dialled")
        assert killed_at < LEADS

        status = wait_for(
            lambda: (s := handle.status(timeout=60))["campaigns"]["restart"]["state"] == "completed" and s,
            120, "the restarted actor to finish the campaign")
        assert status["running"]
        dialled = db.lrange("test:dialled", 0, -1)
        assert len(dialled) == len(set(dialled)), "a lead was dialled twice"
        assert len(dialled) > killed_at, "the restarted actor did not dial"

        store = DialerStore(redis_url)
        records = asyncio.run(_records(store))
        assert len(records) == LEADS  # one attempt per lead: connected or interrupted
        assert {r.result.value for r in records} <= {"connected", "interrupted"}
        assert sum(r.result.value == "connected" for r in records) >= LEADS - 3 - 1
        assert status["campaigns"]["restart"]["counts"]["attempts"] == LEADS
    finally:
        handle.shutdown()
        db.close()


async def _records(store: DialerStore):
    try:
        return await store.records("restart")
    finally:
        await store.close()
