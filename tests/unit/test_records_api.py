"""`/records` of the REST API over a real store: the supervisor key and nothing else opens
it, calls list and show with their turns, numbers masked, exports as CSV and Parquet,
the compliance report, and a database that is down answers 503 rather than failing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cluster.store import RecordStore
from deployments.api.records import RecordsAccess, build_records_router
from tests.unit.test_store_repository import T0, call_events

pytestmark = pytest.mark.unit

KEY = "supervisor-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'callfleet.db'}"
    store = RecordStore.open(url)
    store.apply(call_events())
    store.close()
    return url


def make_client(url: str, key: str | None = KEY) -> TestClient:
    access = RecordsAccess(url)
    app = FastAPI()
    app.include_router(build_records_router(lambda: SecretStr(key) if key else None,
                                            lambda: access))
    return TestClient(app)


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    with make_client(url) as c:
        yield c


def test_only_the_supervisor_key_opens_the_records(url):
    with make_client(url) as c:
        assert c.get("/records/calls").status_code == 401
        agent = {"Authorization": "Bearer alice:agent-token"}
        assert c.get("/records/calls", headers=agent).status_code == 403
        assert c.get("/records/calls", headers=AUTH).status_code == 200
    with make_client(url, key=None) as c:  # no key configured: closed
        assert c.get("/records/calls", headers=AUTH).status_code == 503


def test_calls_list_and_show_with_turns_and_masked_numbers(client):
    listing = client.get("/records/calls", params={"campaign": "spring"}, headers=AUTH).json()
    assert listing["total"] == 1
    (call,) = listing["calls"]
    assert call["callee"] == "+14******123" and call["agent_id"] == "alice"
    assert call["started_at"] == T0.isoformat()
    assert client.get("/records/calls", params={"campaign": "autumn"},
                      headers=AUTH).json() == {"total": 0, "calls": []}
    one = client.get(f"/records/calls/{call['call_uuid']}", headers=AUTH).json()
    assert one["turns"][0]["caller_text"] == "where is my order"
    assert one["attempts"][0]["inside_window"] is True
    assert "+14155550123" not in json.dumps(one)
    assert client.get("/records/calls/nope", headers=AUTH).status_code == 404
    assert client.get("/records/calls", params={"since": "yesterday"},
                      headers=AUTH).status_code == 422


def test_exports_as_csv_and_parquet(client, tmp_path):
    response = client.get("/records/calls/export", headers=AUTH)
    assert response.status_code == 200 and response.headers["x-record-count"] == "1"
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    assert row["caller"] == "+12******100"
    response = client.get("/records/calls/export", params={"format": "parquet", "turns": "true"},
                          headers=AUTH)
    path = tmp_path / "turns.parquet"
    path.write_bytes(response.content)
    assert pq.read_table(path).column("bot_reply").to_pylist() == ["Your order ships tomorrow."]


def test_compliance_and_dnc_history(client):
    report = client.get("/records/compliance/spring", params={"at": T0.isoformat()},
                        headers=AUTH).json()
    assert [w["period"] for w in report["abandonment"]] == ["24h", "30d"]
    assert client.get("/records/dnc", headers=AUTH).json() == []


def test_a_database_that_is_down_answers_503(tmp_path):
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    with make_client(unreachable) as c:
        response = c.get("/records/calls", headers=AUTH)
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
