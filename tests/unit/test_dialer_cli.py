"""`callfleet campaign` against a real Redis: create, import, lifecycle, status, records
export, do-not-call, and clear exit codes for mistakes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.cli.main import main
from cluster.dialer import Dialer, DialerSettings, DialerStore
from cluster.runtime.redis_server import EmbeddedRedis
from tests.fakes.dialer import WEDNESDAY_AFTERNOON, Clock, FakeFloor, free_port
from tests.fakes.switch import FakeSwitch

pytestmark = pytest.mark.unit

CAMPAIGNS = Path(__file__).resolve().parents[2] / "configs" / "campaigns"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    embedded = EmbeddedRedis(tmp_path, free_port())
    embedded.start()
    yield embedded.url
    embedded.stop()


def run(url: str, *args: str) -> int:
    return main(["campaign", *args, "--redis-url", url])


def test_a_campaign_from_file_to_records(url, capsys, tmp_path):
    assert run(url, "create", str(CAMPAIGNS / "spring-offer.yaml")) == 0
    assert run(url, "create", str(CAMPAIGNS / "spring-offer.yaml")) == 0  # identical: no-op
    assert run(url, "import-leads", "spring-offer", str(CAMPAIGNS / "spring-offer-leads.csv"),
               "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["rejected"], report["duplicates"]) == (9, 5, 1)
    assert run(url, "start", "spring-offer") == 0
    assert run(url, "pause", "spring-offer") == 0
    assert run(url, "resume", "spring-offer") == 0

    asyncio.run(_dial_once(url))  # the dialer places the calls (fake switch)

    assert run(url, "status", "spring-offer", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "running" and status["counts"]["attempts"] == 9
    out = tmp_path / "records.csv"
    assert run(url, "records", "spring-offer", "--days", "30000", "-o", str(out)) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 9
    assert {row["result"] for row in rows} == {"connected"}
    assert all(row["abandoned"] == "False" and row["cause"] == "SUCCESS" for row in rows)
    assert "+1" not in out.read_text()  # records name leads by id, not number
    assert run(url, "records", "spring-offer", "--format", "json", "--since", "2000-01-01") == 0
    assert len(json.loads(capsys.readouterr().out)) == 9


async def _dial_once(url: str) -> None:
    store = DialerStore(url)
    floor = FakeFloor(slots=20)
    # Wednesday 18:00 UTC: New York office hours, and 10:00-18:00 local for every lead
    # (at 16:00 the Los Angeles leads would wait for their 09:00)
    clock = Clock(WEDNESDAY_AFTERNOON + 2 * 3600)
    dialer = Dialer(store, FakeSwitch(), floor, floor, DialerSettings(), clock=clock)
    await dialer.tick()
    await dialer.close()
    await store.close()


def test_mistakes_exit_with_2_and_say_what_is_wrong(url, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: Bad Id\nbot_script: shop\ncaller_id_number: '123'\ngateways: []\n")
    assert run(url, "create", str(bad)) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err and "caller_id_number" in err and "gateways" in err
    assert run(url, "start", "ghost") == 2
    assert "no campaign 'ghost'" in capsys.readouterr().err
    assert run(url, "create", str(CAMPAIGNS / "spring-offer.yaml")) == 0
    assert run(url, "stop", "spring-offer") == 0
    assert run(url, "resume", "spring-offer") == 2
    assert "cannot resume" in capsys.readouterr().err
    no_phone = tmp_path / "leads.csv"
    no_phone.write_text("name\nAda\n")
    assert run(url, "import-leads", "spring-offer", str(no_phone)) == 2
    assert "no phone column" in capsys.readouterr().err
    assert run(url, "records", "spring-offer", "--since", "last tuesday") == 2


def test_do_not_call_list(url, capsys):
    assert run(url, "dnc", "add", "(212) 555-0101") == 0
    assert run(url, "dnc", "check", "+12125550101", "212-555-0102") == 0
    out = capsys.readouterr().out
    assert "+12125550101\tdo-not-call" in out and "+12125550102\tcallable" in out
    assert run(url, "dnc", "remove", "+12125550101") == 0
    assert run(url, "dnc", "add", "12") == 2


def test_without_a_cluster_the_command_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CALLFLEET_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CALLFLEET_REDIS_URL", raising=False)
    assert main(["campaign", "status"]) == 2
    assert "callfleet up" in capsys.readouterr().err
