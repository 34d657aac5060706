"""The dialer: every tick, for each running campaign, ask the pacer how many to dial, take
that many leads in priority order that are inside their calling window, claim each one in
Redis (which also checks the do-not-call sets) and originate it through `CallControl`.
An answered call gets a free bot slot within the connect limit or the recorded
information message; every attempt becomes a compliance record.

Plain asyncio, no Ray: the actor in `actor.py` only hosts it. All durable state is in
the `DialerStore`; what this object holds in memory (calls ringing and connected, the
statistics) is rebuilt from Redis when a restarted dialer starts. Only one dialer should
run against one Redis (the named actor guarantees it): on start it records every attempt
left in flight by its predecessor as interrupted, never dialling it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import ValidationError

from cluster.dialer.ab import settle_ab_test
from cluster.dialer.campaign import CampaignConfig, CampaignState
from cluster.dialer.compliance import (
    INTERRUPTED_CAUSE,
    AttemptRecord,
    Outcome,
    answer_action,
    classify,
    next_window_open,
    retry_after,
    window_facts,
)
from cluster.dialer.leads import Lead
from cluster.dialer.metrics import CampaignMeter
from cluster.dialer.pacing import CallStatistics, PacingDecision, PacingSnapshot, plan_dials
from cluster.dialer.store import CampaignNotFound, DialerStore
from cluster.records.conversations import RedisConversionCounter
from configs.dialer import DialerSettings
from telephony.call_control import CallControl, CallControlError, OriginateRequest
from telephony.metrics import ERRORS, NO_METRICS, Metrics

__all__ = ["AnswerHandler", "CapacityProbe", "Dialer"]

log = logging.getLogger("callfleet.dialer")

AB_CHECK_S = 30.0  # how often a running campaign's A/B test is looked at
_MEASURED = {Outcome.CONNECTED, Outcome.ABANDONED, Outcome.BUSY, Outcome.NO_ANSWER}


class CapacityProbe(Protocol):
    """What the floor can take now. `free_bot_slots` must count a slot as taken as soon
    as `AnswerHandler.connect` has returned for a call (the dialer asks again right
    after connecting). `free_agents` is None when no human agents take escalations."""

    async def free_bot_slots(self) -> int: ...

    async def free_agents(self) -> int | None: ...


class AnswerHandler(Protocol):
    """What happens to a live-answered call (implemented over the ESL controller)."""

    async def connect(self, call_uuid: str, lead: Lead, campaign: CampaignConfig) -> None:
        """Hand the call to the campaign's bot (start the media fork)."""
        ...

    async def play_info_message(self, call_uuid: str, campaign: CampaignConfig) -> None:
        """Play `campaign.compliance.info_message`, then hang up."""
        ...


@dataclass
class _Live:
    """In-memory view of one campaign (a cache of Redis, rebuilt after a restart)."""

    config: CampaignConfig
    stats: CallStatistics
    ringing: dict[str, float] = field(default_factory=dict)  # uuid -> monotonic dial time
    connected: dict[str, tuple[str, float]] = field(default_factory=dict)  # uuid -> (attempt, at)
    decision: PacingDecision | None = None
    ab_variant: str | None = None  # the A/B test's winner further calls go to (cluster.dialer.ab)
    ab_checked_at: float = 0.0


class Dialer:
    """Runs every running campaign in the store against one switch. `metrics` gets each
    campaign's pacing ratio and abandonment (`CampaignMeter`) and the dialer's errors."""

    def __init__(self, store: DialerStore, call_control: CallControl, capacity: CapacityProbe,
                 answers: AnswerHandler, settings: DialerSettings | None = None,
                 clock: Callable[[], float] = time.time, metrics: Metrics = NO_METRICS):
        self.store = store
        self.call_control = call_control
        self.capacity = capacity
        self.answers = answers
        self.settings = settings or DialerSettings()
        self.clock = clock
        self.metrics = metrics
        self.meter = CampaignMeter(store, metrics)
        self._live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task] = set()
        self._slot_lock = asyncio.Lock()
        self._ab_counter: RedisConversionCounter | None = None

    # -- the loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the next one tries again."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:
                self.metrics.inc(ERRORS, kind="dialer_tick")
                log.exception("dialer tick failed; retrying next tick")
            wait = max(0.0, self.settings.tick_s - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> dict[str, PacingDecision]:
        """One pacing round over all running campaigns; returns each one's decision."""
        running: list[_Live] = []
        for campaign_id in await self.store.campaign_ids():
            try:
                config, state = await self.store.get_campaign(campaign_id)
                live = self._live.get(campaign_id)
                if live is None:
                    live = self._live[campaign_id] = await self._recover(config)
            except (CampaignNotFound, ValidationError) as exc:  # one bad campaign: skip it
                log.error("campaign %s skipped: %s", campaign_id, exc)
                continue
            live.config = config
            if state is CampaignState.RUNNING:
                running.append(live)
        if not running:
            return {}
        free = max(0, await self.capacity.free_bot_slots())
        agents = await self.capacity.free_agents()
        decisions = {}
        for index, live in enumerate(running):
            share = _share(free, len(running), index)
            agent_share = None if agents is None else _share(max(0, agents), len(running), index)
            decisions[live.config.id] = await self._tick_campaign(live, share, agent_share)
        return decisions

    async def close(self, timeout: float = 30.0) -> None:
        """Wait for calls being placed to reach an outcome (so they get recorded)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    # -- events from the switch ----------------------------------------------------------
    async def call_ended(self, call_uuid: str, cause: str = "NORMAL_CLEARING",
                         escalated: bool = False) -> bool:
        """A connected call hung up: frees its slot in the pacing model and completes its
        record with the call length. Idempotent; False for calls this dialer never
        connected (or already ended)."""
        for campaign_id, live in self._live.items():
            if call_uuid in live.connected:
                attempt_id, connected_at = live.connected.pop(call_uuid)
                handle_s = max(0.0, self.clock() - connected_at)
                live.stats.call_finished(handle_s, escalated)
                return await self.store.record_call_end(
                    campaign_id, call_uuid, attempt_id,
                    {"handle_s": round(handle_s, 3), "cause": cause, "escalated": escalated,
                     "ended_at": self.clock()}, live.stats)
        return False

    # -- internals ---------------------------------------------------------------------
    async def _recover(self, config: CampaignConfig) -> _Live:
        """Load a campaign's checkpoint; attempts a predecessor left in flight are
        recorded as interrupted (and, by default, never redialled)."""
        live = _Live(config=config, stats=await self.store.load_stats(config.id))
        now = self.clock()
        for call_uuid, doc in (await self.store.connected_calls(config.id)).items():
            live.connected[call_uuid] = (doc["attempt_id"], float(doc["connected_at"]))
        for call_uuid, doc in (await self.store.inflight(config.id)).items():
            record = AttemptRecord(
                campaign_id=config.id, attempt_id=f"{doc['lead_id']}#{doc['attempt']}",
                lead_id=doc["lead_id"], attempt=int(doc["attempt"]), call_uuid=call_uuid,
                started_at=float(doc["started_at"]), ended_at=now, result=Outcome.INTERRUPTED,
                cause=INTERRUPTED_CAUSE, answered=False, abandoned=False)
            await self._finish(live, record, now)
            log.warning("campaign %s: attempt %s was in flight when the dialer stopped; "
                        "recorded as interrupted", config.id, record.attempt_id)
        return live

    async def _tick_campaign(self, live: _Live, free: int, agents: int | None) -> PacingDecision:
        config, now = live.config, self.clock()
        now_dt = datetime.fromtimestamp(now, timezone.utc)
        self._forget_stale(live, now)
        if not config.schedule.open_at(now_dt):
            decision = PacingDecision(0, config.pacing.mode, "outside the campaign schedule")
            await self.meter.report(config, free, len(live.ringing), now)
            await self._heartbeat(live, decision, now)
            return decision
        await self.store.promote_due(config.id, now)
        await self._settle_ab(live, now)
        budget = await self.store.abandonment(config.id, now, config.compliance.window_days)
        mono = time.monotonic()
        snapshot = PacingSnapshot(
            free_slots=free,
            busy_elapsed_s=[now - at for _, at in live.connected.values()],
            ringing_elapsed_s=[mono - t for t in live.ringing.values()],
            free_agents=agents)
        decision = plan_dials(config.pacing, config.compliance, snapshot, live.stats, budget)
        placed = await self._dial(live, decision.dials, now, now_dt) if decision.dials else 0
        if placed == 0 and not live.ringing and await self.store.pending_work(config.id) == 0:
            await self.store.transition(config.id, "complete")
            log.info("campaign %s: every lead finished", config.id)
        live.decision = decision
        await self.meter.report(config, free, len(snapshot.ringing_elapsed_s) + placed, now)
        await self._heartbeat(live, decision, now, placed)
        return decision

    async def _dial(self, live: _Live, wanted: int, now: float, now_dt: datetime) -> int:
        config = live.config
        placed = 0
        candidates = await self.store.ready_leads(config.id, wanted * 2 + 10)
        for lead_id in candidates:
            if placed >= wanted:
                break
            lead = await self.store.get_lead(config.id, lead_id)
            if lead is None:
                continue
            if not config.compliance.in_calling_window(now_dt, lead.timezone):
                opens = next_window_open(now_dt, lead.timezone, config.compliance)
                await self.store.defer(config.id, lead_id, opens.timestamp(),
                                       window_facts(now_dt, lead.timezone, config.compliance))
                continue
            call_uuid = str(uuid.uuid4())
            verdict, attempt = await self.store.claim(config, lead_id, call_uuid, now)
            if verdict != "ok":
                log.info("campaign %s: lead %s not dialled (%s)", config.id, lead_id, verdict)
                continue
            live.ringing[call_uuid] = time.monotonic()
            task = asyncio.create_task(self._place(live, lead, attempt, call_uuid, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            placed += 1
        return placed

    async def _place(self, live: _Live, lead: Lead, attempt: int, call_uuid: str,
                     started_at: float) -> None:
        config = live.config
        request = OriginateRequest(
            call_uuid=call_uuid, destination=lead.phone, gateways=config.gateways,
            caller_id_number=config.caller_id_number, caller_id_name=config.caller_id_name,
            ring_timeout_s=config.compliance.ring_timeout_s,
            variables={**config.variables, "callfleet_campaign": config.id,
                       "callfleet_lead": lead.id, "callfleet_bot": config.bot_script,
                       **({"callfleet_variant": live.ab_variant} if live.ab_variant else {})})
        t0 = time.monotonic()
        answered, cause, gateway = False, "ORIGINATE_ERROR", None
        try:
            result = await self.call_control.originate(request)
            answered, cause, gateway = result.answered, result.cause, result.gateway
        except CallControlError as exc:
            self.metrics.inc(ERRORS, kind="dial")
            log.warning("campaign %s: originate of attempt %s#%s failed: %s",
                        config.id, lead.id, attempt, exc)
        except Exception:
            self.metrics.inc(ERRORS, kind="dial")
            log.exception("campaign %s: originate of attempt %s#%s crashed",
                          config.id, lead.id, attempt)
        ring_s = time.monotonic() - t0
        live.ringing.pop(call_uuid, None)
        abandoned = False
        if answered:
            abandoned = not await self._hand_over(live, lead, call_uuid)
        now = self.clock()
        record = AttemptRecord(
            campaign_id=config.id, attempt_id=f"{lead.id}#{attempt}", lead_id=lead.id,
            attempt=attempt, call_uuid=call_uuid, started_at=started_at, ended_at=now,
            result=classify(answered, cause, abandoned), cause="SUCCESS" if answered else cause,
            answered=answered, abandoned=abandoned, ring_s=round(ring_s, 3), gateway=gateway,
            timezone=lead.timezone)
        if record.result in _MEASURED:
            live.stats.dial_resolved(answered, ring_s if answered else None)
        if record.result is Outcome.CONNECTED:
            live.connected[call_uuid] = (record.attempt_id, now)
        await self._finish(live, record, now)

    async def _hand_over(self, live: _Live, lead: Lead, call_uuid: str) -> bool:
        """Connect an answered call to a bot within the connect limit, else play the
        information message. True when connected."""
        config = live.config
        deadline = time.monotonic() + config.compliance.connect_limit_s
        while True:
            async with self._slot_lock:  # one decision at a time: no slot given twice
                if await self.capacity.free_bot_slots() > 0:
                    try:
                        await self.answers.connect(call_uuid, lead, config)
                        return True
                    except Exception:
                        self.metrics.inc(ERRORS, kind="answer_connect")
                        log.exception("campaign %s: connecting an answered call failed; "
                                      "playing the information message", config.id)
                        break
            if time.monotonic() + self.settings.answer_poll_s > deadline:
                break
            await asyncio.sleep(self.settings.answer_poll_s)
        action = answer_action(config, slot_free=False)
        try:
            await self.answers.play_info_message(call_uuid, config)
        except Exception:
            self.metrics.inc(ERRORS, kind="info_message")
            log.exception("campaign %s: playing %s failed", config.id, action.message)
        return False

    async def _finish(self, live: _Live, record: AttemptRecord, now: float) -> None:
        delay = retry_after(record.result, record.attempt, live.config.retry)
        if delay is not None:
            status, next_at = "pending", now + delay
        elif record.result in (Outcome.CONNECTED, Outcome.ABANDONED):
            status, next_at = "done", None
        elif record.result in (Outcome.INVALID, Outcome.INTERRUPTED):
            status, next_at = record.result.value, None
        else:
            status, next_at = "exhausted", None
        await self.store.record_result(record, status, next_at, live.stats,
                                       live.config.compliance)

    async def _settle_ab(self, live: _Live, now: float) -> None:
        """Every `AB_CHECK_S`: whether the campaign's A/B test is settled, and on which
        variant further calls go (`cluster.dialer.ab.settle_ab_test`)."""
        if now - live.ab_checked_at < AB_CHECK_S:
            return
        live.ab_checked_at = now
        if self._ab_counter is None:
            self._ab_counter = RedisConversionCounter(self.store.redis)
        try:
            variant = await settle_ab_test(self._ab_counter, live.config.id, live.config.ab_test)
        except Exception:
            log.exception("campaign %s: A/B check failed; the test goes on", live.config.id)
            return
        if variant and variant != live.ab_variant:
            log.info("campaign %s: A/B test settled, further calls go to variant %s",
                     live.config.id, variant)
        live.ab_variant = variant

    def _forget_stale(self, live: _Live, now: float) -> None:
        for call_uuid, (_, at) in list(live.connected.items()):
            if now - at > self.settings.max_call_s:
                live.connected.pop(call_uuid)

    async def _heartbeat(self, live: _Live, decision: PacingDecision, now: float,
                         placed: int = 0) -> None:
        doc: dict[str, Any] = {
            "at": now, "ringing": len(live.ringing), "connected": len(live.connected),
            "last_dials": placed, "reason": decision.reason,
            "answer_rate": round(decision.answer_rate, 3),
        }
        await self.store.heartbeat(live.config.id, doc, self.settings.heartbeat_ttl_s)


def _share(total: int, parts: int, index: int) -> int:
    """Split `total` slots as evenly as possible; the first ones get the remainder."""
    return total // parts + (1 if index < total % parts else 0)
