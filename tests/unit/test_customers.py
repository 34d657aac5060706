"""Customer profiles: a CSV import keeps the good rows and names each bad one by line
(never by number), profiles are filed under a keyed hash and read back with their history
on SQLite and PostgreSQL, and a call admitted for a known number gets the profile's
fields as bot variables and its VIP tier — from Redis alone."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from cluster.dialer.customers import CustomerKeyer, ProfileLookup, parse_profiles_csv
from cluster.records.call_state import LiveCall
from cluster.records.customers import CUSTOMER_PREFIX, RedisCustomerCache, customer_key
from cluster.store import RecordStore
from cluster.store.customers import CustomerStore, cache_doc
from cluster.store.tickets import NewTicket, TicketStore
from deployments.gateway.fork_admission import ForkAdmission
from tests.unit.test_store_repository import call_events

pytestmark = pytest.mark.unit

SECRET = "profile-key-for-tests-0123456789"
KEYER = CustomerKeyer(SECRET, "US")
CSV = """phone,tier,name,language,orders,segment
+1 (415) 555-0123,Platinum,Ada Lovelace,en,3,retail
4155550124,gold,Bob,en-US,,
not-a-number,gold,Eve,en,,
+14155550125,gold!,Mallory,en,,
+14155550126,,Oscar,english?,,
(415) 555-0123,vip,Ada again,en,,
+14155550127,,Zed,fr,many,
"""


def test_the_import_keeps_good_rows_and_names_bad_ones_by_line():
    result = parse_profiles_csv(CSV, KEYER)
    assert sorted(result.profiles) == ["+14155550123", "+14155550124"]
    ada = result.profiles["+14155550123"]
    assert ada.tier == "platinum" and ada.attributes == {"orders": "3", "segment": "retail"}
    assert [(e.row, e.column) for e in result.errors] == [
        (4, "phone"), (5, "tier"), (6, "language"), (7, "phone"), (8, "orders")]
    assert "line 2" in result.errors[3].message
    text = json.dumps([e.model_dump() for e in result.errors])
    assert "555" not in text and "not-a-number" not in text  # numbers never echoed
    assert result.summary() == {"rows": 7, "accepted": 2, "rejected": 5}


def test_the_key_is_a_keyed_hash_of_the_normalised_number():
    assert KEYER.key("(415) 555-0123") == KEYER.key("+14155550123") == customer_key(
        SECRET, "+14155550123")
    assert CustomerKeyer("another-secret-0123456789abcdef").key("+14155550123") != KEYER.key(
        "+14155550123")
    assert len(KEYER.key("+14155550123")) == 64


def test_profiles_are_stored_by_key_with_their_history(store_url):
    store = RecordStore.open(store_url)
    try:
        store.apply(call_events())  # a call to +14155550123
        key = KEYER.key("+14155550123")
        TicketStore(store).create(NewTicket(subject="x", customer_key=key))
        customers = CustomerStore(store)
        customers.put_many({key: {"tier": "gold", "name": "Ada", "attributes": {"orders": "3"},
                                  "phone_masked": "+14******123"}}, source="csv")
        customers.put_many({key: {"tier": "platinum", "name": "Ada",
                                  "attributes": {"orders": "4"}}}, source="api")
        row = customers.get(key)
        assert row["tier"] == "platinum" and row["source"] == "api"
        history = customers.history(key, "+14155550123", row)
        assert (history["calls"], history["tickets"], history["open_tickets"],
                history["orders"]) == (1, 1, 1, 4)
        assert history["last_contact"] is not None
    finally:
        store.close()


class OneCall:
    def __init__(self, live: LiveCall) -> None:
        self.live = live

    async def lookup(self, call_uuid: str) -> LiveCall:
        return self.live

    async def fork_seen(self, call_uuid: str) -> bool:
        return True

    async def attach(self, call_uuid: str, owner: str, ttl_s: int) -> bool:
        return True

    async def refresh(self, call_uuid: str, owner: str, ttl_s: int) -> bool:
        return True

    async def detach(self, call_uuid: str, owner: str) -> None:
        return None


async def test_a_known_caller_gets_the_profile_as_bot_variables_and_vip(redis_server):
    client = aioredis.from_url(redis_server.url)
    try:
        await client.flushdb()
        cache = RedisCustomerCache(client)
        await cache.put(KEYER.key("+14155550123"), cache_doc(
            {"tier": "platinum", "name": "Ada", "language": "en", "attributes": {"orders": "3"}},
            {"calls": 2, "tickets": 1, "open_tickets": 0, "last_contact": None}))
        assert all(CUSTOMER_PREFIX in k.decode() and "555" not in k.decode()
                   for k in await client.keys("*"))
        lookup = ProfileLookup(cache, KEYER, ["vip", "platinum"])
        live = LiveCall("call-1", "answered", "inbound", caller="4155550123", callee="+1800",
                        variables={"callfleet_customer_segment": "retail"})
        admission = ForkAdmission(None, True, OneCall(live), profiles=lookup)
        customer = await admission._customer(live)
        assert customer == {"name": "Ada", "language": "en", "tier": "platinum", "vip": True,
                            "orders": "3", "calls": 2, "tickets": 1, "open_tickets": 0,
                            "segment": "retail"}
        stranger = LiveCall("call-2", "answered", "inbound", caller="+14155550199")
        assert await admission._customer(stranger) == {}
    finally:
        await client.aclose()


def test_the_cli_imports_good_rows_reports_bad_ones_and_shows_masked(tmp_path, monkeypatch,
                                                                     capsys):
    from cluster.cli.main import main

    monkeypatch.setenv("CALLFLEET_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CALLFLEET_CUSTOMERS__SECRET", SECRET)
    path = tmp_path / "profiles.csv"
    path.write_text(CSV)
    url = ["--store-url", f"sqlite:///{tmp_path / 'callfleet.db'}"]
    assert main(["customers", "import", str(path), *url,
                 "--redis-url", "redis://127.0.0.1:1"]) == 2  # bad rows: status 2
    captured = capsys.readouterr()
    assert "2 profile(s) imported" in captured.out and "not cached" in captured.out
    assert "line 4" in captured.err and "line 8" in captured.err
    assert "555" not in captured.err
    assert main(["customers", "show", "415-555-0123", "--json", *url]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tier"] == "platinum" and doc["phone_masked"] == "+14******123"
    assert main(["customers", "show", "+14155550199", *url]) == 2
    assert "+14155550199" not in capsys.readouterr().err
