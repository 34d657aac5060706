"""The dialer as a detached, named, restartable Ray actor, and a thin facade over it.

The actor hosts one `Dialer` (plain asyncio) and runs its tick loop on the actor's event
loop from the constructor, so a restarted actor (``max_restarts=-1``) starts dialling
again without anyone calling it. It holds nothing of its own: campaigns, leads, claims,
records and statistics are in Redis, and the restarted dialer rebuilds its view from
there (see `Dialer._recover`).

The telephony side arrives as *factories* (picklable callables run inside the actor
process, again after each restart): ``call_control_factory() -> CallControl``,
``capacity_factory() -> CapacityProbe`` and ``answers_factory() -> AnswerHandler``
(leave it out when the capacity object also implements `AnswerHandler`).

    handle = start_dialer(redis_url, make_esl_control, make_capacity, make_answers)
    handle.status()                      # per campaign: last decision, calls ringing
    handle.call_ended(call_uuid, "NORMAL_CLEARING", escalated=False)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cluster.actors.metrics import RayMetrics
from cluster.dialer.engine import AnswerHandler, CapacityProbe, Dialer
from cluster.dialer.store import DialerStore
from configs.dialer import DialerSettings
from telephony.call_control import CallControl

__all__ = ["DialerHandle", "DialerService", "get_dialer", "start_dialer"]

log = logging.getLogger("callfleet.dialer.actor")


class DialerService:
    """What the actor runs. Plain class: `start_dialer` applies `ray.remote`."""

    def __init__(self, redis_url: str, settings: dict[str, Any],
                 call_control_factory: Callable[[], CallControl],
                 capacity_factory: Callable[[], CapacityProbe],
                 answers_factory: Callable[[], AnswerHandler] | None = None):
        self.settings = DialerSettings.model_validate(settings)
        self.store = DialerStore(redis_url)
        capacity = capacity_factory()
        answers = answers_factory() if answers_factory else capacity  # one object may do both
        self.dialer = Dialer(self.store, call_control_factory(), capacity, answers, self.settings,
                             metrics=RayMetrics())  # pacing, abandonment: docs/operations.md
        self._stop = asyncio.Event()
        self._loop_task = asyncio.get_event_loop().create_task(self.dialer.run(self._stop))
        log.info("dialer actor started (tick %.2fs)", self.settings.tick_s)

    async def status(self) -> dict[str, Any]:
        """Whether the tick loop runs, and each campaign's state as stored in Redis."""
        campaigns = {}
        for campaign_id in await self.store.campaign_ids():
            campaigns[campaign_id] = await self.store.status(campaign_id)
        return {"running": not self._loop_task.done(), "campaigns": campaigns}

    async def call_ended(self, call_uuid: str, cause: str = "NORMAL_CLEARING",
                         escalated: bool = False) -> bool:
        """Report the end of a connected call (idempotent)."""
        return await self.dialer.call_ended(call_uuid, cause, escalated)

    async def tick_now(self) -> dict[str, int]:
        """One extra pacing round now (tests, supervisors); returns the dials per campaign."""
        return {cid: d.dials for cid, d in (await self.dialer.tick()).items()}

    async def check_health(self) -> None:
        """Raises when the tick loop has died, so the caller can restart the actor."""
        if self._loop_task.done():
            raise RuntimeError("the dialer tick loop has stopped")

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop dialling and wait for calls being placed to be recorded."""
        self._stop.set()
        await asyncio.wait([self._loop_task], timeout=timeout)
        await self.dialer.close(timeout)
        await self.store.close()


class DialerHandle:
    """Facade over the actor; every method waits for the answer (use `actor` for refs)."""

    def __init__(self, actor: Any):
        self.actor = actor

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        import ray  # heavy: loads ray

        return ray.get(self.actor.status.remote(), timeout=timeout)

    def call_ended(self, call_uuid: str, cause: str = "NORMAL_CLEARING",
                   escalated: bool = False, timeout: float = 30.0) -> bool:
        import ray  # heavy: loads ray

        return ray.get(self.actor.call_ended.remote(call_uuid, cause, escalated), timeout=timeout)

    def tick_now(self, timeout: float = 60.0) -> dict[str, int]:
        import ray  # heavy: loads ray

        return ray.get(self.actor.tick_now.remote(), timeout=timeout)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop dialling cleanly and remove the actor (it is not restarted)."""
        import ray  # heavy: loads ray

        ray.get(self.actor.shutdown.remote(), timeout=timeout)
        ray.kill(self.actor, no_restart=True)


def start_dialer(redis_url: str, call_control_factory: Callable[[], CallControl],
                 capacity_factory: Callable[[], CapacityProbe],
                 answers_factory: Callable[[], AnswerHandler] | None = None,
                 settings: DialerSettings | None = None) -> DialerHandle:
    """The running dialer actor, started if there is none (Ray must be initialised).
    If one runs already it is returned as it is, whatever the arguments."""
    import ray  # heavy: loads ray

    settings = settings or DialerSettings()
    actor = ray.remote(DialerService).options(
        name=settings.actor_name, namespace=settings.namespace, lifetime="detached",
        get_if_exists=True, max_restarts=-1, max_task_retries=settings.max_task_retries,
        num_cpus=0,
    ).remote(redis_url, settings.model_dump(mode="json", exclude={"api_token"}),
             call_control_factory, capacity_factory, answers_factory)
    return DialerHandle(actor)


def get_dialer(settings: DialerSettings | None = None) -> DialerHandle | None:
    """The running dialer actor, or None when none is started."""
    import ray  # heavy: loads ray

    settings = settings or DialerSettings()
    try:
        return DialerHandle(ray.get_actor(settings.actor_name, namespace=settings.namespace))
    except ValueError:
        return None
