"""Compliance rules as plain functions: which outcome an attempt had, whether and when a
lead may be tried again, when its calling window next opens, and what an answered call
gets when no bot or agent is free in time.

The records themselves live in Redis (`store.DialerStore`); `AttemptRecord` is their
shape, one per attempt, with everything a regulator's question needs: time, lead,
result, hangup cause, and whether it was abandoned.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from cluster.dialer.campaign import CampaignConfig, ComplianceConfig, RetryPolicy

__all__ = [
    "FINAL_CAUSES",
    "AnswerAction",
    "AttemptRecord",
    "Outcome",
    "answer_action",
    "classify",
    "next_window_open",
    "retry_after",
    "window_facts",
]

# Hangup causes that say the number itself is wrong: never retried.
FINAL_CAUSES = frozenset({"UNALLOCATED_NUMBER", "INVALID_NUMBER_FORMAT", "NUMBER_CHANGED",
                          "INCOMPATIBLE_DESTINATION"})
_BUSY = frozenset({"USER_BUSY"})
_NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "CALL_REJECTED", "SUBSCRIBER_ABSENT",
                        "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT"})
INTERRUPTED_CAUSE = "DIALER_RESTART"


class Outcome(str, Enum):
    """What one attempt came to, for the retry policy and the records."""

    CONNECTED = "connected"  # answered and handed to a bot within the connect limit
    ABANDONED = "abandoned"  # answered, no capacity in time: information message played
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILURE = "failure"  # carrier, network, or call-control error
    INVALID = "invalid"  # the number cannot be reached (FINAL_CAUSES)
    INTERRUPTED = "interrupted"  # the dialer restarted before it learnt the result


def classify(answered: bool, cause: str, abandoned: bool = False) -> Outcome:
    """The outcome of an attempt from the originate result."""
    if answered:
        return Outcome.ABANDONED if abandoned else Outcome.CONNECTED
    if cause in _BUSY:
        return Outcome.BUSY
    if cause in _NO_ANSWER:
        return Outcome.NO_ANSWER
    if cause in FINAL_CAUSES:
        return Outcome.INVALID
    if cause == INTERRUPTED_CAUSE:
        return Outcome.INTERRUPTED
    return Outcome.FAILURE


def retry_after(outcome: Outcome, attempts: int, policy: RetryPolicy) -> int | None:
    """Seconds until the lead may be tried again, or None when it is finished."""
    if attempts >= policy.max_attempts:
        return None
    delays = {
        Outcome.BUSY: policy.busy_s,
        Outcome.NO_ANSWER: policy.no_answer_s,
        Outcome.FAILURE: policy.failure_s,
        Outcome.ABANDONED: policy.abandoned_s,
        Outcome.INTERRUPTED: policy.interrupted_s,
    }
    return delays.get(outcome)  # CONNECTED and INVALID are final


def next_window_open(now: datetime, timezone: str, compliance: ComplianceConfig) -> datetime:
    """The next moment (aware, at or after `now`) the lead's local calling window is open."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if compliance.in_calling_window(now, timezone):
        return now
    day = local.date()
    if local.time() >= compliance.calling_window_end:
        day += timedelta(days=1)
    opens = datetime.combine(day, compliance.calling_window_start, tzinfo=zone)
    # a DST gap can make the wall time not exist; step a minute at a time past it
    while not compliance.in_calling_window(opens, timezone):
        opens += timedelta(minutes=1)
    return opens


def window_facts(now: datetime, timezone: str, compliance: ComplianceConfig) -> dict[str, Any]:
    """What a calling-window decision rests on, for the compliance ledger: the lead's
    zone, its local time at aware `now`, the window, and whether `now` is inside it."""
    local = now.astimezone(ZoneInfo(timezone))
    return {"timezone": timezone, "local_time": local.isoformat(timespec="seconds"),
            "window_start": compliance.calling_window_start.strftime("%H:%M"),
            "window_end": compliance.calling_window_end.strftime("%H:%M"),
            "inside": compliance.in_calling_window(now, timezone)}


class AnswerAction(BaseModel):
    """What to do with a live-answered call: hand it to the campaign's bot, or play the
    recorded information message (and count the call abandoned)."""

    kind: Literal["connect", "info_message"]
    bot_script: str = ""
    message: str = ""


def answer_action(campaign: CampaignConfig, slot_free: bool) -> AnswerAction:
    """The rule of the connect limit: no free slot within it means the message."""
    if slot_free:
        return AnswerAction(kind="connect", bot_script=campaign.bot_script)
    return AnswerAction(kind="info_message", message=campaign.compliance.info_message)


class AttemptRecord(BaseModel):
    """One compliance record: a dial attempt and how it ended."""

    campaign_id: str
    attempt_id: str = Field(description="<lead id>#<attempt number>")
    lead_id: str
    attempt: int
    call_uuid: str
    started_at: float = Field(description="unix time the dial started")
    ended_at: float = Field(description="unix time the outcome was known")
    result: Outcome
    cause: str = Field(description="FreeSWITCH hangup cause, SUCCESS when answered")
    answered: bool
    abandoned: bool
    ring_s: float | None = None
    gateway: str | None = None
    handle_s: float | None = Field(None, description="call length, once the call has ended")
    hangup_cause: str | None = Field(None, description="final hangup cause of a connected call")
    escalated: bool | None = None
    timezone: str | None = Field(None, description="the lead's time zone (its calling window)")
