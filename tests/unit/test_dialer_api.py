"""The campaign REST API over a real Redis: bearer-token auth, create/lifecycle/status,
CSV upload with row-numbered errors and idempotent retries, records, do-not-call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cluster.dialer import DialerSettings, DialerStore
from cluster.runtime.redis_server import EmbeddedRedis
from deployments.api.campaigns import build_campaigns_router
from tests.fakes.dialer import free_port

pytestmark = pytest.mark.unit

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAMPAIGN = {"id": "winter", "bot_script": "shop", "caller_id_number": "+12125550100",
            "gateways": ["carrier-a"]}
LEADS = (Path(__file__).resolve().parents[2] / "configs" / "campaigns" / "spring-offer-leads.csv")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    yield embedded
    embedded.stop()


def make_client(url: str, token: str | None = TOKEN) -> TestClient:
    store = DialerStore(url)
    app = FastAPI()
    app.include_router(build_campaigns_router(lambda: store, DialerSettings(api_token=token)))
    return TestClient(app)


@pytest.fixture
def client(server: EmbeddedRedis) -> Iterator[TestClient]:
    with make_client(server.url) as c:
        yield c


def test_requests_without_the_right_token_are_refused(server):
    with make_client(server.url) as c:
        assert c.get("/campaigns").status_code == 401
        assert c.get("/campaigns", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/campaigns", headers=AUTH).status_code == 200
    with make_client(server.url, token=None) as c:  # no token configured: closed
        assert c.get("/campaigns", headers=AUTH).status_code == 503


def test_create_is_idempotent_and_a_clash_is_a_conflict(client):
    assert client.post("/campaigns", json=CAMPAIGN, headers=AUTH).status_code == 201
    assert client.post("/campaigns", json=CAMPAIGN, headers=AUTH).status_code == 200
    other = {**CAMPAIGN, "bot_script": "other"}
    resp = client.post("/campaigns", json=other, headers=AUTH)
    assert resp.status_code == 409 and "already exists" in resp.json()["detail"]
    bad = client.post("/campaigns", json={**CAMPAIGN, "caller_id_number": "12"}, headers=AUTH)
    assert bad.status_code == 422


def test_lifecycle_through_the_api(client):
    client.post("/campaigns", json=CAMPAIGN, headers=AUTH)
    for action, state in (("start", "running"), ("pause", "paused"), ("pause", "paused"),
                          ("resume", "running"), ("stop", "stopped")):
        resp = client.post(f"/campaigns/winter/{action}", headers=AUTH)
        assert resp.status_code == 200 and resp.json()["state"] == state
    resp = client.post("/campaigns/winter/resume", headers=AUTH)
    assert resp.status_code == 409 and "stopped" in resp.json()["detail"]
    assert client.post("/campaigns/nope/start", headers=AUTH).status_code == 404
    assert client.get("/campaigns/winter", headers=AUTH).json()["state"] == "stopped"


def test_csv_upload_reports_bad_rows_and_a_retry_adds_nothing(client):
    client.post("/campaigns", json=CAMPAIGN, headers=AUTH)
    body = LEADS.read_bytes()
    headers = {**AUTH, "Content-Type": "text/csv", "Idempotency-Key": "upload-1"}
    first = client.post("/campaigns/winter/leads", content=body, headers=headers)
    assert first.status_code == 200
    report = first.json()
    assert (report["rows"], report["added"], report["rejected"], report["duplicates"]) == (15, 9, 5, 1)
    assert {e["row"] for e in report["errors"]} == {8, 10, 11, 12, 15}
    again = client.post("/campaigns/winter/leads", content=body, headers=headers)
    assert again.json() == report  # same key: the first report, nothing added
    fresh = client.post("/campaigns/winter/leads", content=body,
                        headers={**AUTH, "Content-Type": "text/csv"})
    assert fresh.json()["added"] == 0 and fresh.json()["duplicates"] == 10
    status = client.get("/campaigns/winter", headers=AUTH).json()
    assert status["leads"]["ready"] == 9
    wrong_type = client.post("/campaigns/winter/leads", content=body,
                             headers={**AUTH, "Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    no_phone = client.post("/campaigns/winter/leads", content=b"name\nAda\n",
                           headers={**AUTH, "Content-Type": "text/csv"})
    assert no_phone.status_code == 422 and "phone" in no_phone.json()["detail"]


def test_dnc_and_records_endpoints(client):
    client.post("/campaigns", json=CAMPAIGN, headers=AUTH)
    resp = client.post("/campaigns/dnc", json={"numbers": ["(212) 555-0101"]}, headers=AUTH)
    assert resp.json() == {"scope": "global", "added": 1}
    resp = client.post("/campaigns/winter/dnc", json={"numbers": ["+12125550102"]}, headers=AUTH)
    assert resp.json() == {"scope": "winter", "added": 1}
    assert client.post("/campaigns/dnc", json={"numbers": ["12"]}, headers=AUTH).status_code == 422
    assert client.get("/campaigns/winter/records", headers=AUTH).json() == []
    csv_resp = client.get("/campaigns/winter/records?format=csv&since=2026-01-01", headers=AUTH)
    assert csv_resp.text.startswith("attempt_id,lead_id,")
    assert client.get("/campaigns/winter/records?since=yesterday", headers=AUTH).status_code == 422
