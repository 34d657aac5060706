"""The media side's security settings: the credential a FreeSWITCH media fork must carry
(`ForkAuthSettings`, mounted as ``freeswitch.fork_auth``: the ESL controller issues it,
the media gateway checks it) and the bounds on one call (`CallLimits`, mounted as
``gateway.limits``). See docs/media-fork.md, "Fork credentials and call bounds"."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["MIN_SECRET_CHARS", "CallLimits", "ForkAuthSettings"]

MIN_SECRET_CHARS = 16


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ForkAuthSettings(_Section):
    """Who may open a media fork: FreeSWITCH, with the short-lived per-call credential
    the ESL controller put in the ``uuid_audio_fork`` metadata (HMAC-SHA256 over the call
    id and an expiry, keyed with `secret`)."""

    secret: SecretStr | None = Field(
        None, description="HMAC key shared by the ESL controller and the media gateway. "
        "None: `callfleet up` generates one into <state_dir>/fork-secret (mode 0600) and "
        "uses it; set it explicitly when several machines run `callfleet up` for one floor")
    previous_secret: SecretStr | None = Field(
        None, description="the key before a rotation: credentials it signed are still "
        "accepted (for at most token_ttl_s after the rotation); remove it afterwards")
    token_ttl_s: int = Field(
        60, ge=5, le=3600, description="how long a credential may be used to open its fork "
        "(it is issued when the controller starts the fork; hosts' clocks must agree)")
    allow_unauthenticated: bool | None = Field(
        None, description="accept forks without a credential. null = only when every bind "
        "host is loopback (serve.host, ray.node_ip, no ray.address: local mode). true is "
        "refused unless every bind host is loopback; a credential that is present must "
        "always be valid")

    @field_validator("secret", "previous_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"a fork secret needs at least {MIN_SECRET_CHARS} characters")
        return value


class CallLimits(_Section):
    """Bounds on one media fork and on one gateway replica. Input over a rate or queue
    bound is dropped and counted (the outcome's ``dropped``), so a caller mashing keys keeps
    their call; input that cannot be real (audio faster than real time) closes that fork
    with a reason. No bound touches another call."""

    max_forks: int = Field(
        100, ge=1, le=100_000, description="forks one gateway replica serves at once "
        "(either route, counted from the handshake); more are closed with 1013 try again later")
    max_pending_events: int = Field(
        16, ge=1, le=10_000, description="caller utterances and key presses waiting for "
        "the bot while it is busy; more are dropped and counted")
    dtmf_per_s: float = Field(10.0, gt=0, le=1000, description="key presses a second, sustained "
                              "(DTMF tones take at least ~80 ms each); more are dropped and counted")
    dtmf_burst: int = Field(20, ge=1, le=10_000, description="key presses accepted at once "
                            "before dtmf_per_s applies")
    max_dtmf_digits: int = Field(128, ge=1, le=100_000,
                                 description="key presses kept in the call's outcome record")
    max_call_s: float = Field(
        1800.0, ge=10, le=86_400, description="the bot's part of a call lasts at most this, "
        "counted from the answer (a fork that moved to another replica keeps the count)")
    on_max_call: Literal["goodbye", "handover"] = Field(
        "goodbye", description="at max_call_s: say max_call_message and hang up, or say it "
        "and hand the call to a person")
    max_call_message: str = Field(
        "I'm sorry, we have reached the time limit for this call. Thank you for calling.",
        min_length=1, max_length=500, description="what the bot says at max_call_s")
    max_stored_turns: int = Field(
        500, ge=1, le=100_000, description="turns kept per call in Redis (LTRIM: the latest) "
        "and in the handover")
    realtime_factor: float = Field(
        1.5, gt=1.0, le=100, description="caller audio arriving faster than this times real "
        "time over realtime_window_s closes the fork (1008)")
    realtime_window_s: float = Field(5.0, ge=1.0, le=300, description="window of that check")
