"""`callfleet records`: the durable store of calls and the compliance ledger.

    callfleet records list [--campaign ID] [--agent ID] [--since T] [--until T] [--json]
    callfleet records show CALL_UUID [--json]          one call, its turns and dial attempts
    callfleet records export --format csv|parquet -o FILE [--turns] [--full-numbers]
    callfleet records compliance CAMPAIGN [--json]     abandonment 24 h / 30 d, windows, DNC
    callfleet records dnc [--phone N] [--scope S]      do-not-call changes: who, when, why
    callfleet records migrate                          upgrade the schema (Alembic)
    callfleet records purge [--dry-run]                apply the retention settings now
    callfleet records outbox                           events not yet in SQL, dead letters

The store is ``store_url`` (``--store-url`` overrides it; unset: the SQLite file
``<state_dir>/callfleet.db``). Phone numbers are masked in every listing and export;
``export --full-numbers`` writes them in full, for an operator on this machine. Times
(``--since``/``--until``) are ISO dates or times in UTC (``2026-03-01``,
``2026-03-01T09:00``) or ages (``24h``, ``7d``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from cluster.cli.common import (
    EXIT_UNAVAILABLE,
    CliError,
    console,
    out,
    redis_url,
    redis_url_option,
    reports_errors,
)
from configs.settings import load_settings

_AGE = re.compile(r"^(\d+(?:\.\d+)?)([hdm])$")


def _store_errors() -> tuple[type[Exception], ...]:
    from cluster.store import StoreUnavailable  # heavy: SQLAlchemy, only once something failed

    return (StoreUnavailable, OSError)


def _open(args: argparse.Namespace):
    """The store named by --store-url or the settings, migrated when auto_migrate (or
    when the command is `migrate`)."""
    from sqlalchemy.exc import ArgumentError  # heavy: SQLAlchemy

    from cluster.store import RecordStore  # heavy: SQLAlchemy and Alembic

    settings = load_settings(getattr(args, "config", None))
    url = getattr(args, "store_url", None) or settings.store_url
    try:
        return RecordStore.open(url, auto_migrate=settings.records.auto_migrate), settings
    except ArgumentError:
        raise CliError(f"store_url {url!r} is not a database URL (e.g. "
                       "postgresql+psycopg://user@host/db or sqlite:///path.db)") from None


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    age = _AGE.match(text.strip())
    if age:
        unit = {"h": "hours", "d": "days", "m": "minutes"}[age.group(2)]
        return datetime.now(timezone.utc) - timedelta(**{unit: float(age.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"cannot read {text!r} as a time: an ISO date or time (2026-03-01, "
                       "2026-03-01T09:00) or an age (24h, 7d)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _query(args: argparse.Namespace, limit: int | None):
    from cluster.store import CallQuery  # heavy: SQLAlchemy

    return CallQuery(campaign=args.campaign, agent=getattr(args, "agent", None),
                     direction=getattr(args, "direction", None), since=_when(args.since),
                     until=_when(args.until), limit=limit)


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@reports_errors(unavailable=_store_errors)
def cmd_list(args: argparse.Namespace) -> int:
    from cluster.store.export import jsonable  # heavy: SQLAlchemy

    store, _ = _open(args)
    try:
        rows = store.list_calls(_query(args, args.limit))
    finally:
        store.close()
    if args.json:
        print(json.dumps([jsonable(r) for r in rows], indent=2))
        return 0
    table = Table(title=f"{len(rows)} call(s), newest first (UTC)", title_justify="left")
    for column in ("started", "call", "dir", "campaign", "caller", "bot/variant", "outcome",
                   "agent", "turns"):
        table.add_column(column)
    for row in (jsonable(r) for r in rows):
        number = row["caller"] if row["direction"] == "inbound" else row["callee"]
        ending = row["disposition"] or row["outcome"] or row["dial_result"] or ""
        if row["abandoned"]:
            ending = "abandoned"
        table.add_row(
            (row["started_at"] or "-")[:19].replace("T", " "), row["call_uuid"][:13],
            row["direction"] or "-", row["campaign_id"] or "-", number or "-",
            "/".join(x for x in (row["bot"], row["variant"]) if x) or "-",
            escape(ending[:40]), row["agent_id"] or "-", str(row["turn_count"] or 0))
    out.print(table)
    return 0


@reports_errors(unavailable=_store_errors)
def cmd_show(args: argparse.Namespace) -> int:
    from cluster.store.export import jsonable  # heavy: SQLAlchemy

    store, _ = _open(args)
    try:
        call = store.get_call(args.call_uuid)
    finally:
        store.close()
    if call is None:
        raise CliError(f"no call {args.call_uuid!r} in the store (records reach it through "
                       "the writer; `callfleet records outbox` shows what is waiting)")
    turns = [jsonable(t) for t in call.pop("turns")]
    attempts = [jsonable(a) for a in call.pop("attempts")]
    callbacks = [jsonable(a) for a in call.pop("callback_attempts")]
    doc = jsonable(call)
    if args.json:
        print(json.dumps({**doc, "turns": turns, "attempts": attempts,
                          "callback_attempts": callbacks}, indent=2))
        return 0
    for key, value in doc.items():
        if value not in (None, "", False) or key == "abandoned":
            out.print(f"[bold]{key:<18}[/bold] {escape(str(value))}")
    for attempt in attempts:
        out.print(f"[bold]{'dial attempt':<18}[/bold] {attempt['attempt_id']}: "
                  f"{attempt['result']} ({attempt['cause']}), lead local time "
                  f"{attempt['local_time'] or '?'} in window "
                  f"{attempt['window_start'] or '?'}-{attempt['window_end'] or '?'}")
    if doc["callback_lead_id"]:
        placed = "; ".join(f"{a['attempt_id']} {a['result']} at {a['started_at']}"
                           for a in callbacks) or "not placed yet"
        out.print(f"[bold]{'callback':<18}[/bold] due {doc['callback_due_at']} as lead "
                  f"{doc['callback_lead_id']}: {placed}")
    for turn in turns:
        said = turn["caller_text"] if turn["kind"] == "speech" else (
            f"[keys {turn['dtmf']}]" if turn["kind"] == "dtmf" else "[silence]")
        heard = ", ".join(x for x in (
            f"{turn['intent']} {turn['intent_confidence']:.2f}" if turn["intent"] else "",
            turn["emotion"] or "") if x)
        latency = f"{turn['first_audio_ms']:.0f} ms" if turn["first_audio_ms"] else "-"
        out.print(f"\n[bold]{turn['turn_index']:>3}[/bold] caller: {escape(said or '')}"
                  f"  [dim]({escape(heard)})[/dim]")
        out.print(f"    bot:    {escape(turn['bot_reply'] or '')}  [dim](first audio {latency})[/dim]")
    return 0


@reports_errors(unavailable=_store_errors)
def cmd_export(args: argparse.Namespace) -> int:
    from cluster.store.export import (  # heavy: SQLAlchemy, pyarrow for Parquet
        CALL_COLUMNS,
        TURN_COLUMNS,
        write_csv,
        write_parquet,
    )
    from cluster.store.models import Call, CallTurn  # heavy: SQLAlchemy

    if args.format == "parquet" and not args.output:
        raise CliError("a Parquet export needs a file: -o FILE")
    store, _ = _open(args)
    query = _query(args, None)
    try:
        rows = store.iter_turns(query) if args.turns else store.iter_calls(query)
        columns = TURN_COLUMNS if args.turns else CALL_COLUMNS
        mask = not args.full_numbers
        if args.format == "parquet":
            table = CallTurn.__table__ if args.turns else Call.__table__
            count = write_parquet(rows, table, columns, Path(args.output), mask=mask)
        elif args.output:
            with open(args.output, "w", newline="") as handle:
                count = write_csv(rows, columns, handle, mask=mask)
        else:
            count = write_csv(rows, columns, sys.stdout, mask=mask)
    finally:
        store.close()
    what = "turns" if args.turns else "calls"
    if args.output:
        console.print(f"{count} {what} written to {args.output}")
    return 0


@reports_errors(unavailable=_store_errors)
def cmd_compliance(args: argparse.Namespace) -> int:
    store, _ = _open(args)
    try:
        report = store.compliance(args.campaign_id, _when(args.at))
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    out.print(f"[bold]campaign {escape(args.campaign_id)}[/bold] at {report['at']} "
              "(from the durable store alone)")
    for window in report["abandonment"]:
        out.print(f"  abandonment {window['period']:>3}: {window['abandoned']} of "
                  f"{window['answered']} live-answered = {window['rate']:.2%}")
    out.print(f"  dial attempts 30d: {report['attempts_30d']}, outside the calling window: "
              f"{report['dialled_outside_window_30d']}, window not recorded: "
              f"{report['window_not_recorded_30d']}")
    out.print(f"  leads deferred for their window 30d: {report['deferred_for_window_30d']}")
    dnc = report["dnc_changes_30d"]
    out.print(f"  do-not-call changes 30d (global + campaign): {dnc['add']} added, "
              f"{dnc['remove']} removed")
    return 0


@reports_errors(unavailable=_store_errors)
def cmd_dnc(args: argparse.Namespace) -> int:
    from cluster.store.export import jsonable  # heavy: SQLAlchemy

    store, _ = _open(args)
    try:
        rows = store.dnc_changes(phone=args.phone, scope=args.scope, since=_when(args.since),
                                 limit=args.limit)
    finally:
        store.close()
    docs = [jsonable(r) for r in rows]
    if args.json:
        print(json.dumps(docs, indent=2))
        return 0
    table = Table(title=f"{len(docs)} do-not-call change(s), newest first (UTC)",
                  title_justify="left")
    for column in ("at", "op", "number", "scope", "who", "why", "via", "call"):
        table.add_column(column)
    for d in docs:
        table.add_row(d["at"][:19].replace("T", " "), d["op"], d["phone"], d["scope"],
                      escape(d["actor"] or "-"), escape(d["reason"] or "-"), d["source"] or "-",
                      (d["call_uuid"] or "-")[:13])
    out.print(table)
    return 0


@reports_errors(unavailable=_store_errors)
def cmd_migrate(args: argparse.Namespace) -> int:
    from cluster.store import RecordStore, head_revision  # heavy: SQLAlchemy and Alembic

    settings = load_settings(getattr(args, "config", None))
    store = RecordStore(_engine(args.store_url or settings.store_url))
    try:
        before = store.revision()
        after = store.migrate()
    finally:
        store.close()
    state = "already current" if before == after else f"upgraded from {before or 'empty'}"
    console.print(f"store {store.url}: schema {after} ({state}; newest shipped: {head_revision()})")
    return 0


def _engine(url: str):
    from sqlalchemy.exc import ArgumentError  # heavy: SQLAlchemy

    from cluster.store import make_engine  # heavy: SQLAlchemy

    try:
        return make_engine(url)
    except ArgumentError:
        raise CliError(f"store_url {url!r} is not a database URL") from None


@reports_errors(unavailable=_store_errors)
def cmd_purge(args: argparse.Namespace) -> int:
    store, settings = _open(args)
    records = settings.records
    try:
        counts = store.purge(datetime.now(timezone.utc), records.retention_days,
                             records.compliance_retention_days, dry_run=args.dry_run)
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    kept = (f"calls kept {records.retention_days or 'forever'} day(s), compliance "
            f"{records.compliance_retention_days or 'forever'} day(s)")
    if not counts:
        console.print(f"nothing to purge: retention is off ({kept})")
    else:
        console.print(f"{verb}: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f" ({kept})")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis  # Redis only for this command
    from redis.exceptions import RedisError  # Redis only for this command

    from cluster.records.outbox import DEAD_LETTERS, Outbox  # the outbox module loads redis

    async def main() -> tuple[dict[str, int], list[Any]]:
        client = aioredis.from_url(redis_url(args), socket_timeout=5, socket_connect_timeout=5)
        try:
            backlog = await Outbox(client).backlog()
            dead = await client.xrevrange(DEAD_LETTERS, count=args.dead)
            return backlog, dead
        finally:
            await client.aclose()

    try:
        backlog, dead = asyncio.run(main())
    except (RedisError, OSError) as exc:
        raise CliError(f"cannot reach Redis ({type(exc).__name__}); is the cluster up?",
                       exit_code=EXIT_UNAVAILABLE) from None
    console.print(f"outbox: {backlog['waiting']} event(s) not yet in SQL "
                  f"({backlog['pending']} read by the writer, not yet acknowledged); "
                  f"{backlog['dead']} dead letter(s)")
    for entry_id, fields in dead:
        error = fields.get(b"error", b"").decode(errors="replace")
        out.print(f"  dead {entry_id.decode()}: {escape(error)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("records", help="calls and the compliance ledger in the durable "
                              "SQL store", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="records_command", required=True, metavar="ACTION")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store-url", metavar="URL",
                       help="database (default: store_url from the settings)")
    calls = argparse.ArgumentParser(add_help=False)
    calls.add_argument("--campaign", metavar="ID")
    calls.add_argument("--since", metavar="T", help="calls started at or after (ISO or 7d, 24h)")
    calls.add_argument("--until", metavar="T", help="calls started before")

    s = sub.add_parser("list", parents=[store, calls], help="calls, newest first")
    s.add_argument("--agent", metavar="ID")
    s.add_argument("--direction", choices=("inbound", "outbound"))
    s.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", parents=[store], help="one call: its record, attempts and turns")
    s.add_argument("call_uuid")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("export", parents=[store, calls], help="calls (or their turns) as CSV "
                       "or Parquet")
    s.add_argument("--format", choices=("csv", "parquet"), default="csv")
    s.add_argument("-o", "--output", metavar="FILE", help="file (CSV: default stdout)")
    s.add_argument("--turns", action="store_true", help="one row per turn instead of per call")
    s.add_argument("--agent", metavar="ID")
    s.add_argument("--full-numbers", action="store_true",
                   help="write phone numbers in full (default: masked)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("compliance", parents=[store], help="a campaign's abandonment over 24 h "
                       "and 30 days, calling-window decisions, do-not-call changes")
    s.add_argument("campaign_id")
    s.add_argument("--at", metavar="T", help="as of this time (default now)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_compliance)

    s = sub.add_parser("dnc", parents=[store], help="do-not-call changes: who, when, why")
    s.add_argument("--phone", metavar="E164", help="one number's history")
    s.add_argument("--scope", metavar="S", help="'global' or a campaign id")
    s.add_argument("--since", metavar="T")
    s.add_argument("--limit", type=int, default=200)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dnc)

    s = sub.add_parser("migrate", parents=[store], help="create or upgrade the schema")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("purge", parents=[store], help="delete what is past the retention "
                       "settings (records.retention_days, records.compliance_retention_days)")
    s.add_argument("--dry-run", action="store_true", help="count only")
    s.set_defaults(func=cmd_purge)

    s = sub.add_parser("outbox", parents=[redis_url_option()],
                       help="events waiting for the record writer, and dead letters")
    s.add_argument("--dead", type=int, default=10, metavar="N", help="show the last N dead letters")
    s.set_defaults(func=cmd_outbox)
