"""Signed webhooks against a real local HTTP receiver (http.server in a thread): the
receiver can verify every delivery, failures are retried, nothing secret is logged."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from cluster.records.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    WebhookSettings,
    sign,
    verify_signature,
)

pytestmark = pytest.mark.unit

SECRET = "s3cret-webhook-key"


class Receiver:
    """A CRM endpoint: answers with the scripted statuses (then 200), verifies every
    request it gets, and can hold its answer until released."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay_s = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({
                    "path": self.path, "body": body, "headers": dict(self.headers),
                    "verified": verify_signature(SECRET, body, self.headers[TIMESTAMP_HEADER],
                                                 self.headers[SIGNATURE_HEADER]),
                })
                receiver.gate.wait(10)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver().start()
    yield rx
    rx.stop()


def settings(url: str, **fields) -> WebhookSettings:
    doc = {"urls": [url], "secret": SECRET, "backoff_initial_s": 0.01, "backoff_max_s": 0.05,
           "timeout_s": 5.0}
    doc.update(fields)
    return WebhookSettings(**doc)


def test_signature_verifies_only_the_exact_body_secret_and_recent_time() -> None:
    body = b'{"event":"offer","data":{"offer_id":"o1"}}'
    now = 1_700_000_000
    header = sign(SECRET, now, body)
    assert header.startswith("v1=")
    assert verify_signature(SECRET, body, str(now), header, now=now + 10)
    assert not verify_signature(SECRET, body + b" ", str(now), header, now=now)
    assert not verify_signature("other-secret", body, str(now), header, now=now)
    assert not verify_signature(SECRET, body, str(now + 1), header, now=now)
    assert not verify_signature(SECRET, body, str(now), header, now=now + 301)  # replay
    assert not verify_signature(SECRET, body, None, header, now=now)
    assert not verify_signature(SECRET, body, "yesterday", header, now=now)
    rotated = f"{sign('old-secret', now, body)}, {header}"
    assert verify_signature(SECRET, body, str(now), rotated, now=now)


async def test_delivery_is_signed_and_retried_after_server_errors(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    sender = WebhookSender(settings(receiver.url))
    try:
        result = await sender.deliver(receiver.url, "offer", {"offer_id": "o1", "reason": "anger"})
    finally:
        await sender.aclose()
    assert result.ok and result.attempts == 3 and result.status == 200
    assert len(receiver.requests) == 3 and all(r["verified"] for r in receiver.requests)
    ids = {r["headers"][DELIVERY_HEADER] for r in receiver.requests}
    assert ids == {result.delivery_id}  # receivers can drop duplicates by this id
    first = receiver.requests[0]
    assert first["headers"][EVENT_HEADER] == "offer"
    assert json.loads(first["body"]) == {"event": "offer",
                                         "data": {"offer_id": "o1", "reason": "anger"}}


async def test_client_errors_are_not_retried_and_attempts_are_bounded(receiver: Receiver) -> None:
    receiver.statuses = [400]
    sender = WebhookSender(settings(receiver.url, max_attempts=3))
    try:
        refused = await sender.deliver(receiver.url, "offer", {})
        receiver.statuses = [500, 500, 500, 500]
        broken = await sender.deliver(receiver.url, "offer", {})
    finally:
        await sender.aclose()
    assert (refused.ok, refused.attempts, refused.status) == (False, 1, 400)
    assert (broken.ok, broken.attempts, broken.error) == (False, 3, "HTTP 500")
    assert sender.stats["failed"] == 2


async def test_a_slow_receiver_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.delay_s = 2.0
    sender = WebhookSender(settings(receiver.url, timeout_s=0.2, max_attempts=2))
    try:
        result = await sender.deliver(receiver.url, "offer", {})
    finally:
        await sender.aclose()
    assert not result.ok and result.attempts == 2 and result.error == "ReadTimeout"


async def test_submit_returns_at_once_and_delivers_in_the_background(receiver: Receiver) -> None:
    receiver.gate.clear()  # the receiver holds every answer until released
    sender = WebhookSender(settings(receiver.url))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    other_work = asyncio.create_task(ticker())
    try:
        assert sender.submit("offer", {"offer_id": "o1"}) == 1
        assert sender.stats["delivered"] == 0
        for _ in range(200):  # the loop keeps running while the receiver stalls
            if ticks >= 5 and receiver.requests:
                break
            await asyncio.sleep(0.01)
        assert ticks >= 5 and sender.stats["delivered"] == 0
        receiver.gate.set()
        await sender.drain(timeout_s=10)
        assert sender.stats["delivered"] == 1 and receiver.requests[0]["verified"]
    finally:
        other_work.cancel()
        await sender.aclose()


async def test_event_filter_and_pending_limit(receiver: Receiver) -> None:
    receiver.gate.clear()
    sender = WebhookSender(settings(receiver.url, events=["offer"], max_pending=2))
    try:
        assert sender.submit("agent_state", {}) == 0
        assert [sender.submit("offer", {"n": n}) for n in range(3)] == [1, 1, 0]
        assert sender.stats["dropped"] == 1
        receiver.gate.set()
        await sender.drain(timeout_s=10)
    finally:
        await sender.aclose()
    assert sender.stats["delivered"] == 2


async def test_secrets_and_url_tokens_stay_out_of_the_logs(
        receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="callfleet.webhooks")
    url = receiver.url + "?token=url-token-123"
    receiver.statuses = [500, 500]
    sender = WebhookSender(settings(url, max_attempts=2))
    try:
        result = await sender.deliver(url, "offer", {"customer": {"phone": "+15551234567"}})
    finally:
        await sender.aclose()
    assert not result.ok and "url-token-123" not in result.url
    assert receiver.requests[0]["path"].endswith("token=url-token-123")  # still sent
    text = caplog.text
    assert "failed" in text
    for secret in (SECRET, "url-token-123", "+15551234567"):
        assert secret not in text
    assert SECRET not in repr(sender.settings)


def test_settings_require_a_secret_and_http_urls() -> None:
    with pytest.raises(ValidationError, match="secret must be set"):
        WebhookSettings(urls=["https://crm.example.com/hook"])
    with pytest.raises(ValidationError, match="http"):
        WebhookSettings(urls=["ftp://crm.example.com/hook"], secret="x")
    assert not WebhookSender(WebhookSettings()).enabled
