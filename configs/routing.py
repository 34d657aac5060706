"""How the skill router behaves: offer timeouts, queue limits, overflow and weights.

Mounted by the lead as a section of the global `Settings` (e.g. ``routing:``); every
field has a default that suits a small contact centre.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RoutingSettings"]


class RoutingSettings(BaseModel):
    """Routing choice, queueing and delivery of escalated calls to human agents.

    An agent's weight in the weighted round-robin is
    ``base_weight + conversion_weight * rate + skill_level_weight * extra_levels`` where
    ``rate`` is the agent's conversion rate smoothed towards `prior_conversion_rate`
    as if the agent had already handled `prior_calls` calls at that rate (so a new agent
    is neither starved nor flooded), and ``extra_levels`` is how far the agent's levels
    exceed the call's required minimums.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    offer_timeout_s: float = Field(
        20.0, ge=2, le=300, description="an offer not accepted or rejected by then is re-routed")
    no_answer_action: Literal["available", "break", "logged_out"] = Field(
        "break", description="what an agent who let an offer time out becomes (when idle): "
        "'available' keeps offering them calls, 'break' or 'logged_out' stop until they return")
    max_wait_s: float = Field(
        120.0, ge=1, le=3600, description="longest a call waits in the queue before overflow")
    vip_max_wait_s: float | None = Field(
        None, ge=1, le=3600, description="longest a VIP call waits (None = max_wait_s)")
    overflow: Literal["callback", "voicemail"] = Field(
        "callback", description="what happens to a call that waited too long or found the "
        "queue full; the caller of the router carries it out")
    callback_campaign: str | None = Field(
        None, description="the dialer campaign that calls back overflowing inbound callers "
        "(its caller id, gateways, bot and calling rules); a dialer call is called back by "
        "its own campaign. None: inbound overflow hangs up")
    callback_delay_s: float = Field(
        300.0, ge=0, le=7 * 86_400, description="a callback is placed no earlier than this "
        "after the overflow (and only inside the lead's calling window)")
    callback_message: str = Field(
        "", description="prompt played before hanging up on a caller who will be called back "
        "(a file name in freeswitch.sounds_dir; empty = hang up without one)")
    max_queue: int = Field(500, ge=1, le=100_000, description="waiting calls; more overflow at once")
    max_offers_per_call: int = Field(
        5, ge=1, le=100, description="offers (agents tried) before a call overflows")
    heartbeat_ttl_s: float = Field(
        30.0, ge=3, le=600, description="an agent without a heartbeat for this long gets no "
        "offers and is logged out (send one every third of it)")
    wrap_up_s: float = Field(
        15.0, ge=0, le=3600, description="after-call work before an agent is available again "
        "(0 = straight back)")
    transfer_context: str = Field(
        "default", min_length=1, description="dialplan context of agent extensions")
    base_weight: float = Field(1.0, gt=0, le=1000, description="weight every eligible agent has")
    conversion_weight: float = Field(
        4.0, ge=0, le=1000, description="extra weight for a conversion rate of 1.0 (0 = plain "
        "round-robin)")
    prior_conversion_rate: float = Field(
        0.2, ge=0, le=1, description="conversion rate assumed for an agent with no history")
    prior_calls: int = Field(
        10, ge=0, le=10_000, description="how many calls the prior counts for")
    skill_level_weight: float = Field(
        0.0, ge=0, le=100, description="extra weight per skill level above the required minimum")
    escalation_ttl_s: int = Field(
        86_400, ge=60, description="how long a finished escalation stays in Redis")
    sweep_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often the router checks timeouts and the queue")

    @model_validator(mode="after")
    def _offer_fits_heartbeat(self) -> RoutingSettings:
        # an offer outliving the heartbeat TTL many times over would hold a vanished
        # agent's call far longer than the heartbeat already tells us they are gone
        if self.offer_timeout_s > 10 * self.heartbeat_ttl_s:
            raise ValueError(
                f"offer_timeout_s ({self.offer_timeout_s}) must be at most 10 x "
                f"heartbeat_ttl_s ({self.heartbeat_ttl_s})")
        return self

    def max_wait_for(self, vip: bool) -> float:
        return self.vip_max_wait_s if vip and self.vip_max_wait_s is not None else self.max_wait_s
