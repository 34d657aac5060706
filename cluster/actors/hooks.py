"""What the ESL controller tells the floor: a bot asked for a person → the skill router
gets an escalation; a call ended → the router frees its agent and the dialer records the
outcome. Runs inside the controller actor; the router and dialer are found by name."""

from __future__ import annotations

import logging

from cluster.actors.names import ROUTER_NAME, lookup
from telephony.call_data import Handover
from telephony.call_fsm import CallPhase

__all__ = ["FloorHooks"]

logger = logging.getLogger(__name__)


class FloorHooks:
    """Runs inside the controller actor: passes call events on to the router and dialer."""

    def __init__(self, dialer_name: str):
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
        # the handover as the call session built it, conversation included
        # the customer's number: who called in, or whom the dialer called (the router
        # keeps it masked)
        number = record.caller_id if record.direction == "inbound" else record.destination
        await router.escalate.remote(record.call_uuid, record.escalation or Handover(), number)

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
