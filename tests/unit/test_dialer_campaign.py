"""Campaign rules: the sample YAML loads, mistakes are listed, the lifecycle allows only
sensible moves, schedule and calling window are judged in the right time zone, and the
retry policy follows the hangup cause."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from cluster.dialer.campaign import (
    CampaignConfig,
    CampaignState,
    ComplianceConfig,
    InvalidTransition,
    RetryPolicy,
    Schedule,
    next_state,
)
from cluster.dialer.compliance import (
    Outcome,
    answer_action,
    classify,
    next_window_open,
    retry_after,
)

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "campaigns" / "spring-offer.yaml"


def test_sample_campaign_loads_with_compliance_defaults():
    config = CampaignConfig.model_validate(yaml.safe_load(SAMPLE.read_text()))
    assert config.id == "spring-offer" and config.pacing.mode == "predictive"
    c = config.compliance
    assert (c.abandon_cap, c.window_days, c.connect_limit_s, c.min_ring_s) == (0.03, 30, 2.0, 15)
    assert c.calling_window_start.hour == 9 and c.calling_window_end.hour == 21


def test_every_mistake_in_a_campaign_is_reported():
    with pytest.raises(ValidationError) as err:
        CampaignConfig.model_validate({
            "id": "Bad Id", "bot_script": "shop", "caller_id_number": "2125550100",
            "gateways": [], "pacing": {"mode": "turbo"},
            "compliance": {"ring_timeout_s": 10, "abandon_cap": 0.5},
            "schedule": {"timezone": "Mars/Olympus"}, "surprise": 1,
        })
    fields = {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}
    assert {"id", "caller_id_number", "gateways", "pacing.mode", "compliance.abandon_cap",
            "schedule.timezone", "surprise"} <= fields


def test_ring_timeout_may_not_undercut_the_minimum_ring():
    with pytest.raises(ValidationError, match="min_ring_s"):
        ComplianceConfig(ring_timeout_s=12, min_ring_s=15)


def test_unquoted_yaml_times_are_understood():
    # YAML 1.1 reads 9:00 as the integer 540 (minutes)
    doc = yaml.safe_load("start: 9:00\nend: 17:30\n")
    schedule = Schedule.model_validate(doc)
    assert (schedule.start.hour, schedule.end.hour, schedule.end.minute) == (9, 17, 30)


@pytest.mark.parametrize(("state", "action", "expected"), [
    ("created", "start", "running"), ("running", "pause", "paused"),
    ("paused", "resume", "running"), ("running", "start", "running"),
    ("paused", "pause", "paused"), ("paused", "stop", "stopped"),
    ("stopped", "stop", "stopped"), ("completed", "start", "running"),
])
def test_lifecycle_moves(state, action, expected):
    assert next_state(CampaignState(state), action) is CampaignState(expected)


@pytest.mark.parametrize(("state", "action"), [
    ("created", "pause"), ("created", "resume"), ("stopped", "start"), ("stopped", "resume"),
    ("paused", "start"), ("running", "launch"),
])
def test_lifecycle_refuses_the_rest(state, action):
    with pytest.raises(InvalidTransition):
        next_state(CampaignState(state), action)


def test_schedule_is_judged_in_the_campaign_time_zone():
    schedule = Schedule(timezone="America/New_York", days=["mon", "tue", "wed", "thu", "fri"],
                        start="09:00", end="20:00")
    wednesday_10_ny = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)
    wednesday_21_ny = datetime(2026, 3, 5, 2, 0, tzinfo=timezone.utc)
    saturday_noon_ny = datetime(2026, 3, 7, 17, 0, tzinfo=timezone.utc)
    assert schedule.open_at(wednesday_10_ny)
    assert not schedule.open_at(wednesday_21_ny)
    assert not schedule.open_at(saturday_noon_ny)


def test_calling_window_is_the_leads_local_time():
    compliance = ComplianceConfig()
    at = datetime(2026, 3, 4, 16, 30, tzinfo=timezone.utc)  # 11:30 New York, 08:30 LA
    assert compliance.in_calling_window(at, "America/New_York")
    assert not compliance.in_calling_window(at, "America/Los_Angeles")
    opens = next_window_open(at, "America/Los_Angeles", compliance)
    assert opens.astimezone(ZoneInfo("America/Los_Angeles")).hour == 9
    assert (opens - at).total_seconds() == 30 * 60
    late = datetime(2026, 3, 5, 4, 0, tzinfo=timezone.utc)  # 23:00 New York
    opens = next_window_open(late, "America/New_York", compliance).astimezone(ZoneInfo("America/New_York"))
    assert (opens.day, opens.hour) == (5, 9)


def test_next_window_open_handles_a_daylight_saving_switch():
    # 8 March 2026: New York clocks jump from 02:00 to 03:00
    compliance = ComplianceConfig(calling_window_start="02:30", calling_window_end="21:00")
    night = datetime(2026, 3, 8, 5, 0, tzinfo=timezone.utc)  # 00:00 EST
    opens = next_window_open(night, "America/New_York", compliance)
    assert compliance.in_calling_window(opens, "America/New_York")


def test_retry_policy_follows_the_cause():
    policy = RetryPolicy(max_attempts=3, busy_s=600, no_answer_s=3600, failure_s=900)
    assert retry_after(classify(False, "USER_BUSY"), 1, policy) == 600
    assert retry_after(classify(False, "NO_ANSWER"), 1, policy) == 3600
    assert retry_after(classify(False, "GATEWAY_DOWN"), 1, policy) == 900
    assert retry_after(classify(False, "UNALLOCATED_NUMBER"), 1, policy) is None
    assert retry_after(classify(True, "SUCCESS"), 1, policy) is None
    assert retry_after(classify(False, "USER_BUSY"), 3, policy) is None  # out of attempts
    assert classify(True, "SUCCESS", abandoned=True) is Outcome.ABANDONED
    assert retry_after(Outcome.ABANDONED, 1, policy) is None  # default: never call back


def test_no_free_slot_within_the_limit_means_the_information_message():
    config = CampaignConfig.model_validate(yaml.safe_load(SAMPLE.read_text()))
    assert answer_action(config, slot_free=True).kind == "connect"
    action = answer_action(config, slot_free=False)
    assert action.kind == "info_message" and action.message == "spring-offer-info.wav"
