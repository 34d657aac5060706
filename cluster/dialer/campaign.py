"""What a campaign is: schedule, script, caller ID, gateways, pacing, compliance and retry
rules, and the lifecycle it moves through.

Everything here is plain data (pydantic, `extra="forbid"`) so a campaign YAML with a typo
fails on load with every problem listed. The defaults follow the US Telemarketing Sales
Rule safe harbour (see `shared/docs/protocols.md`, "Regulation facts"): at most 3 % of
live-answered calls abandoned over 30 days, a recorded message within 2 s, ring at least
15 s. The calling window defaults to 09:00-21:00 in the lead's local time, inside the
TCPA's 08:00-21:00; tighten or widen it per campaign.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from enum import Enum
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cluster.dialer.phone import COUNTRIES, valid_timezone
from telephony.esl_commands import check_variable, sound_file_name, token

__all__ = [
    "DAYS",
    "ABTestConfig",
    "CampaignConfig",
    "CampaignState",
    "ComplianceConfig",
    "InvalidTransition",
    "PacingConfig",
    "RetryPolicy",
    "Schedule",
    "next_state",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")  # \Z: "$" allows a trailing newline


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _parse_hhmm(value: str | int | time) -> time:
    """HH:MM text; an int is minutes since midnight, which is what YAML 1.1 makes of an
    unquoted ``21:00`` (base-60 integer)."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 24 * 60:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return time(23, 59, 59) if value == 24 * 60 else time(value // 60, value % 60)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", str(value).strip())
    if match and match.group(3) is not None and int(match.group(1)) < 24:
        if int(match.group(2)) > 59 or int(match.group(3)) > 59:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return time(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24:
        if minutes:
            raise ValueError(f"expected a time of day as HH:MM, got {value!r}")
        return time(23, 59, 59)
    return time(hours, minutes)


class Schedule(_Model):
    """When the campaign dials, in the campaign's own time zone (the office's hours).
    A lead is dialled only when both this and its own calling window allow it."""

    timezone: str = Field("America/New_York", description="IANA zone of `days`/`start`/`end`")
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1,
        description="weekdays the campaign dials")
    start: time = Field(time(9, 0), description="first minute of dialling (HH:MM)")
    end: time = Field(time(20, 0), description="no new dials from this minute (HH:MM)")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _times(cls, value: str | int | time) -> time:
        return _parse_hhmm(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not valid_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/Chicago)")
        return value

    @model_validator(mode="after")
    def _order(self) -> Schedule:
        if self.end <= self.start:
            raise ValueError(f"schedule end {self.end:%H:%M} must be after start {self.start:%H:%M}")
        return self

    def open_at(self, now: datetime) -> bool:
        """Whether the campaign may dial at the aware datetime `now`."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


class PacingConfig(_Model):
    """How many numbers to dial per tick. `predictive` starts from the priors below and
    replaces them with what it measures as calls complete."""

    mode: Literal["progressive", "fixed_ratio", "predictive"] = "predictive"
    ratio: float = Field(3.0, ge=1.0, le=10.0, description="fixed_ratio: dials per free slot")
    max_lines: int = Field(200, ge=1, le=10_000, description="most calls ringing at once")
    max_dials_per_tick: int = Field(50, ge=1, le=1_000, description="burst limit per tick")
    max_ratio: float = Field(8.0, ge=1.0, le=20.0,
                             description="predictive: most calls ringing per free/freeing slot")
    initial_answer_rate: float = Field(0.3, gt=0.0, le=1.0, description="prior answer rate")
    initial_ring_s: float = Field(8.0, gt=0.0, le=120.0, description="prior ring time of answered calls")
    initial_handle_s: float = Field(120.0, gt=0.0, le=7_200.0, description="prior call length")
    initial_escalation_rate: float = Field(0.1, ge=0.0, le=1.0,
                                           description="prior share of calls escalated to a person")
    escalation_slack: float = Field(
        1.0, ge=0.0, le=1_000.0, description="predictive: expected escalations allowed beyond "
        "the free human agents (they wait in the router's queue)")
    prior_weight: int = Field(20, ge=0, le=10_000,
                              description="how many calls' worth of weight the priors carry")
    warmup_dials: int = Field(30, ge=0, le=10_000,
                              description="predictive dials progressively until this many "
                              "dials have a known outcome")
    answer_rate_margin: float = Field(
        1.0, ge=0.0, le=5.0, description="standard errors added to the measured answer rate "
        "when judging the abandonment risk (guards against a rate that is rising)")
    safety: float = Field(0.8, gt=0.0, le=1.0,
                          description="share of the abandonment cap the pacer aims at")
    taper_from: float = Field(0.5, ge=0.0, lt=1.0,
                              description="start tapering when the 30-day rate passes this share of the cap")


class ComplianceConfig(_Model):
    """Abandonment control and the rules of when and how long to ring."""

    abandon_cap: float = Field(0.03, ge=0.0, le=0.2,
                               description="max share of live-answered calls abandoned")
    window_days: int = Field(30, ge=1, le=366, description="rolling window of the abandonment rate")
    connect_limit_s: float = Field(2.0, gt=0.0, le=10.0,
                                   description="answered call without a bot/agent by then is abandoned")
    min_ring_s: int = Field(15, ge=0, le=120, description="never give up ringing sooner")
    ring_timeout_s: int = Field(25, ge=5, le=120, description="give up ringing after this")
    info_message: str = Field("campaign-info.wav",
                              description="recorded message (seller name + call-back number) "
                              "played to an abandoned call: a .wav file name (no folders) in "
                              "freeswitch.sounds_dir; synthesized there once if missing")
    calling_window_start: time = Field(time(9, 0), description="earliest local time of the lead")
    calling_window_end: time = Field(time(21, 0), description="no dials from this local time")
    use_global_dnc: bool = Field(True, description="also honour the global do-not-call list")

    @field_validator("calling_window_start", "calling_window_end", mode="before")
    @classmethod
    def _times(cls, value: str | int | time) -> time:
        return _parse_hhmm(value)

    @field_validator("info_message")
    @classmethod
    def _info_message(cls, value: str) -> str:
        """A file name only: it ends up on an ESL command line and names the file the
        floor writes, so no newline (a second command), no folder and no '..'. Empty:
        ``<campaign id>-info.wav``."""
        return sound_file_name(value) if value else value

    @model_validator(mode="after")
    def _checks(self) -> ComplianceConfig:
        if self.ring_timeout_s < self.min_ring_s:
            raise ValueError(f"ring_timeout_s {self.ring_timeout_s} is below min_ring_s "
                             f"{self.min_ring_s}: calls must ring at least that long")
        if self.calling_window_end <= self.calling_window_start:
            raise ValueError("calling_window_end must be after calling_window_start")
        return self

    def in_calling_window(self, now: datetime, timezone: str) -> bool:
        """Whether it is within the calling window at the lead's zone at aware `now`."""
        local = now.astimezone(ZoneInfo(timezone)).time()
        return self.calling_window_start <= local < self.calling_window_end


class RetryPolicy(_Model):
    """When to try a lead again, per outcome; None = never retry that outcome."""

    max_attempts: int = Field(3, ge=1, le=20, description="attempts per lead, all causes")
    busy_s: int | None = Field(600, ge=0, description="after USER_BUSY")
    no_answer_s: int | None = Field(3_600, ge=0, description="after NO_ANSWER and the like")
    failure_s: int | None = Field(900, ge=0, description="after carrier/network failures")
    abandoned_s: int | None = Field(None, ge=0, description="after an abandoned (answered) call")
    interrupted_s: int | None = Field(
        None, ge=0, description="after an attempt whose result the dialer lost in a restart "
        "(None: never redial it, as it may have been answered)")


class ABTestConfig(_Model):
    """When the campaign's A/B report (`cluster.dialer.ab`) names a winning script
    variant, and whether the dialer then stops the test."""

    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level (Holm-corrected)")
    min_calls_per_variant: int = Field(200, ge=10, description="no verdict before every "
                                       "variant has this many calls")
    auto_stop: bool = Field(False, description="once a variant wins, send every further call "
                            "of this campaign to it (the losing variants stop)")


class CampaignConfig(_Model):
    """One outbound campaign as created through the CLI, the REST API or a YAML file."""

    id: str = Field(description="lower-case id: letters, digits, - and _")
    name: str = ""
    bot_script: str = Field(description="name of the bot script that talks to answered calls")
    caller_id_number: str = Field(description="E.164 number shown to the callee")
    caller_id_name: str = ""
    gateways: list[str] = Field(min_length=1, description="carrier gateways, tried in order")
    default_country: str = Field("US", description="country of numbers written without +code")
    default_timezone: str = Field("America/New_York",
                                  description="lead zone when neither the CSV nor the number says")
    tier_priority: list[str] = Field(
        default_factory=lambda: ["vip", "gold", "silver"],
        description="spending tiers dialled first, in order; other tiers after them")
    schedule: Schedule = Field(default_factory=Schedule)
    pacing: PacingConfig = Field(default_factory=PacingConfig)
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    ab_test: ABTestConfig = Field(default_factory=ABTestConfig,
                                  description="A/B report and the automatic stop rule")
    variables: dict[str, str] = Field(default_factory=dict,
                                      description="channel variables set on every call")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("campaign id must be 1-63 lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str) -> str:
        if value.upper() not in COUNTRIES:
            raise ValueError(f"unknown country {value!r}; known: {', '.join(sorted(COUNTRIES))}")
        return value.upper()

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not valid_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @field_validator("caller_id_number")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        if not re.fullmatch(r"\+[1-9][0-9]{7,14}", value):  # ASCII digits: "\d" takes any script's
            raise ValueError("caller_id_number must be E.164, e.g. +12125550100")
        return value

    @field_validator("tier_priority")
    @classmethod
    def _tiers(cls, value: list[str]) -> list[str]:
        return [tier.strip().lower() for tier in value]

    # what goes on the originate line is refused here too, so the API answers 422 at
    # once instead of every dial failing later (esl_commands checks again when it builds)
    @field_validator("caller_id_name")
    @classmethod
    def _caller_name(cls, value: str) -> str:
        check_variable("origination_caller_id_name", value)
        return value

    @field_validator("gateways")
    @classmethod
    def _gateways(cls, value: list[str]) -> list[str]:
        return [token(gateway, "gateway") for gateway in value]

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            check_variable(name, item)
        return value


class CampaignState(str, Enum):
    """created -> running <-> paused; any -> stopped (final); running -> completed when
    every lead is finished (importing more leads and `start` runs it again)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"


class InvalidTransition(ValueError):
    """A lifecycle action that the campaign's current state does not allow."""


_TRANSITIONS: dict[str, dict[CampaignState, CampaignState]] = {
    "start": {CampaignState.CREATED: CampaignState.RUNNING,
              CampaignState.RUNNING: CampaignState.RUNNING,
              CampaignState.COMPLETED: CampaignState.RUNNING},
    "pause": {CampaignState.RUNNING: CampaignState.PAUSED,
              CampaignState.PAUSED: CampaignState.PAUSED},
    "resume": {CampaignState.PAUSED: CampaignState.RUNNING,
               CampaignState.RUNNING: CampaignState.RUNNING},
    "stop": {state: CampaignState.STOPPED for state in CampaignState},
    "complete": {CampaignState.RUNNING: CampaignState.COMPLETED,
                 CampaignState.COMPLETED: CampaignState.COMPLETED},
}
ACTIONS = ("start", "pause", "resume", "stop")


def next_state(current: CampaignState, action: str) -> CampaignState:
    """The state after `action`; repeating an action is a no-op (idempotent), anything
    else not allowed raises InvalidTransition."""
    table = _TRANSITIONS.get(action)
    if table is None:
        raise InvalidTransition(f"unknown campaign action {action!r}; expected one of "
                                f"{', '.join(ACTIONS)}")
    if current not in table:
        allowed = ", ".join(sorted(s.value for s in table))
        raise InvalidTransition(f"cannot {action} a campaign that is {current.value} "
                                f"(allowed from: {allowed})")
    return table[current]
