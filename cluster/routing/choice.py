"""Which agent gets a call, and in which order waiting calls are served: pure functions
over snapshots, no Redis, no clock of their own.

Rules, in order:

1. Eligible agents only: heartbeat fresh, state `available` (or `on_call` with room),
   calls + pending offers below the agent's concurrency, every required skill at or
   above its minimum level, and not already offered this call.
2. Among them, smooth weighted round-robin: each pick adds every candidate's weight to
   its credit, the highest credit wins and pays back the sum of the weights. Over time
   each agent gets calls in proportion to its weight (conversion rate, skill levels),
   without bursts to the best agent.
3. Equal credit: the agent idle longest wins; then the lower agent id (deterministic).

Waiting calls are served VIP first, then by priority (higher first), then first come.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cluster.routing.models import AgentSnapshot, AgentState, EscalationRecord, EscalationRequest
from configs.routing import RoutingSettings

__all__ = [
    "Choice",
    "agent_weight",
    "choose_agent",
    "ineligibility",
    "queue_order",
    "smoothed_conversion_rate",
]

_OFFERABLE = (AgentState.AVAILABLE, AgentState.ON_CALL)


@dataclass(frozen=True)
class Choice:
    """The chosen agent and the new round-robin credits of every candidate considered
    (the caller stores them so the rotation survives restarts)."""

    agent_id: str
    weight: float
    credits: dict[str, float] = field(default_factory=dict)


def smoothed_conversion_rate(agent: AgentSnapshot, settings: RoutingSettings) -> float:
    """Conversions per handled call, pulled towards the prior for agents with little history."""
    prior_n = settings.prior_calls
    return (agent.converted + settings.prior_conversion_rate * prior_n) / max(agent.handled + prior_n, 1)


def agent_weight(agent: AgentSnapshot, request: EscalationRequest, settings: RoutingSettings) -> float:
    """The agent's share of calls like this one (see `RoutingSettings`)."""
    extra_levels = sum(
        max(agent.profile.skills.get(skill, 0) - minimum, 0)
        for skill, minimum in request.skills.items()
    )
    return (settings.base_weight
            + settings.conversion_weight * smoothed_conversion_rate(agent, settings)
            + settings.skill_level_weight * extra_levels)


def ineligibility(agent: AgentSnapshot, request: EscalationRequest,
                  exclude: Iterable[str] = ()) -> str | None:
    """Why `agent` cannot be offered this call, or None when it can."""
    if agent.agent_id in set(exclude):
        return "already offered this call"
    if not agent.online:
        return "no heartbeat"
    if agent.state not in _OFFERABLE:
        return f"state is {agent.state.value}"
    if agent.load >= agent.profile.concurrency:
        return f"at capacity ({agent.load}/{agent.profile.concurrency})"
    for skill, minimum in request.skills.items():
        level = agent.profile.skills.get(skill, 0)
        if level < minimum:
            return f"skill {skill!r} level {level} below the required {minimum}"
    return None


def choose_agent(agents: Sequence[AgentSnapshot], request: EscalationRequest,
                 settings: RoutingSettings, exclude: Iterable[str] = ()) -> Choice | None:
    """Pick the agent for `request`, or None when no agent is eligible now."""
    excluded = set(exclude)
    candidates = [a for a in agents if ineligibility(a, request, excluded) is None]
    if not candidates:
        return None
    weights = {a.agent_id: agent_weight(a, request, settings) for a in candidates}
    credits = {a.agent_id: a.rr_credit + weights[a.agent_id] for a in candidates}
    best = min(candidates, key=lambda a: (-round(credits[a.agent_id], 9), a.idle_since, a.agent_id))
    credits[best.agent_id] -= sum(weights.values())
    return Choice(agent_id=best.agent_id, weight=weights[best.agent_id], credits=credits)


def queue_order(records: Iterable[EscalationRecord]) -> list[EscalationRecord]:
    """Waiting calls in the order they are served: VIP, then priority, then arrival."""
    return sorted(records, key=lambda r: (not r.request.vip, -r.request.priority,
                                          r.enqueued_at, r.request.call_uuid))
