"""The floor: the Ray actors that run calls once they leave the bot's hands, wired
together.

- the ESL controller actor (`cluster.actors.esl`) tells the floor what happens to calls:
  a bot asked for a person → the skill router gets an escalation; a call ended → the
  router frees its agent and the dialer records the outcome;
- the skill router actor (`RouterService`) runs the one dispatching `SkillRouter`: it
  offers calls to agents (webhooks + feed) and transfers accepted ones through the
  controller;
- the dialer actor (`cluster.actors.dialer`) originates through the controller, asks
  `FloorCapacity` what the floor can take, and hands answered calls to `EslAnswers`.

All state lives in Redis; each actor is detached, named and restartable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cluster.actors.dialer import start_dialer
from cluster.actors.esl import RemoteCallControl, get_controller, make_remote_control
from cluster.actors.metrics import RayMetrics
from cluster.actors.names import NAMESPACE, ROUTER_NAME
from cluster.actors.records import start_record_writer
from cluster.dialer.callbacks import OverflowCallbacks
from cluster.dialer.store import DialerStore
from cluster.records.outbox import OutboxPublisher, outbox_event
from cluster.records.webhooks import WebhookSender
from cluster.routing import (
    AgentState,
    EscalationRequest,
    RedisFeedPublisher,
    RoutingStore,
    SkillRouter,
    WebhookNotifier,
)
from configs.settings import Settings, settings_doc
from telephony.call_data import Handover
from telephony.esl_commands import sound_path
from telephony.metrics import ERRORS
from telephony.wav import write_wav

__all__ = ["EslAnswers", "FloorCapacity", "RouterService", "start_floor"]

logger = logging.getLogger(__name__)



def _settings(doc: dict[str, Any]) -> Settings:
    return Settings.model_validate(doc)


class _ControllerHandle:
    """The controller actor's handle, looked up once (off the event loop) and reused."""

    def __init__(self, cfg: Settings):
        self.cfg = cfg
        self._handle = None

    async def get(self):
        if self._handle is None:
            self._handle = await asyncio.to_thread(
                get_controller, self.cfg.freeswitch, self.cfg.redis_url)
        return self._handle


class RouterService:
    """The dispatching skill router, as an async Ray actor."""

    def __init__(self, settings: dict[str, Any]):
        cfg = _settings(settings)
        self.store = RoutingStore(cfg.redis_url)
        self.sender = WebhookSender(cfg.webhooks)
        control = RemoteCallControl(get_controller(cfg.freeswitch, cfg.redis_url))
        self.metrics = RayMetrics()  # queue, agents, waits (docs/operations.md)
        self.router = SkillRouter(
            self.store, control, cfg.routing,
            sinks=[RedisFeedPublisher(self.store), WebhookNotifier(self.sender)],
            on_overflow=self._overflow, metrics=self.metrics)
        self.control = control
        self.cfg = cfg
        self.callbacks = OverflowCallbacks(DialerStore(cfg.redis_url), cfg.routing)
        self._stop = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self.router.run(self._stop))

    async def escalate(self, call_uuid: str, handover: Handover,
                       caller_number: str | None = None) -> dict[str, Any]:
        """A bot handed `call_uuid` over (from the controller's `FloorHooks`); the
        caller's number is kept masked only."""
        result = await self.router.escalate(
            EscalationRequest.from_handover(call_uuid, handover, caller_number))
        return result.model_dump(mode="json")

    async def call_ended(self, call_uuid: str) -> None:
        result = await self.router.call_ended(call_uuid)
        if result is not None:  # who handled the call, for the SQL records
            await OutboxPublisher(self.store.redis).publish(outbox_event(
                "call.handled", call_uuid=call_uuid, agent_id=result.agent_id,
                escalation_status=result.status.value))

    async def _overflow(self, decision) -> None:
        """Nobody could take the call in time: the dialer calls the caller back
        (`cluster.dialer.callbacks`; the message `routing.callback_message` says so before
        the hang-up), or the call goes to voicemail (an extension in the dialplan)."""
        logger.info("escalation overflow: %s (%s)", decision.action, decision.reason)
        try:
            if decision.action == "voicemail":
                await self.control.transfer(decision.call_uuid, "voicemail")
                return
            result = await self.callbacks.schedule(
                decision.call_uuid, campaign_id=decision.campaign_id, vip=decision.vip,
                reason=decision.reason, now=time.time())
            if not result.scheduled:
                logger.warning("overflowing caller not called back: %s", result.reason)
            message = self.cfg.routing.callback_message if result.scheduled else ""
            path = Path(sound_path(self.cfg.freeswitch.sounds_dir, message)) if message else None
            if path is not None and await asyncio.to_thread(path.exists):
                seconds = max(0.5, ((await asyncio.to_thread(path.stat)).st_size - 44) / 16000)
                await self.control.handle.play_and_hangup.remote(decision.call_uuid, message,
                                                                 seconds)
            else:
                await self.control.hangup(decision.call_uuid, "NORMAL_CLEARING")
        except Exception as exc:
            self.metrics.inc(ERRORS, kind="overflow_action")
            logger.warning("overflow action failed: %s", exc)

    async def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError("router loop stopped")

    async def shutdown(self) -> None:
        self._stop.set()
        await asyncio.wait([self._task], timeout=10)
        await self.sender.aclose()


class FloorCapacity:
    """What the floor can take now: bot slots (configured concurrent bot calls minus the
    live ones the controller has) and available agents (from the router's Redis)."""

    def __init__(self, settings: dict[str, Any]):
        self.cfg = _settings(settings)
        self._router = None
        self._controller = _ControllerHandle(self.cfg)

    async def free_bot_slots(self) -> int:
        status = await (await self._controller.get()).status.remote()
        return max(0, self.cfg.dialer.max_bot_calls - int(status["bot_calls"]))

    async def free_agents(self) -> int | None:
        """Online available agents with spare capacity; None when nobody is logged in
        (then no human takes escalations and the pace ignores agents)."""
        if self._router is None:
            self._router = SkillRouter(RoutingStore(self.cfg.redis_url), dispatch=False)
        agents = [a for a in await self._router.list_agents() if a.online]
        if not agents:
            return None
        return sum(1 for a in agents if a.state == AgentState.AVAILABLE
                   and a.load < a.profile.concurrency)


class EslAnswers:
    """Answered dialer calls: connect them to the bot, or play the information message."""

    def __init__(self, settings: dict[str, Any]):
        self.cfg = _settings(settings)
        self._controller = _ControllerHandle(self.cfg)

    async def connect(self, call_uuid: str, lead, campaign) -> None:
        await (await self._controller.get()).connect_bot.remote(call_uuid)

    async def play_info_message(self, call_uuid: str, campaign) -> None:
        name, seconds = await self._prompt(campaign)
        await (await self._controller.get()).play_and_hangup.remote(call_uuid, name, seconds)

    async def _prompt(self, campaign) -> tuple[str, float]:
        """The campaign's recorded information message: its file name (a base name, never
        a path: `esl_commands.sound_file_name`) in ``freeswitch.sounds_dir``, and how long
        it plays. When it has not been recorded yet, one is synthesized once by the TTS
        deployment, naming the seller and the call-back number as the TSR requires.
        FreeSWITCH must see the same folder: share it (docs/freeswitch.md)."""
        from ray import serve  # heavy: loads ray

        name = campaign.compliance.info_message or f"{campaign.id}-info.wav"
        # the controller resolves the name the same way: one folder, no way out of it
        path = Path(sound_path(self.cfg.freeswitch.sounds_dir, name))
        if not await asyncio.to_thread(path.exists):
            number = " ".join(campaign.caller_id_number.lstrip("+"))
            text = (f"Hello, this is {campaign.caller_id_name or campaign.name}. Sorry we missed "
                    f"you. To hear about our offer, please call us back on {number}. Goodbye.")
            tts = serve.get_deployment_handle("tts", app_name=self.cfg.serve.app_name)
            pcm = await tts.synthesize.remote(text, 8000)
            await asyncio.to_thread(_write_prompt, path, pcm)
        size = (await asyncio.to_thread(path.stat)).st_size
        return name, max(0.5, (size - 44) / 2 / 8000)


def _write_prompt(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, np.frombuffer(pcm, dtype="<i2"), 8000)


def start_floor(settings: Settings) -> dict[str, Any]:
    """Start (or find) the controller, router and dialer actors for `settings`."""
    import ray  # heavy: loads ray

    doc = settings_doc(settings)
    controller = get_controller(settings.freeswitch, settings.redis_url,
                                floor={"dialer_name": settings.dialer.actor_name})
    router = ray.remote(RouterService).options(
        name=ROUTER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        max_restarts=-1, num_cpus=0, max_concurrency=1000).remote(doc)
    dialer = start_dialer(
        settings.redis_url,
        call_control_factory=make_remote_control(doc),
        capacity_factory=_Factory(FloorCapacity, doc),
        answers_factory=_Factory(EslAnswers, doc),
        settings=settings.dialer,
    )
    actors = {"controller": controller, "router": router, "dialer": dialer}
    if settings.records.writer:  # outbox -> the durable SQL store (cluster/actors/records.py)
        actors["records"] = start_record_writer(settings)
    return actors


class _Factory:
    """A picklable `() -> obj` for actor constructors (run again after each restart)."""

    def __init__(self, cls, doc: dict[str, Any]):
        self.cls, self.doc = cls, doc

    def __call__(self):
        return self.cls(self.doc)
