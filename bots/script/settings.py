"""The ``bots:`` settings section: where the bot scripts come from and how they reach
their services (pydantic only, cheap to import)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BotScriptSettings"]


class BotScriptSettings(BaseModel):
    """Where the bot scripts come from and how they reach their services (a settings
    section; escalation rules are `bots.escalation.EscalationSettings`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    scripts_dir: str = Field("bots/scripts", description="folder of bot scripts (*.yaml)")
    inbound_script: str = Field("inbound_shop", description="bot name that answers inbound calls")
    services: dict[str, str] = Field(
        default_factory=dict,
        description="base URL per service name, overriding the scripts' own "
                    "(e.g. {orders: http://orders.internal:8765})")
    reload_interval_s: float = Field(10.0, ge=0, le=3600,
                                     description="check scripts for changes this often (0 = never)")
    keep_versions: int = Field(5, ge=1, le=100,
                               description="old versions kept for calls that started on them")
