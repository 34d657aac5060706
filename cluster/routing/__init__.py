"""Skill routing of escalated calls to human agents.

* `models` — agents, escalations, offers (pydantic); `settings` — `RoutingSettings`
* `choice` — the pure routing rules (eligibility, weighted round-robin, queue order)
* `store` — the Redis keys; `router` — the `SkillRouter` facade (plain class, async,
  all state in Redis, safe to wrap as a Ray actor); `feed` — websocket feed and webhook
  sinks for router events

Nothing here imports Ray.
"""

from cluster.routing.choice import Choice, agent_weight, choose_agent, ineligibility, queue_order
from cluster.routing.errors import (
    CallerGoneError,
    ConnectFailedError,
    EscalationNotFoundError,
    InvalidStateChangeError,
    NotYourCallError,
    NotYourOfferError,
    OfferClosedError,
    OfferNotFoundError,
    RoutingError,
    UnknownAgentError,
)
from cluster.routing.feed import EventSink, FeedHub, RedisFeedPublisher, WebhookNotifier
from cluster.routing.models import (
    AgentProfile,
    AgentSnapshot,
    AgentState,
    EscalationRecord,
    EscalationRequest,
    EscalationStatus,
    Offer,
    OfferState,
    QueueItem,
    RouteResult,
    WrapUp,
    mask_number,
)
from cluster.routing.router import CALLER_HUNG_UP, OverflowDecision, SkillRouter, SweepReport
from cluster.routing.store import AgentExistsError, RoutingStore
from configs.routing import RoutingSettings

__all__ = [
    "CALLER_HUNG_UP",
    "AgentExistsError",
    "AgentProfile",
    "AgentSnapshot",
    "AgentState",
    "CallerGoneError",
    "Choice",
    "ConnectFailedError",
    "EscalationNotFoundError",
    "EscalationRecord",
    "EscalationRequest",
    "EscalationStatus",
    "EventSink",
    "FeedHub",
    "InvalidStateChangeError",
    "NotYourCallError",
    "NotYourOfferError",
    "Offer",
    "OfferClosedError",
    "OfferNotFoundError",
    "OfferState",
    "OverflowDecision",
    "QueueItem",
    "RedisFeedPublisher",
    "RouteResult",
    "RoutingError",
    "RoutingSettings",
    "RoutingStore",
    "SkillRouter",
    "SweepReport",
    "UnknownAgentError",
    "WebhookNotifier",
    "WrapUp",
    "agent_weight",
    "choose_agent",
    "ineligibility",
    "mask_number",
    "queue_order",
]
