"""How simulated callees and carriers behave: who answers, after how long, who is busy,
which carrier gateway fails and with which cause (FreeSWITCH's names). Seeded, so a
test or a benchmark gets the same calls every run."""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ChannelModel", "DialOutcome", "GatewayModel"]


class GatewayModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    down: bool = Field(False, description="every call fails at once with GATEWAY_DOWN")
    failure_rate: float = Field(0.0, ge=0, le=1, description="share of calls the carrier fails")
    failure_cause: str = "NORMAL_TEMPORARY_FAILURE"


class ChannelModel(BaseModel):
    """The far ends of outbound calls. Rates are shares of calls that reach a callee; the
    remainder of answer+busy+reject+machine rings until the ring timeout (NO_ANSWER)."""

    model_config = ConfigDict(extra="forbid")

    answer_rate: float = Field(0.7, ge=0, le=1, description="a person answers")
    machine_rate: float = Field(0.0, ge=0, le=1, description="an answering machine answers")
    busy_rate: float = Field(0.1, ge=0, le=1, description="USER_BUSY")
    reject_rate: float = Field(0.0, ge=0, le=1, description="CALL_REJECTED")
    ring_s: tuple[float, float] = Field((1.0, 4.0), description="ring time range, seconds")
    gateways: dict[str, GatewayModel] = Field(
        default_factory=lambda: {"carrier-a": GatewayModel(), "carrier-b": GatewayModel()})
    seed: int | None = 7

    @model_validator(mode="after")
    def _shares(self) -> ChannelModel:
        total = self.answer_rate + self.machine_rate + self.busy_rate + self.reject_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"answer+machine+busy+reject rates add up to {total:.2f} > 1")
        lo, hi = self.ring_s
        if not 0 <= lo <= hi:
            raise ValueError("ring_s must be (min, max) with 0 <= min <= max")
        return self

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def draw(self, rng: random.Random, gateway: str, ring_timeout_s: float) -> DialOutcome:
        gw = self.gateways.get(gateway)
        if gw is None:
            return DialOutcome("NO_ROUTE_DESTINATION", 0.0)
        if gw.down:
            return DialOutcome("GATEWAY_DOWN", 0.0)
        if rng.random() < gw.failure_rate:
            return DialOutcome(gw.failure_cause, rng.uniform(0.05, 0.3))
        ring = rng.uniform(*self.ring_s)
        u = rng.random()
        edges = (
            (self.answer_rate, "ANSWER"),
            (self.machine_rate, "MACHINE"),
            (self.busy_rate, "USER_BUSY"),
            (self.reject_rate, "CALL_REJECTED"),
        )
        for share, kind in edges:
            if u < share:
                if kind in ("ANSWER", "MACHINE") and ring > ring_timeout_s:
                    break
                return DialOutcome(kind, min(ring, ring_timeout_s))
            u -= share
        return DialOutcome("NO_ANSWER", float(ring_timeout_s))


@dataclass(frozen=True)
class DialOutcome:
    """`kind` is ANSWER, MACHINE (answered by a machine) or a hangup cause."""

    kind: str
    after_s: float

    @property
    def answered(self) -> bool:
        return self.kind in ("ANSWER", "MACHINE")
