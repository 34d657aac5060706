"""The media gateway ingress: FreeSWITCH media forks in, bot audio out.

(No `from __future__ import annotations` here: FastAPI must see the real `WebSocket`
annotation through Serve's class-based ingress, or it treats `ws` as a query parameter.)

Media forks speak drachtio mod_audio_fork (see telephony/media_fork.py) and arrive on
the replica's own media port (`gateway.media_port`, deployments/gateway/media_server.py: no
proxy hop per audio frame) or through Serve's HTTP route `/media/{call_uuid}`. Each
websocket is one `CallSession` running as tasks on this replica, calling the model
deployments through their handles.
"""


import asyncio
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import ray
from fastapi import FastAPI, WebSocket
from fastapi.responses import RedirectResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from bots.slots import SlotSpec
from cluster.actors.metrics import RayMetrics
from cluster.dialer.customers import ProfileLookup
from cluster.records.bot_scripts import ReplicaScripts
from cluster.records.call_state import RedisCallDirectory, RedisCallRecorder
from cluster.records.webhooks import WebhookSender
from deployments.common import settings_from
from deployments.engines.tts import split_sentences
from deployments.gateway.bot_actions import FloorActions
from deployments.gateway.bot_registry import BotRegistry
from deployments.gateway.fork_admission import ForkAdmission
from deployments.gateway.media_server import MediaServer
from deployments.gateway.media_ws import ForkSocket, StarletteForkSocket, serve_media_fork
from deployments.gateway.metrics import MeteredRecorder
from deployments.tts import FIRST_SENTENCE, READ_AHEAD
from telephony.fork_auth import ForkCredentials
from training.models.outputs import EmotionInput, EmotionResult, IntentResult, Transcript

app = FastAPI(title="CallFleet media gateway")


class ServeTurnModels:
    """TurnModels over Serve handles."""

    def __init__(self, asr: DeploymentHandle, intent: DeploymentHandle,
                 emotion: DeploymentHandle, tts: DeploymentHandle):
        self.asr, self.intent_h, self.emotion_h, self.tts = asr, intent, emotion, tts

    async def transcribe(self, pcm16k: bytes, expect: SlotSpec | None = None) -> Transcript:
        if expect is None:
            return await self.asr.transcribe.remote(pcm16k)
        return await self.asr.transcribe_expecting.remote(pcm16k, expect.model_dump())

    async def intent(self, text: str) -> IntentResult:
        return await self.intent_h.classify.remote(text)

    async def emotion(self, text: str, loudness_z: float | None, pitch_z: float | None) -> EmotionResult:
        return await self.emotion_h.classify.remote(EmotionInput(text, loudness_z, pitch_z))

    async def speak(self, text: str, sample_rate: int) -> AsyncGenerator[tuple[str, bytes], None]:
        """Sentence by sentence; the next sentence is synthesized while this one plays (as
        read-ahead: the TTS replica serves other callers' first sentences before it). A
        stream closed early (barge-in: the session closes it) cancels that read-ahead."""
        sentences = split_sentences(text)
        pending = self.tts.synthesize.remote(sentences[0], sample_rate, FIRST_SENTENCE) if sentences else None
        try:
            for i, sentence in enumerate(sentences):
                pcm = await pending
                pending = None
                if i + 1 < len(sentences):
                    pending = self.tts.synthesize.remote(sentences[i + 1], sample_rate, READ_AHEAD)
                yield sentence, pcm
        finally:
            if pending is not None:  # asked for, never received: nobody will hear it
                pending.cancel()


# a replaced gateway replica (redeploy, scale-down) keeps serving its calls until they end,
# up to 10 minutes, instead of cutting them after Serve's default 20 s
DRAIN_S = 600


def _replica_id() -> str:
    """This replica's id in Serve (a fresh random one outside Serve)."""
    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # not in a replica (tests)
        return uuid.uuid4().hex[:12]


def _node_id() -> str | None:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # not in Ray (tests)
        return None


@serve.deployment(name="gateway", max_ongoing_requests=1000,
                  graceful_shutdown_timeout_s=DRAIN_S, graceful_shutdown_wait_loop_s=2)
@serve.ingress(app)
class MediaGateway:
    async def __init__(self, asr: DeploymentHandle, intent: DeploymentHandle,
                       emotion: DeploymentHandle, tts: DeploymentHandle, settings: dict[str, Any]):
        self.cfg = settings_from(settings)
        if not self.cfg.redis_url:
            raise ValueError("redis_url is not set: the gateway keeps call context in Redis")
        self.models = ServeTurnModels(asr, intent, emotion, tts)
        limits = self.cfg.gateway.limits
        self.metrics = RayMetrics()  # exported on the node's metrics port (docs/operations.md)
        self.recorder = MeteredRecorder(
            RedisCallRecorder(self.cfg.redis_url, ttl_s=self.cfg.call_ttl_s,
                              max_turns=limits.max_stored_turns), self.metrics)
        self.bots = BotRegistry(self.cfg)
        # scripts deployed with `callfleet bots deploy`: live here within a second
        self.published = ReplicaScripts.from_url(self.cfg.redis_url, _replica_id())
        self.bots.watch_published(self.published)
        webhooks = WebhookSender(self.cfg.webhooks) if self.cfg.webhooks.urls else None
        self.actions = FloorActions(self.cfg.redis_url, webhooks)
        # who may open a fork (both routes): credential, live call, one fork per call, cap
        self.admission = ForkAdmission(
            ForkCredentials.from_settings(self.cfg.freeswitch.fork_auth),
            allow_unauthenticated=self.cfg.unauthenticated_forks_allowed,
            directory=RedisCallDirectory(self.recorder.redis), leads=self.actions.dialer,
            max_forks=limits.max_forks,
            profiles=ProfileLookup.from_settings(self.actions.redis, self.cfg.customers))
        self.admission.announce()
        self.media: MediaServer | None = None
        if self.cfg.gateway.media_port:
            self.media = MediaServer(self.cfg.serve.host, self.cfg.gateway.media_port, self._run_fork)
            await self.media.start()
        self.bots.about = {"node": _node_id(), "media": (
            f"{self.cfg.serve.host}:{self.cfg.gateway.media_port}" if self.media else None)}

    @app.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        intent = await self.models.intent_h.info.remote()
        return {"status": "ok", "active_calls": self.admission.open, "intent_model": intent["version"],
                **self.bots.status()}

    @app.get("/metrics/turns")
    async def turn_metrics(self) -> dict[str, Any]:
        """p50/p95 per turn stage over this replica's recent turns."""
        return self.recorder.summary()

    @app.get("/desk", include_in_schema=False)
    async def desk(self) -> RedirectResponse:
        """The agent desk and the wallboard belong to the API app (``/api``); this app
        owns ``/`` on the Serve port, so it points browsers there."""
        return RedirectResponse("/api/desk", status_code=307)

    @app.get("/wallboard", include_in_schema=False)
    async def wallboard(self) -> RedirectResponse:
        return RedirectResponse("/api/wallboard", status_code=307)

    @app.websocket("/media/{call_uuid}")
    async def media(self, ws: WebSocket, call_uuid: str) -> None:
        await self._run_fork(StarletteForkSocket(ws), call_uuid)

    async def _run_fork(self, sock: ForkSocket, call_uuid: str) -> str:
        return await serve_media_fork(sock, call_uuid, self.cfg.gateway, self.models,
                                      self.recorder, self.bots, self.actions,
                                      admission=self.admission, metrics=self.metrics)

    async def __del__(self) -> None:
        # Serve waits for HTTP-route forks itself; media-port forks are not Serve requests,
        # so the replica waits here for them (within the same shutdown budget)
        try:
            if self.media is not None:
                await self.media.drain(DRAIN_S - 30)
        finally:
            await self.actions.aclose()  # the calls are over: nothing acts on the floor now
            await self.bots.stop_watching(self.published)

    async def check_health(self) -> None:
        await asyncio.wait_for(self.recorder.redis.ping(), 5)
