"""`SkillRouter`: escalated calls to human agents — offer, accept, reject, no-answer,
queue, overflow.

A plain class with async methods and no state of its own beyond a lock: everything
lives in Redis (`RoutingStore`), so it can run as a Ray actor that is killed and
restarted without losing a call, and accept/reject/complete are idempotent by id.
One router per Redis: the lock serialises this process's changes; offer state changes
are compare-and-set in Redis, so an accept racing the no-answer timeout has one winner.

Call `sweep()` every `sweep_interval_s` (or run `run()`): it expires unanswered offers
and re-routes their calls, ends wrap-up, logs out agents whose heartbeat stopped,
overflows calls that waited too long, and offers waiting calls to free agents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.routing.choice import queue_order
from cluster.routing.errors import (
    CallerGoneError,
    ConnectFailedError,
    EscalationNotFoundError,
    NotYourCallError,
    NotYourOfferError,
    OfferClosedError,
    OfferNotFoundError,
    RoutingError,
    describe_error,
)
from cluster.routing.feed import EventSink
from cluster.routing.models import (
    AgentSnapshot,
    AgentState,
    EscalationRecord,
    EscalationRequest,
    EscalationStatus,
    Offer,
    OfferState,
    QueueItem,
    RouteResult,
    WrapUp,
)
from cluster.routing.offers import LIVE_STATUSES, OfferLifecycle, OverflowDecision
from cluster.routing.store import RoutingStore
from configs.routing import RoutingSettings
from telephony.call_control import CallControl, CallControlError, CallGoneError
from telephony.metrics import AGENTS, ERRORS, NO_METRICS, QUEUE_LENGTH, QUEUE_WAIT, Metrics

__all__ = ["CALLER_HUNG_UP", "WEIGHT_FIELDS", "OverflowDecision", "SkillRouter", "SweepReport"]

log = logging.getLogger("callfleet.routing")

#: an escalation's `ended_reason` when the caller hung up before an agent took the call
CALLER_HUNG_UP = "caller hung up"
#: the routing settings a supervisor may change live (`SkillRouter.set_weights`)
WEIGHT_FIELDS = ("base_weight", "conversion_weight", "skill_level_weight")

METRICS_INTERVAL_S = 5.0  # the floor gauges at most this often (Ray exports every ~10 s)


@dataclass
class SweepReport:
    """What one `sweep` changed (ids only)."""

    expired_offers: list[str] = field(default_factory=list)
    overflowed: list[OverflowDecision] = field(default_factory=list)
    offered: list[RouteResult] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)
    back_from_wrap_up: list[str] = field(default_factory=list)


class SkillRouter(OfferLifecycle):
    """The floor's routing facade: escalations here, agent operations inherited from
    `AgentDesk`, offer internals from `OfferLifecycle`.

    `call_control` connects accepted calls (the ESL controller in production); `sinks`
    receive every event (websocket feed, webhooks); `on_overflow` carries out overflow
    decisions (callback or voicemail) and is called outside the lock. A router made with
    ``dispatch=False`` (the CLI's) changes state but never makes offers itself, leaving
    that to the one running router. `metrics` gets the queue and agent gauges (from the
    dispatching router's sweeps), queue waits and routing errors.
    """

    def __init__(self, store: RoutingStore, call_control: CallControl | None = None,
                 settings: RoutingSettings | None = None, *, sinks: Sequence[EventSink] = (),
                 on_overflow: Callable[[OverflowDecision], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.time, dispatch: bool = True,
                 metrics: Metrics = NO_METRICS):
        super().__init__(store, settings or RoutingSettings(), clock, on_overflow, metrics)
        self._gauged_at: float | None = None
        self.call_control = call_control
        self.sinks = list(sinks)
        self.dispatching = dispatch

    # ---- escalations -------------------------------------------------------------------

    async def escalate(self, request: EscalationRequest) -> RouteResult:
        """Route a call: offer it to an agent now, or queue it (or overflow when the queue
        is full). Escalating a call that is already being routed returns where it stands."""
        async with self._lock:
            now = self.clock()
            existing = await self.store.get_escalation(request.call_uuid)
            if existing is not None and existing.status in LIVE_STATUSES:
                return await self._result(existing)
            record = EscalationRecord(request=request, enqueued_at=now,
                                      deadline=now + self.settings.max_wait_for(request.vip))
            if await self.store.queue_length() >= self.settings.max_queue:
                await self._overflow(record, "queue full", now)
            else:
                await self.store.put_escalation(record, active=True)
                await self.store.enqueue(request.call_uuid, now)
                log.info("escalation queued (vip=%s, priority=%d)", request.vip, request.priority)
                await self._dispatch(now)
                record = await self.store.get_escalation(request.call_uuid) or record
            result = await self._result(record)
        await self._flush_overflows()
        return result

    async def status(self, call_uuid: str) -> RouteResult | None:
        record = await self.store.get_escalation(call_uuid)
        return await self._result(record) if record else None

    async def accept(self, offer_id: str, agent_id: str, agent_leg_uuid: str | None = None) -> Offer:
        """The agent takes the call: bridge it to `agent_leg_uuid` (the agent's live leg)
        when given, else transfer it to the agent's extension. A repeated accept returns
        the same offer without connecting twice."""
        offer = await self._own_offer(offer_id, agent_id)
        if self.call_control is None:
            raise RoutingError("this router has no call control: it cannot connect calls")
        async with self._lock:
            moved, before = await self.store.transition_offer(offer_id, OfferState.CONNECTING)
            if not moved:
                if before in (OfferState.CONNECTING, OfferState.ACCEPTED):
                    return await self.store.get_offer(offer_id) or offer
                if await self._caller_gone(offer.call_uuid):
                    raise CallerGoneError(offer_id)
                raise OfferClosedError(offer_id, before)
            agent = await self._agent(agent_id)
            await self.store.remove_agent_offer(agent_id, offer_id)
            await self.store.add_call(agent_id, offer.call_uuid)
            offer.connect = "bridge" if agent_leg_uuid else "transfer"
            await self.store.update_offer_doc(offer)
            await self._set_record(offer.call_uuid, status=EscalationStatus.CONNECTING)
        try:
            if agent_leg_uuid:
                await self.call_control.bridge(offer.call_uuid, agent_leg_uuid)
            else:
                await self.call_control.transfer(offer.call_uuid, agent.profile.extension,
                                                 self.settings.transfer_context)
        except CallControlError as exc:
            self.metrics.inc(ERRORS, kind="agent_connect")
            await self._connect_failed(offer, exc)
            if isinstance(exc, CallGoneError):
                raise CallerGoneError(offer_id) from exc
            raise ConnectFailedError(offer_id, f"the switch refused the {offer.connect}",
                                     exc.retryable) from exc
        async with self._lock:
            now = self.clock()
            await self.store.transition_offer(offer_id, OfferState.ACCEPTED, (OfferState.CONNECTING,))
            record = await self._set_record(offer.call_uuid, status=EscalationStatus.CONNECTED,
                                            agent_id=agent_id, connected_at=now)
            if record is not None and record.status is EscalationStatus.CONNECTED:
                await self.store.count_outcome("answered", now)
            await self.store.set_agent_fields(agent_id, state=AgentState.ON_CALL, state_since=now)
            await self._emit({"type": "offer_closed", "agent_id": agent_id, "offer_id": offer_id,
                              "call_uuid": offer.call_uuid, "state": OfferState.ACCEPTED.value})
            await self._emit({"type": "agent_state", "agent_id": agent_id,
                              "state": AgentState.ON_CALL.value})
            if record is not None and record.status is EscalationStatus.ENDED:
                log.info("caller left while the call was being connected")
                await self._release_call(agent_id, offer.call_uuid, now)
        offer.state = OfferState.ACCEPTED
        log.info("offer %s accepted by agent %s (%s)", offer_id, agent_id, offer.connect)
        return offer

    async def reject(self, offer_id: str, agent_id: str) -> RouteResult:
        """The agent declines: the call goes to another agent (or back to the queue). A
        repeated reject returns where the call stands."""
        offer = await self._own_offer(offer_id, agent_id)
        async with self._lock:
            now = self.clock()
            moved, before = await self.store.transition_offer(offer_id, OfferState.REJECTED)
            if moved:
                await self.store.remove_agent_offer(agent_id, offer_id)
                await self.store.incr_agent(agent_id, "rejects")
                await self._emit({"type": "offer_closed", "agent_id": agent_id, "offer_id": offer_id,
                                  "call_uuid": offer.call_uuid, "state": OfferState.REJECTED.value})
                record = await self.store.get_escalation(offer.call_uuid)
                if record is not None and record.offer_id == offer_id:
                    await self._requeue(record, agent_id, now)
                    await self._dispatch(now)
            elif before is not OfferState.REJECTED:
                raise OfferClosedError(offer_id, before)
            record = await self.store.get_escalation(offer.call_uuid)
            result = await self._result(record) if record else RouteResult(
                call_uuid=offer.call_uuid, status=EscalationStatus.ENDED)
        await self._flush_overflows()
        return result

    async def complete(self, call_uuid: str, agent_id: str, converted: bool,
                       wrap_up: WrapUp | None = None) -> AgentSnapshot:
        """The agent finished the call (with its outcome, for conversion rates, and their
        wrap-up notes): they go to wrap-up, then back to available. Idempotent per call;
        a later call with notes updates them."""
        async with self._lock:
            now = self.clock()
            record = await self.store.get_escalation(call_uuid)
            if record is None:
                raise EscalationNotFoundError(call_uuid)
            if record.agent_id != agent_id or record.status not in (
                    EscalationStatus.CONNECTED, EscalationStatus.ENDED):
                raise NotYourCallError(call_uuid, agent_id)
            if record.converted is None:
                record.converted = converted
                record.status = EscalationStatus.ENDED
                record.ended_reason = record.ended_reason or "completed"
                await self.store.put_escalation(record, active=False,
                                                ttl_s=self.settings.escalation_ttl_s)
                await self.store.incr_agent(agent_id, "handled")
                if converted:
                    await self.store.incr_agent(agent_id, "converted")
            if wrap_up is not None:
                record.wrap_up = wrap_up
                await self.store.put_escalation(record, active=False,
                                                ttl_s=self.settings.escalation_ttl_s)
                await self._emit({"type": "wrap_up", "agent_id": agent_id, "call_uuid": call_uuid,
                                  "converted": record.converted, **wrap_up.model_dump()})
            await self._release_call(agent_id, call_uuid, now)
            await self._dispatch(now)
            snapshot = await self._agent(agent_id)
        await self._flush_overflows()
        return snapshot

    async def call_ended(self, call_uuid: str) -> RouteResult | None:
        """The switch reports the caller's channel is gone: stop routing it and free the
        agent (who still posts the outcome with `complete`)."""
        async with self._lock:
            now = self.clock()
            record = await self.store.get_escalation(call_uuid)
            if record is None or record.status not in LIVE_STATUSES:
                return await self._result(record) if record else None
            waiting = record.status is not EscalationStatus.CONNECTED
            if record.status is EscalationStatus.QUEUED:
                await self.store.claim(call_uuid)
                if record.attempts == 0:  # the caller gave up before any offer
                    self.metrics.observe(QUEUE_WAIT, max(now - record.enqueued_at, 0.0),
                                         outcome="abandoned")
            elif record.status is EscalationStatus.OFFERED and record.offer_id:
                await self._withdraw(record.offer_id, now, requeue=False,
                                     reason="caller_hung_up")
            elif record.status is EscalationStatus.CONNECTED and record.agent_id:
                await self._release_call(record.agent_id, call_uuid, now)
            record = await self.store.get_escalation(call_uuid) or record
            record.status = EscalationStatus.ENDED
            if waiting:  # nobody had taken it yet: the caller gave up waiting
                record.ended_reason = record.ended_reason or CALLER_HUNG_UP
                await self.store.count_outcome("abandoned", now)
                log.info("escalated caller hung up before an agent took the call")
            record.ended_reason = record.ended_reason or "hangup"
            await self.store.put_escalation(record, active=False,
                                            ttl_s=self.settings.escalation_ttl_s)
            await self._dispatch(now)
            return await self._result(record)

    async def hangup(self, call_uuid: str, agent_id: str) -> RouteResult:
        """The agent ends their call (the switch hangs up both legs): the call is over
        and the agent goes to wrap-up. Idempotent."""
        record = await self.store.get_escalation(call_uuid)
        if record is None:
            raise EscalationNotFoundError(call_uuid)
        if record.agent_id != agent_id:
            raise NotYourCallError(call_uuid, agent_id)
        if record.status is EscalationStatus.CONNECTED:
            if self.call_control is None:
                raise RoutingError("this router has no call control: it cannot hang up calls")
            try:
                await self.call_control.hangup(call_uuid)
            except CallGoneError:
                pass  # already gone: end it here as the switch's event would
            except CallControlError as exc:
                raise ConnectFailedError("-", "the switch refused the hangup", exc.retryable) from exc
        return await self.call_ended(call_uuid) or await self._result(record)

    async def set_weights(self, weights: dict[str, float]) -> dict[str, float]:
        """Change the routing weights live (the dispatching router reads them before each
        decision); checked against `RoutingSettings`. Returns the weights now in force."""
        wanted = {k: float(v) for k, v in weights.items() if k in WEIGHT_FIELDS}
        merged = {**self.settings.model_dump(), **await self.store.weights(), **wanted}
        checked = type(self.settings).model_validate(merged)  # ValueError when out of range
        await self.store.set_weights({k: getattr(checked, k) for k in wanted})
        log.info("routing weights changed: %s", sorted(wanted))
        return {k: getattr(checked, k) for k in WEIGHT_FIELDS}

    async def weights(self) -> dict[str, float]:
        live = await self._live_settings()
        return {k: getattr(live, k) for k in WEIGHT_FIELDS}

    async def queue(self) -> list[QueueItem]:
        """Waiting calls in the order they will be served (no transcripts, no customer data)."""
        now = self.clock()
        return [QueueItem(
            call_uuid=r.request.call_uuid, vip=r.request.vip, priority=r.request.priority,
            reason=r.request.reason, skills=r.request.skills, campaign_id=r.request.campaign_id,
            enqueued_at=r.enqueued_at, waited_s=max(now - r.enqueued_at, 0.0),
            deadline=r.deadline, status=r.status,
        ) for r in queue_order(await self.store.queued())]

    async def pending_offers(self, agent_id: str) -> list[dict[str, Any]]:
        """The briefs of the offers waiting for this agent's answer."""
        out = []
        for offer_id in await self.store.agent_offer_ids(agent_id):
            offer = await self.store.get_offer(offer_id)
            record = await self.store.get_escalation(offer.call_uuid) if offer else None
            if offer and record and offer.state is OfferState.PENDING:
                out.append(offer.brief(record.request))
        return out

    # ---- periodic work -----------------------------------------------------------------

    async def sweep(self) -> SweepReport:
        """Timeouts, heartbeats, wrap-up, overflow and dispatch; safe to call at any time."""
        report = SweepReport()
        async with self._lock:
            now = self.clock()
            agents = {a.agent_id: a for a in await self.store.agents()}
            for offer_id in await self.store.pending_offers():
                offer = await self.store.get_offer(offer_id)
                if offer is None:
                    continue
                agent = agents.get(offer.agent_id)
                if offer.expires_at <= now or agent is None or not agent.online:
                    if await self._expire(offer, now):
                        report.expired_offers.append(offer_id)
            for agent in await self.store.agents():
                if agent.state is AgentState.WRAP_UP and agent.wrap_up_until <= now and not agent.calls:
                    await self._set_state(agent.agent_id, AgentState.AVAILABLE, now)
                    report.back_from_wrap_up.append(agent.agent_id)
                elif (not agent.online and not agent.calls
                      and agent.state in (AgentState.AVAILABLE, AgentState.BREAK, AgentState.WRAP_UP)):
                    await self._set_state(agent.agent_id, AgentState.LOGGED_OUT, now)
                    log.info("agent %s logged out: heartbeat lost", agent.agent_id)
                    report.logged_out.append(agent.agent_id)
            for record in await self.store.queued():
                if record.deadline <= now and await self.store.claim(record.request.call_uuid):
                    await self._overflow(record, "max wait", now)
            report.offered = await self._dispatch(now)
            report.overflowed = list(self._overflow_backlog)
            await self._gauge_floor(now)
        await self._flush_overflows()
        return report

    async def _gauge_floor(self, now: float) -> None:
        """Queue length and agents by state, every `METRICS_INTERVAL_S` at most."""
        if self.metrics is NO_METRICS:
            return
        if self._gauged_at is not None and now - self._gauged_at < METRICS_INTERVAL_S:
            return
        self._gauged_at = now
        by_state = dict.fromkeys(AgentState, 0)
        for agent in await self.store.agents():
            by_state[agent.state] += 1
        for state, count in by_state.items():
            self.metrics.set(AGENTS, count, state=state.value)
        self.metrics.set(QUEUE_LENGTH, await self.store.queue_length())

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every `sweep_interval_s` until `stop` is set; errors are logged and the
        loop goes on (Redis may come back)."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # keep the floor running; the next sweep retries
                self.metrics.inc(ERRORS, kind="routing_sweep")
                log.warning("routing sweep failed: %s", describe_error(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.settings.sweep_interval_s)
            except asyncio.TimeoutError:
                pass

    # ---- accept internals ----------------------------------------------------------------

    async def _caller_gone(self, call_uuid: str) -> bool:
        record = await self.store.get_escalation(call_uuid)
        return (record is not None and record.status is EscalationStatus.ENDED
                and record.ended_reason == CALLER_HUNG_UP)

    async def _connect_failed(self, offer: Offer, exc: CallControlError) -> None:
        """The switch refused: free the agent; retry the call elsewhere or end it (the
        caller's channel gone: they hung up waiting)."""
        async with self._lock:
            now = self.clock()
            await self.store.transition_offer(offer.offer_id, OfferState.FAILED, (OfferState.CONNECTING,))
            await self._release_call(offer.agent_id, offer.call_uuid, now, wrap_up=False)
            await self._emit({"type": "offer_closed", "agent_id": offer.agent_id,
                              "offer_id": offer.offer_id, "call_uuid": offer.call_uuid,
                              "state": OfferState.FAILED.value})
            record = await self.store.get_escalation(offer.call_uuid)
            if record is not None and record.status is EscalationStatus.CONNECTING:
                if exc.retryable:
                    record.attempts -= 1
                    await self._requeue(record, None, now)
                    await self._dispatch(now)
                else:
                    gone = isinstance(exc, CallGoneError)
                    record.status = EscalationStatus.ENDED
                    record.ended_reason = CALLER_HUNG_UP if gone else "connect failed"
                    await self.store.put_escalation(record, active=False,
                                                    ttl_s=self.settings.escalation_ttl_s)
                    if gone:
                        await self.store.count_outcome("abandoned", now)
            log.warning("connecting offer %s failed (retryable=%s)", offer.offer_id, exc.retryable)
        await self._flush_overflows()

    async def _own_offer(self, offer_id: str, agent_id: str) -> Offer:
        offer = await self.store.get_offer(offer_id)
        if offer is None:
            raise OfferNotFoundError(offer_id)
        if offer.agent_id != agent_id:
            raise NotYourOfferError(offer_id, agent_id)
        return offer
