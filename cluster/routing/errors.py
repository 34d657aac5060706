"""Typed routing errors. The agent API maps them to HTTP statuses (404, 403, 409, 502);
messages name ids and states only, never customer data."""

from __future__ import annotations

from redis.exceptions import RedisError

__all__ = [
    "CallerGoneError",
    "ConnectFailedError",
    "EscalationNotFoundError",
    "InvalidStateChangeError",
    "NotYourCallError",
    "NotYourOfferError",
    "OfferClosedError",
    "OfferNotFoundError",
    "RoutingError",
    "UnknownAgentError",
    "describe_error",
]


class RoutingError(Exception):
    """Base class of everything the skill router refuses."""


class UnknownAgentError(RoutingError, LookupError):
    def __init__(self, agent_id: str):
        super().__init__(f"no agent {agent_id!r} is registered "
                         "(add one with: callfleet agents add ID --extension EXT)")
        self.agent_id = agent_id


class OfferNotFoundError(RoutingError, LookupError):
    def __init__(self, offer_id: str):
        super().__init__(f"no offer {offer_id!r} (unknown, or older than the escalation TTL)")
        self.offer_id = offer_id


class EscalationNotFoundError(RoutingError, LookupError):
    def __init__(self, call_uuid: str):
        super().__init__(f"call {call_uuid!r} was never escalated (or its record expired)")
        self.call_uuid = call_uuid


class NotYourOfferError(RoutingError, PermissionError):
    def __init__(self, offer_id: str, agent_id: str):
        super().__init__(f"offer {offer_id!r} was not made to agent {agent_id!r}")


class NotYourCallError(RoutingError, PermissionError):
    def __init__(self, call_uuid: str, agent_id: str):
        super().__init__(f"call {call_uuid!r} is not connected to agent {agent_id!r}")


class OfferClosedError(RoutingError):
    """Accept or reject of an offer that is no longer pending (expired, withdrawn, or
    already answered the other way)."""

    def __init__(self, offer_id: str, state: object):
        value = getattr(state, "value", state)
        super().__init__(f"offer {offer_id!r} is {value}, no longer pending")
        self.offer_id = offer_id
        self.state = value


class CallerGoneError(OfferClosedError):
    """Accept of an offer whose caller has hung up (on hold, or while it was offered)."""

    reason = "caller_hung_up"

    def __init__(self, offer_id: str):
        RoutingError.__init__(self, f"offer {offer_id!r} is withdrawn: the caller hung up")
        self.offer_id = offer_id
        self.state = "withdrawn"


class InvalidStateChangeError(RoutingError, ValueError):
    pass


class ConnectFailedError(RoutingError):
    """The agent accepted but the switch could not transfer or bridge the call.
    `retryable` calls were put back in the queue; the others ended."""

    def __init__(self, offer_id: str, detail: str, retryable: bool):
        super().__init__(f"could not connect the call of offer {offer_id!r}: {detail}")
        self.offer_id = offer_id
        self.retryable = retryable


def describe_error(exc: BaseException) -> str:
    """For logs: type and message of errors whose text carries no call data (Redis,
    network, routing), the type alone for anything else (a validation error, say, may
    quote a transcript)."""
    if isinstance(exc, RedisError | OSError | RoutingError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
