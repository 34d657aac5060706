"""`DialerSettings`: the dialer's section of the CallFleet settings (mounted by the lead as
`Settings.dialer`). Campaign-specific rules live in each campaign, not here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["DialerSettings"]


class DialerSettings(BaseModel):
    """How the dialer actor runs and how the campaign API is protected."""

    model_config = ConfigDict(extra="forbid")

    max_bot_calls: int = Field(8, ge=1, le=100_000,
                               description="bot calls the floor takes at once (pacing stays under it)")
    tick_s: float = Field(1.0, gt=0.01, le=60.0, description="seconds between pacing decisions")
    answer_poll_s: float = Field(0.1, gt=0.0, le=1.0,
                                 description="how often an answered call re-checks for a free slot")
    heartbeat_ttl_s: int = Field(30, ge=2, le=3_600,
                                 description="the actor's status in Redis expires after this")
    max_call_s: float = Field(4 * 3_600.0, gt=60.0,
                              description="forget a connected call never reported ended after this")
    actor_name: str = Field("callfleet-dialer", description="name of the detached dialer actor")
    namespace: str = Field("callfleet", description="Ray namespace of the actor")
    max_task_retries: int = Field(3, ge=0, le=100, description="retries of an actor call across a restart")
    api_token: SecretStr | None = Field(
        None, description="bearer token of the campaign REST API; None = the API refuses every request")
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024,
                                  description="largest lead CSV the API accepts")
