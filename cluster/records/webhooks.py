"""Signed webhooks: tell a CRM or agent desktop what happened, and let it prove the
message came from us.

Every delivery is a ``POST`` of a JSON body with these headers:

* ``X-CallFleet-Event`` — the event type (``offer``, ``offer_closed``, ``overflow`` ...)
* ``X-CallFleet-Delivery`` — one id per event and URL, the same on every retry, so a
  receiver can drop duplicates
* ``X-CallFleet-Timestamp`` — Unix seconds when this attempt was signed
* ``X-CallFleet-Signature`` — ``v1=<hex>``: HMAC-SHA256 with the shared secret over
  ``<timestamp>.`` followed by the raw body bytes

Receivers call `verify_signature` on the raw body (before parsing it) and reject stale
timestamps, which stops replays. Deliveries run as background tasks with a timeout per
attempt and exponential backoff with jitter between attempts; 5xx, 408, 429 and network
errors are retried, other 4xx are not. The secret and URL query strings never reach the
logs (URLs may carry tokens); bodies carry customer data and are never logged either.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from configs.webhooks import WebhookSettings, redact_url

__all__ = [
    "DeliveryResult",
    "EVENT_HEADER",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSender",
    "WebhookSettings",
    "sign",
    "verify_signature",
]

log = logging.getLogger("callfleet.webhooks")

EVENT_HEADER = "X-CallFleet-Event"
DELIVERY_HEADER = "X-CallFleet-Delivery"
TIMESTAMP_HEADER = "X-CallFleet-Timestamp"
SIGNATURE_HEADER = "X-CallFleet-Signature"
_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DeliveryResult:
    """How one event reached (or failed to reach) one URL (query string redacted)."""

    url: str
    event: str
    delivery_id: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None = None


def _key(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes | SecretStr, timestamp: int | str, body: bytes) -> str:
    """The ``X-CallFleet-Signature`` value for `body` signed at `timestamp`."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str | bytes | SecretStr, body: bytes, timestamp: str | None,
                     signature: str | None, *, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """True when `signature` (the header value, possibly several comma-separated ``v1=``
    entries during a key rotation) signs `body` at `timestamp` with `secret`, and the
    timestamp is within `tolerance_s` of `now`. Compares in constant time."""
    if not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = sign(secret, sent_at, body).encode()
    matched = False
    for candidate in signature.split(","):
        # check every entry so the time taken does not depend on which one matches
        matched |= hmac.compare_digest(expected, candidate.strip().encode())
    return matched


class WebhookSender:
    """Delivers events to every configured URL in the background.

    `submit` never waits for the network; `deliver` is the awaitable single delivery
    (with retries) it schedules. Call `aclose` on shutdown to finish or cancel what is
    still pending. Must be used from one event loop.
    """

    def __init__(self, settings: WebhookSettings, *, client: httpx.AsyncClient | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] = asyncio.sleep):
        self.settings = settings
        self._client = client
        self._own_client = client is None
        self._clock = clock
        self._sleep = sleep
        self._tasks: set[asyncio.Task] = set()
        self._limit: asyncio.Semaphore | None = None
        self.stats = {"delivered": 0, "failed": 0, "dropped": 0}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    def wants(self, event: str) -> bool:
        return self.enabled and (self.settings.events is None or event in self.settings.events)

    def submit(self, event: str, payload: dict[str, Any]) -> int:
        """Queue `event` for every URL; returns how many deliveries were queued (0 when
        the event is filtered out or the pending limit is reached)."""
        if not self.wants(event):
            return 0
        body = json.dumps({"event": event, "data": payload}, separators=(",", ":"),
                          default=str).encode()
        queued = 0
        for url in self.settings.urls:
            if len(self._tasks) >= self.settings.max_pending:
                self.stats["dropped"] += 1
                log.warning("webhook %s to %s dropped: %d deliveries already pending",
                            event, redact_url(url), len(self._tasks))
                continue
            task = asyncio.get_running_loop().create_task(self._deliver_body(url, event, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            queued += 1
        return queued

    async def deliver(self, url: str, event: str, payload: dict[str, Any]) -> DeliveryResult:
        """Deliver one event to one URL now, retrying as configured."""
        body = json.dumps({"event": event, "data": payload}, separators=(",", ":"),
                          default=str).encode()
        return await self._deliver_body(url, event, body)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for pending deliveries (all retries included)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Give pending deliveries `timeout_s`, cancel the rest, close the HTTP client."""
        await self.drain(timeout_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- internals --------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        cfg = self.settings
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), cfg.backoff_max_s)
        base = min(cfg.backoff_initial_s * (2 ** (attempt - 1)), cfg.backoff_max_s)
        return base * (0.5 + random.random() / 2)  # jitter: spread retries of many events

    async def _deliver_body(self, url: str, event: str, body: bytes) -> DeliveryResult:
        cfg = self.settings
        if self._limit is None:
            self._limit = asyncio.Semaphore(cfg.max_in_flight)
        delivery_id = uuid.uuid4().hex
        where = redact_url(url)
        status: int | None = None
        error: str | None = None
        for attempt in range(1, cfg.max_attempts + 1):
            timestamp = int(self._clock())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "CallFleet-Webhooks/1",
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(cfg.secret or "", timestamp, body),
            }
            retry_after = None
            try:
                async with self._limit:
                    response = await self._http().post(url, content=body, headers=headers,
                                                       timeout=cfg.timeout_s)
                status, error = response.status_code, None
                if 200 <= status < 300:
                    self.stats["delivered"] += 1
                    log.debug("webhook %s delivered to %s (attempt %d)", event, where, attempt)
                    return DeliveryResult(where, event, delivery_id, True, attempt, status)
                error = f"HTTP {status}"
                if status < 500 and status not in _RETRY_STATUSES:
                    break  # the receiver refuses this request; retrying will not help
                retry_after = response.headers.get("Retry-After")
            except httpx.HTTPError as exc:
                status, error = None, type(exc).__name__
            if attempt < cfg.max_attempts:
                delay = self._backoff(attempt, retry_after)
                log.info("webhook %s to %s failed (%s), attempt %d/%d; retrying in %.1fs",
                         event, where, error, attempt, cfg.max_attempts, delay)
                await self._sleep(delay)
        self.stats["failed"] += 1
        log.warning("webhook %s to %s failed for good after %d attempt(s): %s",
                    event, where, attempt, error)
        return DeliveryResult(where, event, delivery_id, False, attempt, status, error)
