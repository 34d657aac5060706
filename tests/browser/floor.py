"""One contact-centre floor in this process, for the browser tests: a real Redis, the
FreeSWITCH simulator with its event socket, the real ESL controller (greenswitch over
TCP), the media gateway's fork runner with a real script bot (models are the shared
fakes: scripted transcripts, no weights), the real skill router sweeping, and the API
app (agents, feed, desk, wallboard) served by uvicorn on a free port — everything but
Ray and the models.

It runs on its own event loop in a background thread, so a synchronous Playwright
browser can drive the pages from the test thread. `FloorHooks`' job (escalations and
hangups from the controller to the router) is done here by `_floor_events`, in process.
"""

from __future__ import annotations

import asyncio
import secrets
import textwrap
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from pydantic import SecretStr

from bots.kb import KnowledgeBase, KnowledgeBaseSettings
from bots.script import ScriptBot, load_script_text
from cluster.actors.esl import RedisCallRecordSink
from cluster.records.call_state import RedisCallDirectory, RedisCallRecorder
from cluster.routing import (
    AgentProfile,
    EscalationRequest,
    FeedHub,
    RedisFeedPublisher,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
)
from configs.settings import FreeswitchSettings, GatewaySettings
from deployments.api.agents import AgentApi, AgentApiSettings, build_agents_router
from deployments.api.desk import DeskView, build_desk_router
from deployments.gateway.fork_admission import ForkAdmission
from deployments.gateway.media_server import MediaServer
from deployments.gateway.media_ws import serve_media_fork
from telephony.call_data import Handover
from telephony.call_fsm import CallPhase
from telephony.esl_controller import ESLController
from telephony.media_fork import ForkMetadata
from telephony.sim.fork_client import CallerTurn, SimulatedCall
from telephony.sim.switch import SimulatedSwitch
from tests.fakes.call import FakeTurnModels, speech
from tests.fakes.dialer import free_port
from training.models.outputs import EmotionResult, IntentResult

SUPERVISOR_KEY = "supervisor-key-for-browser-tests"
CALLER_NUMBER = "+15550107788"
SAID = "my order is late again and I want to cancel it"
ANGRY = EmotionResult("anger", {"anger": 0.81, "neutral": 0.1, "positive": 0.09})

INTENTS = """
intents:
  cancel_order: {examples: [cancel my order, I want to cancel, stop my order]}
  affirm: {examples: ["yes", yeah, sure]}
  oos: {examples: [weather, tell me a joke, football]}
"""

SCRIPT = """
bot: front_desk
intents: intents.yaml
start: greet
global:
  - dtmf: "0"
    goto: handover
states:
  greet:
    ask: {prompt: "Hello, this is the shop. How can I help?"}
    on:
      - intent: cancel_order
        goto: cancel
  cancel:
    ask: {prompt: "I can help with a cancellation. Press zero to talk to a person."}
  handover:
    say: Connecting you to a colleague now.
    enter: [{transfer: {skill: support, priority: 6, reason: caller pressed zero}}]
"""


class Floor:
    """Start with `start()`, stop with `stop()`; coroutine helpers run on the floor's loop
    through `run()`."""

    def __init__(self, redis_url: str, tmp: Path):
        self.redis_url = redis_url
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="floor", daemon=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.tokens: dict[str, str] = {}

    # ---- running things on the floor's loop ---------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start(), timeout=60)

    def stop(self) -> None:
        try:
            self.run(self._stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    async def _start(self) -> None:
        self.store = RoutingStore(self.redis_url)
        await self.store.redis.flushdb()
        self.password = secrets.token_urlsafe(12)
        self.switch = SimulatedSwitch(self.password, linger_s=30, agent_talk_s=None,
                                      agent_ring_s=0.2)
        await self.switch.start()
        self.recorder = RedisCallRecorder(self.redis_url)
        (self.tmp / "intents.yaml").write_text(INTENTS)
        self.bot = ScriptBot(load_script_text(textwrap.dedent(SCRIPT), "front_desk.yaml", self.tmp))
        self.admission = ForkAdmission(None, allow_unauthenticated=True,
                                       directory=RedisCallDirectory(self.recorder.redis))
        self.media = MediaServer("127.0.0.1", 0, self._run_fork)
        await self.media.start()
        fs = FreeswitchSettings(
            host="127.0.0.1", port=self.switch.port, password=SecretStr(self.password),
            media_url=f"ws://127.0.0.1:{self.media.bound_port}/media", fork_rate="8k",
            playback="binary", agent_context="agents")
        self.controller = ESLController(fs, RedisCallRecordSink(self.redis_url))
        self.router = SkillRouter(
            self.store, self.controller,
            RoutingSettings(transfer_context="agents", offer_timeout_s=30, wrap_up_s=2,
                            heartbeat_ttl_s=15, sweep_interval_s=0.5),
            sinks=[RedisFeedPublisher(self.store)])
        self.controller.add_listener(self._floor_events)
        await self.controller.start(wait_s=10)
        self.hub = FeedHub(self.redis_url, channel=self.store.feed_channel)
        agents = AgentApi(self.router, AgentApiSettings(api_key=SUPERVISOR_KEY), self.hub)
        kb = await asyncio.to_thread(KnowledgeBase.load, KnowledgeBaseSettings(mode="bm25"),
                                     state_dir=self.tmp / "kb")
        self.view = DeskView(agents=agents, router=self.router,
                             redis=aioredis.from_url(self.redis_url, decode_responses=True),
                             supervision=self.controller, kb=kb)
        self.stop_sweeps = asyncio.Event()
        self.sweeps = asyncio.ensure_future(self.router.run(self.stop_sweeps))
        self.server = uvicorn.Server(uvicorn.Config(
            _app(agents, self.view), host="127.0.0.1", port=self.port, log_level="warning",
            lifespan="off"))
        self.serving = asyncio.ensure_future(self.server.serve())
        for _ in range(500):  # uvicorn has no "started" event to wait on; 10 s at most
            if self.server.started:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("the API server did not start")

    async def _stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait([self.serving], timeout=5)
        self.stop_sweeps.set()
        await asyncio.wait([self.sweeps], timeout=5)
        await self.switch.stop()
        await self.controller.stop()
        if self.media.server is not None:
            self.media.server.close()
        await self.hub.close()
        await self.view.redis.aclose()
        await self.recorder.close()
        await self.store.close()

    async def _run_fork(self, sock, call_uuid: str) -> str:
        models = FakeTurnModels(
            transcripts=[SAID], intents={SAID: IntentResult("cancel_order", 0.87)},
            emotions={SAID: ANGRY})
        return await serve_media_fork(sock, call_uuid, GatewaySettings(), models, self.recorder,
                                      _OneBot(self.bot), admission=self.admission)

    async def _floor_events(self, record, what: str) -> None:
        """What `cluster.actors.hooks.FloorHooks` does in the cluster."""
        if record.phase is CallPhase.ESCALATED and what.endswith("transfer"):
            number = record.caller_id if record.direction == "inbound" else record.destination
            await self.router.escalate(EscalationRequest.from_handover(
                record.call_uuid, record.escalation or Handover(), number))
        elif record.phase is CallPhase.ENDED:
            await self.router.call_ended(record.call_uuid)

    # ---- what tests do ------------------------------------------------------------------

    def add_agent(self, agent_id: str, name: str, extension: str) -> str:
        token = self.run(self.router.add_agent(AgentProfile(
            agent_id=agent_id, extension=extension, name=name, skills=["support"])))
        self.tokens[agent_id] = token
        return token

    def call_in(self, hold_s: float = 30.0) -> str:
        """A customer calls the shop, says what they want, then presses 0 for a person."""
        call_uuid = str(uuid.uuid4())
        turns = [CallerTurn(np.frombuffer(speech(1.2, 8000), dtype="<i2"), SAID),
                 CallerTurn(np.zeros(0, dtype=np.int16), dtmf="0")]
        caller = SimulatedCall(ForkMetadata(call_uuid, 8000, caller=CALLER_NUMBER), turns,
                               pause_s=0.2, hold_s=hold_s)
        self.run(self.switch.inbound_call(
            "+15550199000", caller, bot="front_desk", caller_id=CALLER_NUMBER,
            variables={"callfleet_customer_name": "Dana Reyes",
                       "callfleet_customer_tier": "gold",
                       "callfleet_customer_vip": "true"}))
        return call_uuid

    def channel(self, call_uuid: str):
        return self.switch.channels.get(call_uuid) or next(
            (c for c in self.switch.finished if c.uuid == call_uuid), None)

    def supervisor_legs(self) -> list:
        return [c for c in self.switch.channels.values() if c.eavesdrop is not None]


class _OneBot:
    def __init__(self, bot: ScriptBot):
        self.bot = bot

    async def for_call(self, meta: ForkMetadata) -> ScriptBot:
        return self.bot


def _app(agents: AgentApi, view: DeskView) -> FastAPI:
    """The API app as Serve mounts it (at /api), and the gateway's redirects at /."""
    api = FastAPI()
    api.include_router(build_agents_router(agents))
    api.include_router(build_desk_router(view))
    root = FastAPI()
    root.mount("/api", api)

    @root.get("/desk")
    async def desk() -> RedirectResponse:
        return RedirectResponse("/api/desk", status_code=307)

    @root.get("/wallboard")
    async def wallboard() -> RedirectResponse:
        return RedirectResponse("/api/wallboard", status_code=307)

    return root
