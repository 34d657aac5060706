"""How a call survives losing its media fork (``freeswitch.fork_recovery``): when
mod_audio_fork reports that the fork's websocket dropped while the channel is still up
(the gateway replica died, a load balancer cut it), the ESL controller starts the fork
again, to the same media URL (the load balancer or Serve route picks a healthy replica),
with a fresh credential; the replica that takes it resumes the call from Redis. See
docs/reliability.md, "A lost gateway replica"."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_RESUME_PROMPT", "ForkRecoverySettings"]

DEFAULT_RESUME_PROMPT = "Sorry, we had a short interruption. Let's carry on."


class ForkRecoverySettings(BaseModel):
    """Bounded re-forks with backoff; after the last one the call goes to
    ``freeswitch.fallback_extension`` (people) or is hung up with a clear cause."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    attempts: int = Field(
        3, ge=1, le=10, description="fork starts tried for one call before it is rescued "
        "(the first fork counts; a re-fork after a drop starts a new count)")
    backoff_s: float = Field(
        0.25, ge=0, le=10, description="wait before the second start; doubled for each "
        "start after it (0.25, 0.5, 1 s ...)")
    connect_wait_s: float = Field(
        1.5, gt=0, le=30, description="how long one start may take to report "
        "mod_audio_fork::connect before it counts as failed")
    max_forks: int = Field(
        6, ge=1, le=50, description="media forks one call may have in all (a gateway that "
        "keeps refusing it must not keep it in a loop); then it is rescued")
    rescue_cause: str = Field(
        "MEDIA_TIMEOUT", pattern=r"^[A-Z_]{2,64}$", description="hangup cause when no "
        "fork could be started and there is no fallback_extension")
