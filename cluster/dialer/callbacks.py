"""Callbacks instead of hang-ups: a caller no agent could take in time (the skill router's
overflow, ``routing.overflow: callback``) is called back by the dialer.

The callback becomes a lead of its own (``cb-<call uuid>``) in a campaign — the call's
own campaign for a dialer call, ``routing.callback_campaign`` for an inbound one — with
the original lead's name, tier and time zone (an inbound caller's zone is guessed from
the number, else the campaign's default). It waits until ``routing.callback_delay_s``
has passed, then goes ahead of every other lead (VIPs first); the dialer's calling-window
rule applies to it like to any lead, so it is placed inside the lead's window, and the
do-not-call lists are checked when it is claimed. A completed campaign is started again
for it. The original call's record says when the callback is due and under which lead
(the ``call.callback`` outbox event), and the callback's own attempts follow under that
lead in the compliance ledger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.dialer.campaign import CampaignState
from cluster.dialer.leads import Lead
from cluster.dialer.phone import PhoneNumberError, guess_timezone, normalise_e164
from cluster.dialer.store import CampaignNotFound, DialerStore
from cluster.records.call_state import esl_record_key
from cluster.records.outbox import outbox_event
from configs.routing import RoutingSettings
from telephony.call_fsm import CallRecord

__all__ = ["CALLBACK_PRIORITY", "CallbackResult", "OverflowCallbacks", "callback_lead_id",
           "schedule_callback"]

log = logging.getLogger("callfleet.dialer.callbacks")

#: ready-set scores of callbacks: below every imported lead (those start at 0 for VIPs)
CALLBACK_PRIORITY = {True: -2.0, False: -1.0}


def callback_lead_id(call_uuid: str) -> str:
    return f"cb-{call_uuid}"


@dataclass(frozen=True)
class CallbackResult:
    """Whether a callback was scheduled; `reason` says why not."""

    scheduled: bool
    campaign_id: str | None = None
    lead_id: str | None = None
    due_at: float | None = None
    reason: str = ""


async def schedule_callback(store: DialerStore, *, call_uuid: str, phone: str,
                            campaign_id: str, due_at: float, vip: bool = False,
                            lead_id: str | None = None, reason: str = "",
                            source: str = "overflow") -> CallbackResult:
    """Add the callback lead for `call_uuid` (idempotent: a second request for the same
    call changes nothing and reports the first)."""
    try:
        config, state = await store.get_campaign(campaign_id)
    except CampaignNotFound:
        return CallbackResult(False, campaign_id, reason=f"no campaign {campaign_id!r}")
    if state is CampaignState.STOPPED:
        return CallbackResult(False, campaign_id, reason=f"campaign {campaign_id} is stopped")
    try:
        number = normalise_e164(phone, config.default_country)
    except PhoneNumberError:
        return CallbackResult(False, campaign_id, reason="the caller's number is not callable")
    if await store.is_dnc(number, campaign_id):
        return CallbackResult(False, campaign_id, reason="the number is on a do-not-call list")
    original = await store.get_lead(campaign_id, lead_id) if lead_id else None
    new_id = callback_lead_id(call_uuid)
    if original is not None:
        lead = original.model_copy(update={"id": new_id, "phone": number, "row": None})
    else:
        zone = guess_timezone(number)
        lead = Lead(id=new_id, phone=number, timezone=zone or config.default_timezone,
                    tz_source="number" if zone else "default", vip=vip)
    vip = vip or lead.vip
    event = outbox_event("call.callback", call_uuid=call_uuid, campaign_id=campaign_id,
                         lead_id=new_id, due_at=due_at, source=source, reason=reason)
    added = await store.add_callback(campaign_id, lead, due_at, CALLBACK_PRIORITY[vip], event)
    if state is CampaignState.COMPLETED:
        await store.transition(campaign_id, "start")  # its leads were done; this one is not
    if added:
        log.info("callback scheduled in campaign %s (%s)", campaign_id, source)
    return CallbackResult(True, campaign_id, new_id, due_at)


class OverflowCallbacks:
    """What the router actor does with an overflow decision ``callback``: find the
    caller's number and campaign in the ESL controller's record of the call, and
    schedule the callback (`schedule_callback`)."""

    def __init__(self, store: DialerStore, settings: RoutingSettings):
        self.store = store
        self.settings = settings

    async def schedule(self, call_uuid: str, *, campaign_id: str | None, vip: bool,
                       reason: str, now: float) -> CallbackResult:
        raw = await self.store.redis.get(esl_record_key(call_uuid))
        if not raw:
            return CallbackResult(False, reason="no record of the call")
        record = CallRecord.from_dict(json.loads(raw))
        facts = _call_facts(record)
        campaign = campaign_id or facts.get("campaign") or self.settings.callback_campaign
        if not campaign:
            return CallbackResult(False, reason="inbound call and no routing.callback_campaign")
        phone = facts["phone"]
        if not phone:
            return CallbackResult(False, campaign, reason="the caller's number is unknown")
        return await schedule_callback(
            self.store, call_uuid=call_uuid, phone=phone, campaign_id=campaign,
            due_at=now + self.settings.callback_delay_s, vip=vip, lead_id=facts.get("lead"),
            reason=reason, source="overflow")


def _call_facts(record: CallRecord) -> Mapping[str, Any]:
    variables = record.variables or {}
    phone = record.caller_id if record.direction == "inbound" else record.destination
    return {"phone": phone, "campaign": variables.get("callfleet_campaign"),
            "lead": variables.get("callfleet_lead")}
