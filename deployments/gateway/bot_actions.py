"""What the gateway does with a bot's side effects, turn by turn (the `ActionSink` of
`telephony.call_session`): do-not-call at once, tickets as outbox events (the record
writer creates them in SQL, idempotently by the id the event carries), callbacks into Redis,
webhook messages out, A/B conversions counted. A transfer is not handled here: it ends
the bot's part of the call and goes to FreeSWITCH (and so to the skill router) through
the fork, see deployments/gateway/media_ws.py.

A failing action is logged (without personal data) and the call goes on.
"""

import json
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from bots.script.turns import Callback, DoNotCall, Outcome, Ticket, WebhookMessage, action_to_dict
from cluster.dialer.store import DialerStore
from cluster.records.conversations import RedisConversionCounter
from cluster.records.outbox import OutboxPublisher, outbox_event
from cluster.records.webhooks import WebhookSender

log = logging.getLogger("callfleet.actions")

CALLBACKS = "cf:callbacks"


class FloorActions:
    def __init__(self, redis_url: str, webhooks: WebhookSender | None = None):
        self.redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.dialer = DialerStore(redis_url)
        self.conversions = RedisConversionCounter(self.redis)
        self.outbox = OutboxPublisher(self.redis)
        self.webhooks = webhooks

    async def aclose(self) -> None:
        """Close both Redis clients (the floor's and the dialer store's); the webhook
        sender is not ours to close."""
        try:
            await self.redis.aclose()
        finally:
            await self.dialer.close()

    async def started(self, meta, state) -> None:
        if meta.campaign and state.variant:
            await self._safe(self.conversions.record_call(meta.campaign, state.variant,
                                                          meta.call_uuid), "A/B count")

    async def carry_out(self, meta, state, actions) -> None:
        for action in actions:
            await self._safe(self._one(meta, state, action), type(action).__name__)

    async def _one(self, meta, state, action) -> None:
        extra = meta.extra or {}
        if isinstance(action, DoNotCall):
            phone = await self._phone(meta)
            if phone:
                await self.dialer.add_dnc(  # a person's wish: every campaign
                    [phone], actor="caller", reason="caller asked during the call",
                    source="bot", call_uuid=meta.call_uuid)
                log.info("do-not-call request applied (call %s)", meta.call_uuid)
        elif isinstance(action, Ticket):
            await self.outbox.publish(await self._ticket_event(meta, state, action))
        elif isinstance(action, Callback):
            doc = {**action_to_dict(action), "call_uuid": meta.call_uuid,
                   "campaign": meta.campaign, "lead": extra.get("lead"), "at": time.time()}
            await self.redis.zadd(CALLBACKS, {json.dumps(doc): time.time()})
        elif isinstance(action, WebhookMessage) and self.webhooks is not None:
            self.webhooks.submit(action.event, {"call_uuid": meta.call_uuid, **action.payload})
        elif isinstance(action, Outcome) and action.converted and meta.campaign and state.variant:
            await self.conversions.record_conversion(meta.campaign, state.variant, meta.call_uuid)

    async def _ticket_event(self, meta, state, action: Ticket) -> str:
        """The ``ticket.create`` outbox event: a fresh ticket id (a replayed event makes
        one ticket), the customer's tier and the call's peak anger for its priority."""
        customer = meta.customer or {}
        return outbox_event(
            "ticket.create", id="tk-" + uuid.uuid4().hex[:16], call_uuid=meta.call_uuid, queue=action.queue,
            subject=action.subject, priority=action.priority, fields=action.fields,
            tier=customer.get("tier"), vip=bool(customer.get("vip")),
            anger=getattr(getattr(state, "trace", None), "peak_anger", None),
            phone=await self._phone(meta), bot=getattr(state, "script", None) or None)

    async def _phone(self, meta) -> str | None:
        """The number to block: the lead's (outbound), else the caller's."""
        lead_id = (meta.extra or {}).get("lead")
        if meta.campaign and lead_id:
            lead = await self.dialer.get_lead(meta.campaign, lead_id)
            if lead is not None:
                return lead.phone
        return meta.caller if meta.direction == "inbound" else None

    async def _safe(self, coro, what: str) -> Any:
        try:
            return await coro
        except Exception as exc:
            log.warning("bot action %s failed: %s", what, type(exc).__name__)
            return None
