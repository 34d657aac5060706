"""The ``webhooks:`` settings section: where signed events go and how hard we try
(the sender is `cluster.records.webhooks`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["WebhookSettings", "redact_url"]


def redact_url(url: str) -> str:
    """scheme://host[:port]/path — no credentials, query or fragment (they may hold tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"



class WebhookSettings(BaseModel):
    """Where events go and how hard we try (mounted by the lead, e.g. as ``webhooks:``)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list, description="receivers (http or https)")
    secret: SecretStr | None = Field(None, description="HMAC key shared with the receivers; "
                                     "required when urls are set")
    events: list[str] | None = Field(None, description="event types to send (None = all)")
    timeout_s: float = Field(5.0, gt=0, le=60, description="per attempt, connect + response")
    max_attempts: int = Field(5, ge=1, le=20, description="first try plus retries")
    backoff_initial_s: float = Field(0.5, ge=0, le=60, description="wait before the 1st retry")
    backoff_max_s: float = Field(30.0, ge=0, le=3600, description="longest wait between tries")
    max_in_flight: int = Field(16, ge=1, le=1000, description="HTTP requests at once")
    max_pending: int = Field(1000, ge=1, le=1_000_000,
                             description="deliveries waiting or retrying; more are dropped")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook URL {redact_url(url)!r} must be http(s)://host/...")
        return urls

    @model_validator(mode="after")
    def _secret_with_urls(self) -> WebhookSettings:
        if self.urls and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError("webhooks.secret must be set when webhooks.urls are configured")
        return self
