"""The life of an offer inside the router: dispatching waiting calls, making offers,
no-answer expiry, withdrawal, re-queueing and overflow.

`OfferLifecycle` sits between `AgentDesk` (agents) and `SkillRouter` (the public
facade); its methods expect the router's lock to be held and write each change to
Redis as it happens, so a router restarted between two calls finds the floor as it was.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cluster.routing.agents import AgentDesk
from cluster.routing.choice import choose_agent, queue_order
from cluster.routing.errors import describe_error
from cluster.routing.models import (
    AgentState,
    EscalationRecord,
    EscalationStatus,
    Offer,
    OfferState,
    OverflowAction,
    RouteResult,
)
from cluster.routing.store import RoutingStore
from configs.routing import RoutingSettings
from telephony.metrics import ERRORS, NO_METRICS, QUEUE_WAIT, Metrics

__all__ = ["LIVE_STATUSES", "OfferLifecycle", "OverflowDecision"]

log = logging.getLogger("callfleet.routing")

#: an escalation in one of these is still being routed or is with an agent
LIVE_STATUSES = (EscalationStatus.QUEUED, EscalationStatus.OFFERED,
                 EscalationStatus.CONNECTING, EscalationStatus.CONNECTED)


@dataclass(frozen=True)
class OverflowDecision:
    """A call no agent took: the caller of the router carries out `action` (schedule a
    callback, or send the call to voicemail)."""

    call_uuid: str
    action: OverflowAction
    reason: str
    vip: bool
    campaign_id: str | None
    waited_s: float


class OfferLifecycle(AgentDesk):
    """Offers and the queue (internals of `SkillRouter`)."""

    def __init__(self, store: RoutingStore, settings: RoutingSettings,
                 clock: Callable[[], float],
                 on_overflow: Callable[[OverflowDecision], Awaitable[None]] | None,
                 metrics: Metrics = NO_METRICS):
        super().__init__(store, settings, clock)
        self.on_overflow = on_overflow
        self.metrics = metrics
        self.dispatching = True
        self._overflow_backlog: list[OverflowDecision] = []

    async def _dispatch(self, now: float) -> list[RouteResult]:
        """Offer waiting calls, in service order, to eligible agents."""
        if not self.dispatching:
            return []
        queued = queue_order(await self.store.queued())
        if not queued:
            return []
        agents = await self.store.agents()
        settings = await self._live_settings()
        offered = []
        for record in queued:
            choice = choose_agent(agents, record.request, settings, exclude=record.tried)
            if choice is None or not await self.store.claim(record.request.call_uuid):
                continue
            await self.store.set_credits(choice.credits)
            for i, agent in enumerate(agents):
                if agent.agent_id in choice.credits:
                    extra = 1 if agent.agent_id == choice.agent_id else 0
                    agents[i] = agent.model_copy(update={
                        "rr_credit": choice.credits[agent.agent_id],
                        "pending_offers": agent.pending_offers + extra})
            offered.append(await self._offer(record, choice.agent_id, now))
        return offered

    async def _offer(self, record: EscalationRecord, agent_id: str, now: float) -> RouteResult:
        offer = Offer(offer_id=uuid.uuid4().hex, call_uuid=record.request.call_uuid,
                      agent_id=agent_id, created_at=now,
                      expires_at=now + self.settings.offer_timeout_s,
                      attempt=record.attempts + 1)
        if record.attempts == 0:  # the call leaves the queue for its first offer
            self.metrics.observe(QUEUE_WAIT, max(now - record.enqueued_at, 0.0), outcome="offered")
        await self.store.put_offer(offer, self.settings.escalation_ttl_s)
        await self.store.add_agent_offer(agent_id, offer.offer_id)
        await self.store.incr_agent(agent_id, "offers")
        record.status, record.offer_id, record.agent_id = EscalationStatus.OFFERED, offer.offer_id, agent_id
        record.attempts += 1
        await self.store.put_escalation(record, active=True)
        log.info("offer %s to agent %s (attempt %d)", offer.offer_id, agent_id, offer.attempt)
        await self._emit({"type": "offer", "agent_id": agent_id, "offer": offer.brief(record.request)})
        return RouteResult(call_uuid=offer.call_uuid, status=record.status, agent_id=agent_id,
                           offer_id=offer.offer_id)

    async def _expire(self, offer: Offer, now: float) -> bool:
        """No answer in time (or the agent vanished): mark the agent, re-route the call."""
        moved, _ = await self.store.transition_offer(offer.offer_id, OfferState.EXPIRED)
        if not moved:
            return False
        await self.store.remove_agent_offer(offer.agent_id, offer.offer_id)
        await self.store.incr_agent(offer.agent_id, "no_answers")
        agent = await self.store.get_agent(offer.agent_id)
        action = AgentState(self.settings.no_answer_action)
        if (agent is not None and action is not AgentState.AVAILABLE and not agent.calls
                and agent.state is AgentState.AVAILABLE):
            await self._set_state(offer.agent_id, action, now)
            log.info("agent %s did not answer an offer: now %s", offer.agent_id, action.value)
        await self._emit({"type": "offer_closed", "agent_id": offer.agent_id,
                          "offer_id": offer.offer_id, "call_uuid": offer.call_uuid,
                          "state": OfferState.EXPIRED.value})
        record = await self.store.get_escalation(offer.call_uuid)
        if record is not None and record.offer_id == offer.offer_id:
            await self._requeue(record, offer.agent_id, now)
        return True

    async def _live_settings(self) -> RoutingSettings:
        """The settings with the routing weights a supervisor changed live."""
        weights = await self.store.weights()
        return self.settings.model_copy(update=weights) if weights else self.settings

    async def _withdraw(self, offer_id: str, now: float, requeue: bool,
                        reason: str | None = None) -> None:
        """Take back a pending offer (caller gone, agent went on break or logged out)."""
        offer = await self.store.get_offer(offer_id)
        moved, _ = await self.store.transition_offer(offer_id, OfferState.WITHDRAWN)
        if offer is None or not moved:
            return
        await self.store.remove_agent_offer(offer.agent_id, offer_id)
        event = {"type": "offer_closed", "agent_id": offer.agent_id, "offer_id": offer_id,
                 "call_uuid": offer.call_uuid, "state": OfferState.WITHDRAWN.value}
        if reason:
            event["reason"] = reason
        await self._emit(event)
        record = await self.store.get_escalation(offer.call_uuid)
        if requeue and record is not None and record.offer_id == offer_id:
            record.attempts -= 1  # not the call's fault: this offer does not count
            await self._requeue(record, None, now)

    async def _requeue(self, record: EscalationRecord, declined_by: str | None, now: float) -> None:
        if declined_by and declined_by not in record.tried:
            record.tried.append(declined_by)
        record.offer_id, record.agent_id = None, None
        if record.attempts >= self.settings.max_offers_per_call:
            await self._overflow(record, "too many offers", now)
            return
        if record.deadline <= now:
            await self._overflow(record, "max wait", now)
            return
        record.status = EscalationStatus.QUEUED
        await self.store.put_escalation(record, active=True)
        await self.store.enqueue(record.request.call_uuid, record.enqueued_at)

    async def _overflow(self, record: EscalationRecord, reason: str, now: float) -> None:
        record.status = EscalationStatus.OVERFLOW
        record.overflow = self.settings.overflow
        record.ended_reason = reason
        await self.store.put_escalation(record, active=False, ttl_s=self.settings.escalation_ttl_s)
        decision = OverflowDecision(
            call_uuid=record.request.call_uuid, action=record.overflow, reason=reason,
            vip=record.request.vip, campaign_id=record.request.campaign_id,
            waited_s=max(now - record.enqueued_at, 0.0))
        self.metrics.observe(QUEUE_WAIT, decision.waited_s, outcome="overflow")
        log.info("escalation overflow (%s): %s", reason, decision.action)
        await self.store.count_outcome("overflow", now)
        await self._emit({"type": "overflow", "agent_id": None, "call_uuid": decision.call_uuid,
                          "action": decision.action, "reason": reason, "vip": decision.vip,
                          "campaign_id": decision.campaign_id})
        self._overflow_backlog.append(decision)

    async def _flush_overflows(self) -> None:
        """Hand overflow decisions to `on_overflow` outside the lock (it may be slow)."""
        decisions, self._overflow_backlog = self._overflow_backlog, []
        if self.on_overflow is None:
            return
        for decision in decisions:
            try:
                await self.on_overflow(decision)
            except Exception as exc:
                self.metrics.inc(ERRORS, kind="overflow_action")
                log.warning("overflow handler failed: %s", describe_error(exc))

    async def _set_record(self, call_uuid: str, **changes: Any) -> EscalationRecord | None:
        record = await self.store.get_escalation(call_uuid)
        if record is None:
            return None
        if record.status is EscalationStatus.ENDED:
            return record  # the caller hung up meanwhile; keep it ended
        for name, value in changes.items():
            setattr(record, name, value)
        await self.store.put_escalation(record, active=record.status in LIVE_STATUSES)
        return record

    async def _result(self, record: EscalationRecord) -> RouteResult:
        position = None
        if record.status is EscalationStatus.QUEUED:
            order = [r.request.call_uuid for r in queue_order(await self.store.queued())]
            if record.request.call_uuid in order:
                position = order.index(record.request.call_uuid) + 1
        return RouteResult(call_uuid=record.request.call_uuid, status=record.status,
                           agent_id=record.agent_id, offer_id=record.offer_id,
                           queue_position=position, overflow=record.overflow)
