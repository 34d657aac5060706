"""What the ESL controller tells the floor: a bot asked for a person → the skill router
gets an escalation; a call ended → the router frees its agent and the dialer records the
outcome. Runs inside the controller actor; the router and dialer are found by name."""

from __future__ import annotations

import logging
from typing import Any

from cluster.actors.names import ROUTER_NAME, lookup
from cluster.records.call_state import RedisCallRecorder
from telephony.call_fsm import CallPhase

__all__ = ["FloorHooks"]

logger = logging.getLogger("cluster.actors.floor")


class FloorHooks:
    """Runs inside the controller actor: passes call events on to the router and dialer."""

    def __init__(self, redis_url: str, dialer_name: str):
        self.redis_url = redis_url
        self.dialer_name = dialer_name

    async def __call__(self, record, what: str) -> None:
        try:
            if record.phase is CallPhase.ESCALATED and what.endswith("transfer"):
                await self._escalate(record)
            elif record.phase is CallPhase.ENDED:
                await self._ended(record)
        except Exception:  # the floor being down must not break call control
            logger.exception("floor hook failed for %s", what)

    async def _escalate(self, record) -> None:
        router = await lookup(ROUTER_NAME)
        if router is None:
            logger.warning("a call wants a person but no skill router is running")
            return
        context = await self._call_context(record.call_uuid)
        esc = record.escalation or {}
        customer = context.get("customer") or {}
        request = {
            "call_uuid": record.call_uuid,
            "reason": str(esc.get("reason") or "bot asked for a person")[:200],
            "priority": int(esc.get("priority") or 0),
            "skills": esc.get("skills") or {},
            "vip": bool(esc.get("vip") or customer.get("vip") or customer.get("tier") == "vip"),
            "brief": str(esc.get("brief") or "")[:4000],
            "transcript": [{"caller": t.get("caller"), "bot": t.get("bot")}
                           for t in context.get("turns", [])],
            "intents": [t.get("intent") or {} for t in context.get("turns", [])],
            "emotions": [t.get("emotion") or {} for t in context.get("turns", [])],
            "customer": customer,
            "campaign_id": record.variables.get("callfleet_campaign"),
        }
        await router.escalate.remote(request)

    async def _ended(self, record) -> None:
        router = await lookup(ROUTER_NAME)
        if router is not None:
            await router.call_ended.remote(record.call_uuid)
        if record.variables.get("callfleet_campaign") and record.answered_at is not None:
            dialer = await lookup(self.dialer_name)
            if dialer is not None:
                escalated = any(p in ("escalated", "agent") for p, _ in record.history)
                await dialer.call_ended.remote(record.call_uuid, record.hangup_cause
                                               or "NORMAL_CLEARING", escalated)

    async def _call_context(self, call_uuid: str) -> dict[str, Any]:
        recorder = RedisCallRecorder(self.redis_url)
        try:
            return await recorder.get_call(call_uuid) or {}
        except Exception:
            return {}
        finally:
            await recorder.close()
