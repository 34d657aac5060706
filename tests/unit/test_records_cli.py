"""`callfleet records` against a real store: migrate an empty database, list and show
calls with masked numbers, export CSV and Parquet, the compliance report and the
do-not-call history, purge by the retention settings, and one clear line (with exit 2
or 1) for an unknown call, a malformed URL or a database that is down."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cluster.cli.main import main
from cluster.records.outbox import event_id, outbox_event
from cluster.store import RecordStore, head_revision
from tests.unit.test_store_repository import CALL, T0, call_events

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Settings whose store is the default: <state_dir>/callfleet.db."""
    path = tmp_path / "settings.yaml"
    path.write_text(f"state_dir: {tmp_path / 'var'}\nrecords:\n  retention_days: 30\n")
    return path


def run(config: Path, *args: str) -> int:
    return main(["--config", str(config), "records", *args])


def fill(config: Path) -> None:
    store = RecordStore.open(f"sqlite:///{config.parent / 'var' / 'callfleet.db'}")
    store.apply(call_events())
    store.apply([json.loads(outbox_event(
        "dnc.change", at=T0.timestamp(), id=event_id(), op="add", scope="global",
        actor="cli:ops", reason="letter of 3 March", source="cli", phones=["+14155550123"]))])
    store.close()


def test_migrate_creates_the_default_sqlite_store(config, capsys):
    assert run(config, "migrate") == 0
    assert f"schema {head_revision()} (upgraded from empty" in capsys.readouterr().err
    assert (config.parent / "var" / "callfleet.db").exists()
    assert run(config, "migrate") == 0
    assert "already current" in capsys.readouterr().err


def test_list_and_show_a_call(config, capsys):
    fill(config)
    assert run(config, "list", "--campaign", "spring") == 0
    listing = capsys.readouterr().out
    assert CALL[:13] in listing and "+14******123" in listing and "alice" in listing
    assert "+14155550123" not in listing
    assert run(config, "list", "--json", "--since", "2026-03-05") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(config, "show", CALL) == 0
    shown = capsys.readouterr().out
    assert "where is my order" in shown and "order_status 0.93" in shown
    assert "11:00:00-05:00" in shown  # the lead's local time at the dial
    assert run(config, "show", CALL, "--json") == 0
    assert json.loads(capsys.readouterr().out)["turns"][0]["asr_ms"] == 620.5


def test_exports(config, capsys, tmp_path):
    fill(config)
    assert run(config, "export") == 0  # CSV to stdout
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["callee"] == "+14******123"
    out = tmp_path / "calls.csv"
    assert run(config, "export", "-o", str(out), "--full-numbers") == 0
    assert "+14155550123" in out.read_text()
    turns = tmp_path / "turns.parquet"
    assert run(config, "export", "--format", "parquet", "--turns", "-o", str(turns)) == 0
    assert "1 turns written" in capsys.readouterr().err
    assert pq.read_table(turns).column("intent").to_pylist() == ["order_status"]
    assert run(config, "export", "--format", "parquet") == 2  # needs a file
    assert "-o FILE" in capsys.readouterr().err


def test_compliance_report_and_dnc_history(config, capsys):
    fill(config)
    assert run(config, "compliance", "spring", "--at", "2026-03-04T17:00") == 0
    report = capsys.readouterr().out
    assert "abandonment 24h: 0 of 1 live-answered" in report
    assert "outside the calling window: 0" in report
    assert run(config, "dnc", "--json") == 0
    (change,) = json.loads(capsys.readouterr().out)
    assert (change["actor"], change["reason"], change["phone"]) == (
        "cli:ops", "letter of 3 March", "+14******123")


def test_purge_follows_the_retention_settings(config, capsys):
    fill(config)  # the call started on 2026-03-04: older than 30 days by now
    assert run(config, "purge", "--dry-run") == 0
    assert "would delete: 1 call_turns, 1 calls" in capsys.readouterr().err
    assert run(config, "purge") == 0
    assert run(config, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_mistakes_and_outages_are_one_line(config, capsys):
    assert run(config, "show", "no-such-call") == 2
    assert "no call 'no-such-call'" in capsys.readouterr().err
    assert run(config, "list", "--store-url", "not a url") == 2
    assert "not a database URL" in capsys.readouterr().err
    assert run(config, "list", "--since", "last week") == 2
    down = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    assert run(config, "list", "--store-url", down) == 1
    err = capsys.readouterr().err
    assert "unavailable" in err and "Traceback" not in err


def test_a_store_without_its_schema_says_how_to_create_it(config, tmp_path, capsys):
    config.write_text(config.read_text() + "  auto_migrate: false\n")
    assert run(config, "list") == 1
    assert "run `callfleet records migrate`" in capsys.readouterr().err
    assert run(config, "migrate") == 0
    assert run(config, "list", "--json") == 0
