"""Everything the dialer keeps, in Redis: campaigns and their lifecycle, leads and their
state, claims of dial attempts, compliance records, abandonment counters, do-not-call
sets, the pacing statistics checkpoint, and request ids for idempotent calls.

Every state change is one atomic step (a Lua script in `scripts.py` or a WATCH/MULTI
transaction), so the dialer actor holds nothing that a restart could lose: a lead is
claimed in Redis before it is dialled, and a claimed attempt is never claimed again.

Keys (``<c>`` = ``cf:dialer:c:<campaign id>``): ``cf:dialer:campaigns`` set;
``<c>`` hash (config, state); ``<c>:leads`` / ``<c>:phones`` / ``<c>:lstate`` hashes;
``<c>:ready`` / ``<c>:later`` sorted sets; ``<c>:claims`` / ``<c>:inflight`` /
``<c>:results`` / ``<c>:connected`` / ``<c>:ended`` hashes; ``<c>:records`` stream;
``<c>:daily`` hash of per-UTC-day answered/abandoned counts; ``<c>:counts`` hash;
``<c>:stats`` checkpoint; ``<c>:dnc`` and the global ``cf:dialer:dnc`` sets;
``<c>:heartbeat`` (the actor's last tick, expiring).

The compliance ledger is mirrored to the durable SQL store: each attempt record, each
connected call's end, each calling-window deferral and each do-not-call change also adds
an event to the records outbox (``cf:outbox``, `cluster.records.outbox`) inside the same
script, so the SQL copy misses nothing Redis holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from cluster.dialer import scripts
from cluster.dialer.campaign import (
    CampaignConfig,
    CampaignState,
    ComplianceConfig,
    InvalidTransition,
    next_state,
)
from cluster.dialer.compliance import AttemptRecord, window_facts
from cluster.dialer.leads import ConversionScorer, Lead, priority_score
from cluster.dialer.pacing import AbandonmentBudget, CallStatistics
from cluster.records.outbox import OUTBOX, event_id, outbox_event

__all__ = ["CampaignExists", "CampaignNotFound", "DialerStore", "RequestInProgress"]

log = logging.getLogger("callfleet.dialer.store")

PREFIX = "cf:dialer"
REQUEST_TTL_S = 7 * 86_400
T = TypeVar("T")


class CampaignNotFound(KeyError):
    def __init__(self, campaign_id: str):
        super().__init__(campaign_id)
        self.campaign_id = campaign_id

    def __str__(self) -> str:
        return f"no campaign {self.campaign_id!r}; create it first (callfleet campaign create)"


class CampaignExists(ValueError):
    """A create with an id that already holds a different campaign."""


class RequestInProgress(RuntimeError):
    """The same request id is being processed right now; retry later."""


class _Keys:
    def __init__(self, campaign_id: str):
        self.base = f"{PREFIX}:c:{campaign_id}"

    def __getattr__(self, name: str) -> str:
        return f"{self.base}:{name}"


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


class DialerStore:
    """Async access to the dialer's Redis state. One instance per process/event loop."""

    def __init__(self, url: str):
        self.redis = aioredis.from_url(url, decode_responses=True, socket_timeout=5,
                                       socket_connect_timeout=5)
        self._add_leads = self.redis.register_script(scripts.ADD_LEADS)
        self._claim = self.redis.register_script(scripts.CLAIM)
        self._record = self.redis.register_script(scripts.RECORD_RESULT)
        self._ended = self.redis.register_script(scripts.CALL_ENDED)
        self._promote = self.redis.register_script(scripts.PROMOTE_DUE)
        self._defer = self.redis.register_script(scripts.DEFER)
        self._create = self.redis.register_script(scripts.CREATE_CAMPAIGN)
        self._set_priority = self.redis.register_script(scripts.SET_PRIORITY)
        self._dnc_change = self.redis.register_script(scripts.DNC_CHANGE)
        self._add_callback = self.redis.register_script(scripts.ADD_CALLBACK)

    async def close(self) -> None:
        await self.redis.aclose()

    # -- idempotent requests ---------------------------------------------------------
    async def once(self, scope: str, request_id: str | None,
                   action: Callable[[], Awaitable[T]], encode: Callable[[T], Any] = lambda x: x,
                   ) -> Any:
        """Run `action` once per request id: a repeat returns the first call's (JSON)
        result instead of acting again. Without a request id the action just runs."""
        if not request_id:
            return encode(await action())
        key = f"{PREFIX}:req:{scope}:{request_id}"
        if not await self.redis.set(key, "pending", nx=True, ex=REQUEST_TTL_S):
            stored = await self.redis.get(key)
            if stored in (None, "pending"):
                raise RequestInProgress(f"request {request_id!r} is still being processed")
            return json.loads(stored)
        try:
            result = encode(await action())
        except BaseException:
            await self.redis.delete(key)
            raise
        await self.redis.set(key, json.dumps(result), ex=REQUEST_TTL_S)
        return result

    # -- campaigns -------------------------------------------------------------------
    async def create_campaign(self, config: CampaignConfig, now: float | None = None) -> bool:
        """Create it; True if new, False if the identical campaign already exists.
        Raises CampaignExists when the id holds a different configuration."""
        verdict = await self._create(
            keys=[_Keys(config.id).base, f"{PREFIX}:campaigns"],
            args=[config.id, config.model_dump_json(), now or time.time()])
        if verdict == "exists":
            raise CampaignExists(f"campaign {config.id!r} already exists with another "
                                 "configuration; use update to change it")
        return verdict == "created"

    async def update_campaign(self, config: CampaignConfig) -> None:
        """Replace the configuration (pacing, schedule, ...); the dialer uses it from its
        next tick. Allowed in every state but stopped."""
        key = _Keys(config.id).base
        async with self.redis.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    state = await pipe.hget(key, "state")
                    if state is None:
                        raise CampaignNotFound(config.id)
                    if state == CampaignState.STOPPED.value:
                        raise InvalidTransition(f"campaign {config.id!r} is stopped; create a new one")
                    pipe.multi()
                    pipe.hset(key, mapping={"config": config.model_dump_json(),
                                            "updated_at": time.time()})
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def campaign_ids(self) -> list[str]:
        return sorted(await self.redis.smembers(f"{PREFIX}:campaigns"))

    async def get_campaign(self, campaign_id: str) -> tuple[CampaignConfig, CampaignState]:
        doc = await self.redis.hgetall(_Keys(campaign_id).base)
        if not doc:
            raise CampaignNotFound(campaign_id)
        return CampaignConfig.model_validate_json(doc["config"]), CampaignState(doc["state"])

    async def transition(self, campaign_id: str, action: str) -> CampaignState:
        """Apply start/pause/resume/stop/complete atomically; repeating one is a no-op.
        Raises InvalidTransition or CampaignNotFound."""
        key = _Keys(campaign_id).base
        async with self.redis.pipeline() as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = await pipe.hget(key, "state")
                    if current is None:
                        raise CampaignNotFound(campaign_id)
                    new = next_state(CampaignState(current), action)
                    pipe.multi()
                    if new.value != current:
                        pipe.hset(key, mapping={"state": new.value, "updated_at": time.time()})
                    await pipe.execute()
                    if new.value != current:
                        log.info("campaign %s: %s -> %s", campaign_id, current, new.value)
                    return new
                except WatchError:
                    continue

    # -- leads -----------------------------------------------------------------------
    async def known_phones(self, campaign_id: str) -> set[str]:
        return set(await self.redis.hkeys(_Keys(campaign_id).phones))

    async def add_leads(self, campaign_id: str, leads: list[Lead],
                        scorer: ConversionScorer | None = None) -> tuple[int, list[str]]:
        """Add leads (already de-duplicated by the import). Returns (added, lead ids
        refused because their id belongs to another number in this campaign)."""
        config, _ = await self.get_campaign(campaign_id)
        keys = _Keys(campaign_id)
        added, clashes = 0, []
        for start in range(0, len(leads), 500):
            chunk = leads[start:start + 500]
            # a conversion model is a blocking call: keep it off the event loop
            chances = (await asyncio.to_thread(lambda c=chunk: [scorer(lead) for lead in c])
                       if scorer else [None] * len(chunk))
            batch = [[lead.id, lead.phone, lead.model_dump_json(),
                      priority_score(lead, config.tier_priority, chance)]
                     for lead, chance in zip(chunk, chances, strict=True)]
            n, refused = await self._add_leads(
                keys=[keys.leads, keys.phones, keys.lstate, keys.ready, keys.counts],
                args=[json.dumps(batch)])
            added += int(n)
            decoded = json.loads(refused)
            clashes.extend(decoded if isinstance(decoded, list) else [])
        return added, clashes

    async def rescore(self, campaign_id: str, scorer: ConversionScorer) -> int:
        """Re-order the campaign's unfinished leads with a (new) conversion model.
        Returns how many leads got a new priority."""
        config, _ = await self.get_campaign(campaign_id)
        keys = _Keys(campaign_id)
        changed, cursor = 0, 0
        while True:
            cursor, raw = await self.redis.hscan(keys.leads, cursor, count=500)
            leads = [Lead.model_validate_json(doc) for doc in raw.values()]
            if leads:
                chances = await asyncio.to_thread(lambda c=leads: [scorer(lead) for lead in c])
                batch = [[lead.id, priority_score(lead, config.tier_priority, chance)]
                         for lead, chance in zip(leads, chances, strict=True)]
                changed += int(await self._set_priority(keys=[keys.lstate, keys.ready],
                                                        args=[json.dumps(batch)]))
            if cursor == 0:
                return changed

    async def add_callback(self, campaign_id: str, lead: Lead, due_at: float, prio: float,
                           event: str = "") -> bool:
        """Add a callback lead (`cluster.dialer.callbacks`): dialled from `due_at` on,
        ahead of leads with a higher `prio`. False when that lead id exists already."""
        keys = _Keys(campaign_id)
        return bool(await self._add_callback(
            keys=[keys.leads, keys.lstate, keys.later, keys.counts, OUTBOX],
            args=[lead.id, lead.model_dump_json(), due_at, prio, event]))

    async def get_lead(self, campaign_id: str, lead_id: str) -> Lead | None:
        raw = await self.redis.hget(_Keys(campaign_id).leads, lead_id)
        return Lead.model_validate_json(raw) if raw else None

    async def lead_state(self, campaign_id: str, lead_id: str) -> dict[str, Any]:
        raw = await self.redis.hget(_Keys(campaign_id).lstate, lead_id)
        return json.loads(raw) if raw else {}

    async def ready_leads(self, campaign_id: str, count: int) -> list[str]:
        """The next `count` dialable lead ids, best first."""
        return await self.redis.zrange(_Keys(campaign_id).ready, 0, max(0, count - 1))

    async def promote_due(self, campaign_id: str, now: float, limit: int = 1000) -> int:
        keys = _Keys(campaign_id)
        return int(await self._promote(keys=[keys.later, keys.ready, keys.lstate], args=[now, limit]))

    async def defer(self, campaign_id: str, lead_id: str, until: float,
                    window: dict[str, Any] | None = None) -> bool:
        """Move a lead outside its calling window to the later set until `until`; the
        decision (with `window`, `compliance.window_facts`) goes to the ledger."""
        keys = _Keys(campaign_id)
        event = outbox_event("window.decision", id=event_id(), campaign_id=campaign_id,
                             lead_id=lead_id, verdict="deferred", next_open_at=until,
                             **(window or {}))
        return bool(await self._defer(keys=[keys.ready, keys.later, keys.lstate, OUTBOX],
                                      args=[lead_id, until, event]))

    async def pending_work(self, campaign_id: str) -> int:
        """Leads waiting to be dialled plus attempts in flight (0 = campaign finished)."""
        keys = _Keys(campaign_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.ready).zcard(keys.later).hlen(keys.inflight)
            return sum(await pipe.execute())

    # -- attempts --------------------------------------------------------------------
    async def claim(self, config: CampaignConfig, lead_id: str, call_uuid: str,
                    now: float) -> tuple[str, int]:
        """Claim the next attempt of a lead right before dialling it; checks the
        do-not-call sets in the same atomic step. Returns (verdict, attempt number)."""
        keys = _Keys(config.id)
        verdict, attempt = await self._claim(
            keys=[keys.ready, keys.lstate, keys.claims, keys.inflight, keys.leads, keys.dnc,
                  f"{PREFIX}:dnc", keys.counts],
            args=[lead_id, call_uuid, now, "1" if config.compliance.use_global_dnc else "0",
                  config.retry.max_attempts])
        return verdict, int(attempt)

    async def inflight(self, campaign_id: str) -> dict[str, dict[str, Any]]:
        """Claimed attempts without a result: call uuid -> {lead_id, attempt, started_at}."""
        raw = await self.redis.hgetall(_Keys(campaign_id).inflight)
        return {uuid: json.loads(doc) for uuid, doc in raw.items()}

    async def record_result(self, record: AttemptRecord, status: str, next_at: float | None,
                            stats: CallStatistics | None,
                            compliance: ComplianceConfig | None = None) -> bool:
        """Write an attempt's compliance record, lead state, abandonment counters and the
        statistics checkpoint in one step. False when this attempt was already recorded.
        With `compliance` and the record's time zone, the ledger's copy also says where
        the dial stood in the lead's calling window."""
        keys = _Keys(record.campaign_id)
        window = None
        if compliance is not None and record.timezone:
            dialled = datetime.fromtimestamp(record.started_at, timezone.utc)
            window = window_facts(dialled, record.timezone, compliance)
        event = outbox_event("dial.attempt", at=record.ended_at,
                             record=record.model_dump(mode="json"), window=window)
        connected = ""
        if record.result.value == "connected":
            connected = json.dumps({"attempt_id": record.attempt_id, "lead_id": record.lead_id,
                                    "connected_at": record.ended_at})
        done = await self._record(
            keys=[keys.results, keys.inflight, keys.lstate, keys.later, keys.records, keys.daily,
                  keys.counts, keys.stats, keys.connected, OUTBOX],
            args=[record.attempt_id, record.call_uuid, record.lead_id, record.model_dump_json(),
                  status, "" if next_at is None else next_at, utc_day(record.ended_at),
                  int(record.answered), int(record.abandoned),
                  json.dumps(stats.to_dict()) if stats else "", record.result.value, connected,
                  event])
        return bool(done)

    async def connected_calls(self, campaign_id: str) -> dict[str, dict[str, Any]]:
        raw = await self.redis.hgetall(_Keys(campaign_id).connected)
        return {uuid: json.loads(doc) for uuid, doc in raw.items()}

    async def record_call_end(self, campaign_id: str, call_uuid: str, attempt_id: str,
                              end: dict[str, Any], stats: CallStatistics | None) -> bool:
        keys = _Keys(campaign_id)
        event = outbox_event("dial.call_end", at=end.get("ended_at"), campaign_id=campaign_id,
                             call_uuid=call_uuid, attempt_id=attempt_id, end=end)
        return bool(await self._ended(
            keys=[keys.ended, keys.connected, keys.stats, OUTBOX],
            args=[attempt_id, call_uuid, json.dumps(end),
                  json.dumps(stats.to_dict()) if stats else "", event]))

    async def load_stats(self, campaign_id: str) -> CallStatistics:
        raw = await self.redis.get(_Keys(campaign_id).stats)
        return CallStatistics.from_dict(json.loads(raw)) if raw else CallStatistics()

    async def abandonment(self, campaign_id: str, now: float, days: int) -> AbandonmentBudget:
        """Live-answered and abandoned calls over the last `days` UTC days (today included)."""
        today = datetime.fromtimestamp(now, timezone.utc).date()
        day_names = [(today - timedelta(days=i)).isoformat() for i in range(days)]
        fields = [f"{d}|{kind}" for d in day_names for kind in ("answered", "abandoned")]
        values = await self.redis.hmget(_Keys(campaign_id).daily, fields)
        numbers = [int(v or 0) for v in values]
        return AbandonmentBudget(answered=sum(numbers[0::2]), abandoned=sum(numbers[1::2]))

    async def counts(self, campaign_id: str) -> dict[str, int]:
        return {k: int(v) for k, v in (await self.redis.hgetall(_Keys(campaign_id).counts)).items()}

    # -- compliance records ------------------------------------------------------------
    async def records(self, campaign_id: str, since: float | None = None,
                      until: float | None = None, limit: int = 10_000) -> list[AttemptRecord]:
        """Attempts whose outcome was known in [since, until] (unix s), oldest first, with
        the call's length and final cause filled in once it has ended."""
        keys = _Keys(campaign_id)
        start = "-" if since is None else str(max(0, int(since * 1000)))
        end = "+" if until is None else str(max(0, int(until * 1000)))
        entries = await self.redis.xrange(keys.records, start, end, count=limit)
        records = [AttemptRecord.model_validate_json(fields["data"]) for _, fields in entries]
        if records:
            ends = await self.redis.hmget(keys.ended, [r.attempt_id for r in records])
            for record, raw in zip(records, ends, strict=True):
                if raw:
                    end_doc = json.loads(raw)
                    record.handle_s = end_doc.get("handle_s")
                    record.hangup_cause = end_doc.get("cause")
                    record.escalated = end_doc.get("escalated")
        return records

    # -- do-not-call -----------------------------------------------------------------
    async def add_dnc(self, phones: list[str], campaign_id: str | None = None, *,
                      actor: str = "unknown", reason: str = "", source: str = "",
                      call_uuid: str | None = None) -> int:
        """Add E.164 numbers to a campaign's (or the global) do-not-call set; effective
        from the next claim, i.e. before the next dial. Each number newly listed goes to
        the ledger with who (`actor`), when, why (`reason`) and through what (`source`:
        api, cli, bot)."""
        return await self._change_dnc("add", phones, campaign_id, actor, reason, source,
                                      call_uuid)

    async def remove_dnc(self, phones: list[str], campaign_id: str | None = None, *,
                         actor: str = "unknown", reason: str = "", source: str = "") -> int:
        return await self._change_dnc("remove", phones, campaign_id, actor, reason, source, None)

    async def _change_dnc(self, op: str, phones: list[str], campaign_id: str | None,
                          actor: str, reason: str, source: str, call_uuid: str | None) -> int:
        if not phones:
            return 0
        key = _Keys(campaign_id).dnc if campaign_id else f"{PREFIX}:dnc"
        # the script fills in the numbers it actually changed (`phones`)
        event = outbox_event("dnc.change", id=event_id(), op=op,
                             scope=campaign_id or "global", actor=actor, reason=reason,
                             source=source, call_uuid=call_uuid)
        return int(await self._dnc_change(keys=[key, OUTBOX], args=[op, event, *phones]))

    async def is_dnc(self, phone: str, campaign_id: str | None = None) -> bool:
        if await self.redis.sismember(f"{PREFIX}:dnc", phone):
            return True
        return bool(campaign_id and await self.redis.sismember(_Keys(campaign_id).dnc, phone))

    # -- heartbeat -------------------------------------------------------------------
    async def heartbeat(self, campaign_id: str, doc: dict[str, Any], ttl_s: int = 30) -> None:
        await self.redis.set(_Keys(campaign_id).heartbeat, json.dumps(doc), ex=ttl_s)

    async def status(self, campaign_id: str, now: float | None = None) -> dict[str, Any]:
        """Everything `campaign status` shows, as plain JSON-able data."""
        now = now or time.time()
        config, state = await self.get_campaign(campaign_id)
        keys = _Keys(campaign_id)
        budget = await self.abandonment(campaign_id, now, config.compliance.window_days)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.ready).zcard(keys.later).hlen(keys.inflight).hlen(keys.connected)
            pipe.get(keys.heartbeat).hgetall(keys.counts)
            ready, later, inflight, connected, beat, counts = await pipe.execute()
        return {
            "id": campaign_id, "name": config.name, "state": state.value,
            "pacing_mode": config.pacing.mode,
            "leads": {"ready": ready, "waiting_retry_or_window": later, "dialing": inflight,
                      "connected_now": connected},
            "counts": {k: int(v) for k, v in counts.items()},
            "abandonment": {"window_days": config.compliance.window_days,
                            "answered": budget.answered, "abandoned": budget.abandoned,
                            "rate": round(budget.rate, 4), "cap": config.compliance.abandon_cap},
            "dialer": json.loads(beat) if beat else None,
        }
