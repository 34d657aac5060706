"""The ESL controller as a Ray actor: one per FreeSWITCH server, named after it, detached
and restartable, its call records in Redis.

The logic is `telephony.esl_controller.ESLController`; this file only gives it a home in
the cluster. A restarted actor reconnects, resyncs the live channels from FreeSWITCH and
finds the records of earlier calls in Redis (``cf:esl:<uuid>``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cluster.actors.hooks import FloorHooks
from cluster.actors.names import NAMESPACE
from cluster.records.call_state import call_record_event, esl_record_key, fork_lease_key
from cluster.records.outbox import add_to
from configs.settings import FreeswitchSettings
from telephony.call_control import CallControlError, OriginateRequest, OriginateResult
from telephony.call_fsm import CallPhase, CallRecord
from telephony.esl_controller import ESLController

__all__ = ["RedisCallRecordSink", "actor_name", "get_controller"]

logger = logging.getLogger(__name__)


def record_key(call_uuid: str) -> str:
    """``cf:esl:<uuid>``: also what the media gateway reads to tell a live call, and its
    bot, campaign and lead (cluster/records/call_state.py, `RedisCallDirectory`)."""
    return esl_record_key(call_uuid)


class RedisCallRecordSink:
    """Writes each call record to Redis as JSON; while Redis is down the latest record per
    call waits in a bounded backlog and goes out with the next successful write."""

    def __init__(self, url: str, ttl_s: int = 86_400, backlog: int = 10_000):
        self.redis = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl_s = ttl_s
        self._pending: deque[CallRecord] = deque(maxlen=backlog)
        self._lock = asyncio.Lock()

    async def save(self, record: CallRecord) -> None:
        self._pending.append(record)
        async with self._lock:  # one flusher: saves run as concurrent tasks
            try:
                while self._pending:
                    item = self._pending[0]
                    pipe = self.redis.pipeline(transaction=True)
                    pipe.set(record_key(item.call_uuid), json.dumps(item.to_dict()), ex=self.ttl_s)
                    if item.ended:  # the call's telephony facts for the SQL records
                        add_to(pipe, call_record_event(item))
                    await pipe.execute()
                    if self._pending and self._pending[0] is item:
                        self._pending.popleft()
            except (RedisError, OSError) as exc:
                logger.warning("call record kept for later: Redis unavailable (%s)",
                               type(exc).__name__)

    async def load(self, call_uuid: str) -> CallRecord | None:
        raw = await self.redis.get(record_key(call_uuid))
        return CallRecord.from_dict(json.loads(raw)) if raw else None

    async def live_records(self, limit: int = 50_000) -> list[CallRecord]:
        """The stored records of calls not ended, for a restarted controller's resync."""
        out: list[CallRecord] = []
        async for key in self.redis.scan_iter(match=record_key("*"), count=500):
            raw = await self.redis.get(key)
            try:
                record = CallRecord.from_dict(json.loads(raw)) if raw else None
            except (ValueError, TypeError, KeyError):
                continue
            if record is not None and not record.ended:
                out.append(record)
            if len(out) >= limit:
                break
        return out

    async def fork_open(self, call_uuid: str) -> bool:
        """Whether a gateway holds the call's media fork lease (``cf:fork:<uuid>``)."""
        return bool(await self.redis.exists(fork_lease_key(call_uuid)))


class ESLControllerActor:
    """Async Ray actor around one ESLController."""

    def __init__(self, settings: dict[str, Any], redis_url: str | None,
                 floor: dict[str, Any] | None = None) -> None:

        self.settings = FreeswitchSettings.model_validate(settings)
        self.sink = RedisCallRecordSink(redis_url) if redis_url else None
        self.controller = ESLController(self.settings, self.sink)
        if redis_url:  # escalations to the router, hangups to router and dialer
            dialer = (floor or {}).get("dialer_name", "callfleet-dialer")
            self.controller.add_listener(FloorHooks(dialer))
        self._started = False

    async def _ensure(self) -> None:
        if not self._started:
            self._started = True
            await self.controller.start()

    async def ready(self, timeout_s: float = 15.0) -> bool:
        await self._ensure()
        await self.controller.wait_connected(timeout_s)
        return True

    async def originate(self, request: dict[str, Any]) -> dict[str, Any]:
        await self._ensure()
        result = await self.controller.originate(OriginateRequest.model_validate(request))
        return result.model_dump()

    async def transfer(self, call_uuid: str, extension: str, context: str | None = None) -> None:
        await self.controller.transfer(call_uuid, extension, context)

    async def connect_bot(self, call_uuid: str) -> None:
        await self.controller.connect_bot(call_uuid)

    async def play_and_hangup(self, call_uuid: str, file_name: str, duration_s: float) -> None:
        """`file_name`: a prompt's base name in ``freeswitch.sounds_dir``."""
        await self.controller.play_and_hangup(call_uuid, file_name, duration_s)

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        await self.controller.bridge(call_uuid, other_uuid)

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        await self.controller.hangup(call_uuid, cause)

    async def eavesdrop(self, call_uuid: str, extension: str, mode: str = "listen") -> str:
        await self._ensure()
        return await self.controller.eavesdrop(call_uuid, extension, mode)

    async def eavesdrop_mode(self, leg_uuid: str, mode: str) -> None:
        await self.controller.eavesdrop_mode(leg_uuid, mode)

    async def call(self, call_uuid: str) -> dict[str, Any] | None:
        record = self.controller.calls.get(call_uuid)
        if record is None and self.sink is not None:
            record = await self.sink.load(call_uuid)
        return record.to_dict() if record else None

    async def status(self) -> dict[str, Any]:
        await self._ensure()
        calls = list(self.controller.calls.values())
        return {"connected": self.controller.connected, "resyncs": self.controller.resyncs,
                "live_calls": sum(1 for c in calls if not c.ended),
                # calls a bot is talking to (or about to): what bot capacity is spent on
                "bot_calls": sum(1 for c in calls if _holds_a_bot(c))}

    async def shutdown(self) -> None:
        await self.controller.stop()


def _holds_a_bot(record: CallRecord) -> bool:
    """A bot is (or is about to be) talking to this call. A dialer's call that was just
    answered does not count until the dialer connects it: it is the call asking whether
    a bot is free."""
    if record.phase is CallPhase.BOT:
        return True
    if record.phase is not CallPhase.ANSWERED:
        return False
    waiting = "callfleet_campaign" in record.variables and not record.bot_requested
    return not waiting


def actor_name(settings: FreeswitchSettings) -> str:
    return f"esl-controller:{settings.host}:{settings.port}"


def get_controller(settings: FreeswitchSettings, redis_url: str | None,
                   floor: dict[str, Any] | None = None):
    """The named controller actor for this FreeSWITCH server (created when missing). With a
    Redis URL its call events go to the router and dialer (cluster.actors.floor); `floor` may
    name the dialer actor."""
    import ray  # heavy: loads ray

    actor_cls = ray.remote(ESLControllerActor).options(
        name=actor_name(settings), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        max_restarts=-1, max_task_retries=0, num_cpus=0, max_concurrency=1000,
    )
    doc = settings.model_dump()
    doc["password"] = settings.password.get_secret_value()
    return actor_cls.remote(doc, redis_url, floor)


class make_remote_control:  # noqa: N801 - used like a function: a picklable factory
    """`() -> RemoteCallControl` for actors that need call control (the dialer)."""

    def __init__(self, settings_doc: dict[str, Any]):
        self.doc = settings_doc

    def __call__(self) -> RemoteCallControl:
        fs = FreeswitchSettings.model_validate(self.doc["freeswitch"])
        return RemoteCallControl(get_controller(fs, self.doc.get("redis_url")))


class RemoteCallControl:
    """`CallControl` over the actor, for code running elsewhere in the cluster."""

    def __init__(self, handle) -> None:
        self.handle = handle

    async def originate(self, request: OriginateRequest):

        return OriginateResult.model_validate(
            await self.handle.originate.remote(request.model_dump()))

    async def transfer(self, call_uuid: str, extension: str, context: str = "default") -> None:
        await _remote(self.handle.transfer.remote(call_uuid, extension, context))

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        await _remote(self.handle.bridge.remote(call_uuid, other_uuid))

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        await _remote(self.handle.hangup.remote(call_uuid, cause))

    async def eavesdrop(self, call_uuid: str, extension: str, mode: str = "listen") -> str:
        """A supervisor joins the call from `extension` (listen, whisper or barge)."""
        return await _remote(self.handle.eavesdrop.remote(call_uuid, extension, mode))

    async def eavesdrop_mode(self, leg_uuid: str, mode: str) -> None:
        await _remote(self.handle.eavesdrop_mode.remote(leg_uuid, mode))


async def _remote(ref) -> Any:
    import ray  # heavy: loads ray

    try:
        return await ref
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        if isinstance(cause, CallControlError):
            raise cause from None
        raise CallControlError(f"controller failed: {type(cause).__name__}") from None
