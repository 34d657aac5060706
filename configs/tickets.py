"""The ``tickets:`` and ``customers:`` settings sections: ticket queues with their service
levels, the intake token other channels use, and the key customer profiles are filed
under (the logic is `cluster.store.tickets` and `cluster.store.customers`; docs/records.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["CustomersSettings", "QueueSla", "TicketsSettings"]


class QueueSla(BaseModel):
    """How fast a queue's tickets must be answered, then resolved (seconds from creation)."""

    model_config = ConfigDict(extra="forbid")

    first_response_s: int = Field(14_400, ge=60, description="a person answers within (4 h)")
    resolution_s: int = Field(259_200, ge=60, description="the ticket is closed within (3 days)")

    @model_validator(mode="after")
    def _ordered(self) -> QueueSla:
        if self.resolution_s < self.first_response_s:
            raise ValueError("resolution_s must not be shorter than first_response_s")
        return self


def _default_queues() -> dict[str, QueueSla]:
    return {"default": QueueSla(),
            "vip": QueueSla(first_response_s=3_600, resolution_s=86_400)}


class TicketsSettings(BaseModel):
    """Tickets from bots, agents and other channels; SLA breaches go to the feed and
    webhooks once each."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    queues: dict[str, QueueSla] = Field(
        default_factory=_default_queues,
        description="queue name -> its deadlines; a ticket of an unlisted queue gets "
        "'default'. A VIP customer's ticket without a queue goes to 'vip' when listed")
    intake_token: SecretStr | None = Field(
        None, description="bearer token of POST /api/tickets/intake (web forms, e-mail "
        "gateways); None = intake closed")
    sla_check_interval_s: float = Field(
        30.0, ge=1, le=3600, description="how often the record writer checks deadlines")

    @field_validator("queues")
    @classmethod
    def _has_default(cls, queues: dict[str, QueueSla]) -> dict[str, QueueSla]:
        if "default" not in queues:
            raise ValueError("tickets.queues needs a 'default' queue")
        return queues

    def sla_for(self, queue: str | None) -> QueueSla:
        return self.queues.get(queue or "default") or self.queues["default"]


class CustomersSettings(BaseModel):
    """Customer profiles are filed under HMAC-SHA256(secret, E.164 number): the store and
    its Redis cache never hold the number as a key."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    secret: SecretStr | None = Field(
        None, description="key of the profile hash; None = generated once into "
        "<state_dir>/customer-secret (mode 0600). Changing it orphans every profile")
    default_country: str = Field("US", min_length=2, max_length=2,
                                 description="country of numbers given without +code")
    vip_tiers: list[str] = Field(["vip", "platinum"],
                                 description="tiers that make a caller a VIP (routing first)")
    cache_ttl_s: int = Field(30 * 86_400, ge=60,
                             description="how long a profile stays in the Redis cache the "
                             "call path reads (refreshed on every import or update)")
