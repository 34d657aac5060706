"""`/tickets` and `/customers` of the REST API over a real store: the intake token opens
intake only and an idempotency key makes one ticket; agents see their tickets and their
queues' unassigned ones and may take but not give them away; a customer's VIP tier sets a
ticket's priority; numbers are masked everywhere; `callfleet tickets` lists and closes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cluster.cli.main import main
from configs.tickets import CustomersSettings, TicketsSettings
from deployments.api.agents import AgentApi, AgentApiSettings
from deployments.api.customers import CustomerAccess, build_customers_router
from deployments.api.records import RecordsAccess
from deployments.api.tickets import TicketAccess, build_tickets_router

pytestmark = pytest.mark.unit

KEY, INTAKE = "supervisor-secret", "intake-secret"
SUP = {"Authorization": f"Bearer {KEY}"}
ALICE = {"Authorization": "Bearer alice:token"}
FORM = {"Authorization": f"Bearer {INTAKE}"}


class Agents:
    """The two agent calls the ticket routes make."""

    async def authenticate(self, token: str) -> str | None:
        return token.split(":")[0] if token.endswith(":token") else None

    async def get_agent(self, agent_id: str):
        return SimpleNamespace(profile=SimpleNamespace(skills={"billing": 5}))


@pytest.fixture
def client(tmp_path: Path):
    records = RecordsAccess(f"sqlite:///{tmp_path / 'callfleet.db'}")
    customers = CustomerAccess(records, CustomersSettings(secret="k" * 32))
    access = TicketAccess(AgentApi(Agents(), AgentApiSettings(api_key=SecretStr(KEY))),
                          customers, TicketsSettings(intake_token=SecretStr(INTAKE)))
    app = FastAPI()
    app.include_router(build_tickets_router(lambda: access))
    app.include_router(build_customers_router(lambda: SecretStr(KEY), lambda: customers))
    with TestClient(app) as c:
        yield c


def test_intake_needs_its_token_and_makes_one_ticket_per_key(client):
    form = {"idempotency_key": "form-77", "subject": "Parcel damaged", "channel": "web",
            "phone": "+14155550123", "body": "box crushed"}
    assert client.post("/tickets/intake", json=form).status_code == 401
    assert client.post("/tickets/intake", json=form, headers=SUP).status_code == 401
    first = client.post("/tickets/intake", json=form, headers=FORM).json()
    again = client.post("/tickets/intake", json=form, headers=FORM).json()
    assert first["created"] and not again["created"] and first["id"] == again["id"]
    assert first["phone"] == "+14******123" and first["source"] == "intake"
    bad = client.post("/tickets/intake", json={**form, "phone": "12"}, headers=FORM)
    assert bad.status_code == 422 and "12" not in bad.json()["detail"].split(":")[0]
    assert client.post("/tickets/intake", json={"subject": "no key"},
                       headers=FORM).status_code == 422
    assert client.get("/tickets", headers=FORM).status_code == 401  # intake only


def test_a_vip_profile_makes_a_ticket_urgent(client):
    put = client.put("/customers/4155550123", json={"tier": "Platinum", "name": "Ada"},
                     headers=SUP)
    assert put.status_code == 200 and put.json()["phone_masked"] == "+14******123"
    assert client.put("/customers/4155550123", json={"language": "??"},
                      headers=SUP).status_code == 422
    assert client.get("/customers/4155550123", headers=ALICE).status_code == 403
    ticket = client.post("/tickets", json={"subject": "Card", "phone": "+14155550123"},
                         headers=SUP).json()
    assert ticket["priority"] == 1 and ticket["queue"] == "vip" and ticket["tier"] == "platinum"
    profile = client.get("/customers/+14155550123", headers=SUP).json()
    assert profile["tier"] == "platinum" and profile["history"]["tickets"] == 1
    assert "+14155550123" not in json.dumps(profile)


def test_an_agent_sees_and_changes_only_their_tickets_and_queues(client):
    theirs = client.post("/tickets", json={"subject": "b", "queue": "billing"}, headers=SUP).json()
    other = client.post("/tickets", json={"subject": "s", "queue": "sales"}, headers=SUP).json()
    listed = client.get("/tickets", headers=ALICE).json()
    assert [t["id"] for t in listed] == [theirs["id"]]
    assert client.get(f"/tickets/{other['id']}", headers=ALICE).status_code == 404
    assert client.post(f"/tickets/{theirs['id']}/assign", json={"agent_id": "bob"},
                       headers=ALICE).status_code == 403
    taken = client.post(f"/tickets/{theirs['id']}/assign", json={"agent_id": "alice"},
                        headers=ALICE).json()
    assert taken["assignee"] == "alice"
    assert client.post(f"/tickets/{other['id']}/close", json={}, headers=ALICE).status_code == 404
    closed = client.post(f"/tickets/{theirs['id']}/close", json={"resolution": "done"},
                         headers=ALICE).json()
    assert closed["status"] == "closed"
    assert client.post(f"/tickets/{theirs['id']}/close", json={},
                       headers=SUP).status_code == 409
    mine = client.post("/tickets", json={"subject": "own", "assignee": "alice"},
                       headers=ALICE).json()
    assert mine["created_by"] == "agent:alice"


def test_the_cli_lists_assigns_and_closes(client, tmp_path, capsys):
    made = client.post("/tickets", json={"subject": "Refund", "phone": "+14155550123"},
                       headers=SUP).json()
    url = ["--store-url", f"sqlite:///{tmp_path / 'callfleet.db'}"]
    assert main(["tickets", "assign", made["id"], "carol", *url]) == 0
    assert main(["tickets", "list", "--json", *url]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["assignee"] == "carol" and row["phone"] == "+14******123"
    assert main(["tickets", "close", made["id"], "--resolution", "refunded", *url]) == 0
    assert main(["tickets", "close", made["id"], *url]) == 2  # already closed
    assert main(["tickets", "show", "tk-nope", *url]) == 2
