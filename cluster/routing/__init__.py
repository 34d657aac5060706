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
)
from cluster.routing.router import OverflowDecision, SkillRouter, SweepReport
from cluster.routing.store import AgentExistsError, RoutingStore
from configs.routing import RoutingSettings

__all__ = [
    "AgentExistsError",
    "AgentProfile",
    "AgentSnapshot",
    "AgentState",
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
    "agent_weight",
    "choose_agent",
    "ineligibility",
    "queue_order",
]
