"""What the floor (dialer, skill router) may ask of the telephony side, and nothing more.

The ESL controller implements `CallControl` against FreeSWITCH (or the simulator); the
dialer and the skill router code against this protocol, so their logic is tested with
any object that honours it and never learns about ESL framing.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CALLEE_CAUSES",
    "CARRIER_CAUSES",
    "CallControl",
    "CallControlError",
    "CallGoneError",
    "EAVESDROP_MODES",
    "OriginateRequest",
    "OriginateResult",
]

# Hangup causes (FreeSWITCH names) that say the carrier or route failed: the next
# gateway may well succeed. Causes that say the callee declined do not fail over.
CARRIER_CAUSES = frozenset({
    "GATEWAY_DOWN",
    "NORMAL_TEMPORARY_FAILURE",
    "NETWORK_OUT_OF_ORDER",
    "DESTINATION_OUT_OF_ORDER",
    "SWITCH_CONGESTION",
    "NORMAL_CIRCUIT_CONGESTION",
    "RECOVERY_ON_TIMER_EXPIRE",
    "SERVICE_UNAVAILABLE",
    "BEARERCAPABILITY_NOTAVAIL",
    "NO_ROUTE_TRANSIT_NET",
})
CALLEE_CAUSES = frozenset({
    "USER_BUSY",
    "NO_ANSWER",
    "NO_USER_RESPONSE",
    "CALL_REJECTED",
    "UNALLOCATED_NUMBER",
    "INVALID_NUMBER_FORMAT",
    "ORIGINATOR_CANCEL",
    "SUBSCRIBER_ABSENT",
})


class CallControlError(RuntimeError):
    """A call-control request failed (not connected, timed out, rejected). `retryable`
    says whether trying again later may succeed."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class CallGoneError(CallControlError):
    """The call's channel no longer exists (the caller hung up): nothing to retry."""

    def __init__(self, message: str = "the call's channel no longer exists"):
        super().__init__(message, retryable=False)


#: how a supervisor joins a call (FreeSWITCH ``eavesdrop``): hear both sides, speak to
#: the agent only, or speak to both (a three-way call)
EAVESDROP_MODES = ("listen", "whisper", "barge")


class OriginateRequest(BaseModel):
    """One outbound call. `gateways` are tried in order; the call moves to the next one
    only on a carrier-side cause (see CARRIER_CAUSES)."""

    model_config = ConfigDict(extra="forbid")

    call_uuid: str = Field(description="origination_uuid: the call's id from the start")
    destination: str = Field(description="E.164 number to dial")
    gateways: list[str] = Field(min_length=1, description="carrier gateways, in order")
    caller_id_number: str = ""
    caller_id_name: str = ""
    ring_timeout_s: int = Field(30, ge=5, le=300, description="originate_timeout")
    variables: dict[str, str] = Field(default_factory=dict, description="channel variables")


class OriginateResult(BaseModel):
    """How an originate ended. `answered` is True when the callee picked up; otherwise
    `cause` is the FreeSWITCH hangup cause of the last attempt."""

    call_uuid: str
    answered: bool
    cause: str = Field(description="SUCCESS when answered, else the hangup cause")
    gateway: str | None = Field(None, description="gateway of the last attempt")
    attempts: list[tuple[str, str]] = Field(
        default_factory=list, description="(gateway, cause) per attempt, in order"
    )


class CallControl(Protocol):
    """Call control over one telephony switch. Every method raises CallControlError on
    failure; none blocks the event loop."""

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Dial and wait until answered or failed (failing over between gateways)."""
        ...

    async def transfer(self, call_uuid: str, extension: str, context: str = "default") -> None:
        """Send the call to a dialplan extension (e.g. an agent's)."""
        ...

    async def bridge(self, call_uuid: str, other_uuid: str) -> None:
        """Connect two live channels (e.g. the caller and an agent leg)."""
        ...

    async def hangup(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        """End the call with a hangup cause."""
        ...
