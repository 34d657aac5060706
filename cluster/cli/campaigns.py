"""`callfleet campaign` — outbound campaigns in the cluster's Redis.

    callfleet campaign create FILE.yaml [--update]     validate and store a campaign
    callfleet campaign import-leads ID FILE.csv        add leads; bad rows listed by row
    callfleet campaign start|pause|resume|stop ID      lifecycle (repeating one is a no-op)
    callfleet campaign status [ID] [--json]            state, leads, 30-day abandonment
    callfleet campaign records ID [--days N] [--format csv|json] [-o FILE]
    callfleet campaign dnc add|remove|check NUMBER... [--campaign ID]
    callfleet campaign ab-report NAME [--alpha A] [--min-calls N] [--json]

The commands only change Redis; the dialer actor picks changes up on its next tick. The
Redis is the running cluster's (``<state_dir>/run/cluster.json``, written by `callfleet
up`), the configured ``redis_url``, or ``--redis-url``. Mistakes in what was asked
(unknown campaign, invalid file, a transition the state does not allow) exit with 2.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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
from cluster.dialer import (
    CampaignConfig,
    CampaignExists,
    CampaignNotFound,
    DialerStore,
    InvalidTransition,
    LeadFileError,
    parse_leads_csv,
)
from cluster.dialer.campaign import ABTestConfig
from cluster.dialer.phone import PhoneNumberError, normalise_e164
from cluster.dialer.scoring import registered_scorer
from cluster.records.conversations import RedisConversionCounter
from configs.settings import load_settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``campaign`` and its actions on the top-level `subparsers`."""
    campaign = subparsers.add_parser(
        "campaign", help="create, feed, start/pause/stop and inspect outbound campaigns",
        description="Manage outbound campaigns in the cluster's Redis: create one from YAML, "
        "import leads from CSV, move it through its lifecycle, and export the compliance "
        "records of every dial attempt. See docs/dialer.md.")
    common = redis_url_option()
    sub = campaign.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")

    p = sub.add_parser("create", parents=[common], help="validate a campaign YAML and store it",
                       description="Validate a campaign YAML (every problem is listed) and store "
                       "it as a new campaign in state 'created'. Creating the identical campaign "
                       "again is a no-op; --update replaces the settings of an existing one.")
    p.add_argument("file", metavar="FILE.yaml", help="campaign file (see configs/campaigns/)")
    p.add_argument("--update", action="store_true", help="replace an existing campaign's settings")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("import-leads", parents=[common], help="add leads from a CSV file",
                       description="Read a lead CSV: each row is checked on its own; bad rows are "
                       "listed with their row number (header = row 1) and skipped, numbers already "
                       "in the campaign are skipped as duplicates, good rows are added.")
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--request-id", help="idempotency key: a repeat with it does nothing")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p.set_defaults(func=cmd_import)

    for action, text in (("start", "start dialling"), ("pause", "stop new dials for now"),
                         ("resume", "dial again after a pause"),
                         ("stop", "end the campaign for good (calls in progress finish)")):
        p = sub.add_parser(action, parents=[common], help=text,
                           description=f"{text[0].upper()}{text[1:]}. Repeating it is a no-op.")
        p.add_argument("campaign_id", metavar="ID")
        p.set_defaults(func=cmd_lifecycle, action=action)

    p = sub.add_parser("status", parents=[common], help="state, leads and abandonment of campaigns",
                       description="One line per campaign, or every detail of one: state, leads "
                       "ready/waiting/dialling, attempt counts, rolling abandonment vs the cap, "
                       "and the dialer's last decision.")
    p.add_argument("campaign_id", nargs="?", metavar="ID", help="one campaign (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("ab-report", parents=[common], help="which script variant converts best",
                       description="Conversion per script variant with Wilson confidence "
                       "intervals, a chi-square (or Fisher) test over all variants, the best "
                       "variant against each other one (Fisher, Holm-corrected) and the verdict. "
                       "NAME is the campaign the calls were counted under (a dialer campaign's "
                       "id, or an inbound call's campaign). Exit 0 with or without a winner.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--alpha", type=float, help="significance level (default: the campaign's "
                   "ab_test.alpha, else 0.05)")
    p.add_argument("--min-calls", type=int, help="calls each variant needs before a verdict "
                   "(default: the campaign's ab_test.min_calls_per_variant, else 200)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ab_report)

    p = sub.add_parser("records", parents=[common], help="export compliance records of a period",
                       description="Every dial attempt of a campaign in a period: time, lead id, "
                       "result, hangup cause, abandoned flag, ring and call length.")
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument("--days", type=float, help="the last N days (default: everything)")
    p.add_argument("--since", help="start, ISO date/time (UTC unless it has an offset)")
    p.add_argument("--until", help="end, ISO date/time")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_records)

    p = sub.add_parser("dnc", parents=[common], help="global or per-campaign do-not-call lists",
                       description="Add, remove or check numbers on the do-not-call list (global, "
                       "or one campaign's with --campaign). Effective before the next dial.")
    p.add_argument("dnc_action", choices=("add", "remove", "check"))
    p.add_argument("numbers", nargs="+", metavar="NUMBER")
    p.add_argument("--campaign", metavar="ID", help="the campaign's list instead of the global one")
    p.add_argument("--country", default="US", help="country of numbers without +code (default US)")
    p.add_argument("--reason", default="", help="why (kept with who and when in the compliance "
                   "ledger)")
    p.set_defaults(func=cmd_dnc)


def _campaign_errors() -> tuple[type[Exception], ...]:
    """The dialer's errors that mean the request was wrong (status 2)."""

    return (CampaignExists, CampaignNotFound, InvalidTransition, LeadFileError, PhoneNumberError)


def _with_store(args: argparse.Namespace, work: Callable[[Any], Any]) -> Any:


    async def main() -> Any:
        store = DialerStore(redis_url(args))
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise CliError(f"cannot reach Redis ({exc}); is the cluster up (callfleet up) or "
                       "--redis-url right?", exit_code=EXIT_UNAVAILABLE) from None


@reports_errors(_campaign_errors)
def cmd_create(args: argparse.Namespace) -> int:
    config = _load_campaign_file(Path(args.file))

    async def work(store):
        if args.update:
            await store.update_campaign(config)
            return "updated"
        return "created" if await store.create_campaign(config) else "unchanged (identical)"

    outcome = _with_store(args, work)
    console.print(f"campaign [bold]{config.id}[/bold]: {outcome}; pacing {config.pacing.mode}, "
                  f"bot script {config.bot_script!r}")
    if outcome == "created":
        console.print(f"  next: callfleet campaign import-leads {config.id} LEADS.csv, "
                      f"then callfleet campaign start {config.id}")
    return 0


def _load_campaign_file(path: Path):


    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise CliError(f"{path} must hold a mapping of campaign settings")
    try:
        return CampaignConfig.model_validate(doc)
    except ValidationError as exc:
        problems = "\n".join(f"  - {'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
                             for e in exc.errors())
        raise CliError(f"invalid campaign file {path} ({exc.error_count()} "
                       f"problem(s)):\n{problems}") from None


@reports_errors(_campaign_errors)
def cmd_import(args: argparse.Namespace) -> int:

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None

    async def work(store):
        config, _ = await store.get_campaign(args.campaign_id)

        async def do_import() -> dict[str, Any]:  # leads scored by the conversion model
            report = parse_leads_csv(text, config.default_country, config.default_timezone,
                                     known_phones=await store.known_phones(config.id))
            added, clashes = await store.add_leads(config.id, report.leads, _scorer(args))
            return {**report.summary(), "added": added, "id_clashes": clashes,
                    "errors": [e.model_dump() for e in report.errors],
                    "duplicate_rows": report.duplicate_rows}

        return await store.once("import", args.request_id, do_import)

    report = _with_store(args, work)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console.print(f"{path.name}: {report['rows']} rows, [green]{report['added']} added[/green], "
                  f"{report['rejected']} rejected, {report['duplicates']} duplicates")
    if report["errors"]:
        table = Table(title="rejected rows", title_justify="left")
        for column in ("row", "column", "problem"):
            table.add_column(column)
        for error in report["errors"][:50]:
            table.add_row(str(error["row"]), error["column"], error["message"])
        console.print(table)
        if len(report["errors"]) > 50:
            console.print(f"  … and {len(report['errors']) - 50} more (use --json for all)")
    return 0


@reports_errors(_campaign_errors)
def cmd_lifecycle(args: argparse.Namespace) -> int:
    state = _with_store(args, lambda store: store.transition(args.campaign_id, args.action))
    console.print(f"campaign [bold]{args.campaign_id}[/bold]: {state.value}")
    return 0


@reports_errors(_campaign_errors)
def cmd_status(args: argparse.Namespace) -> int:
    async def work(store):
        ids = [args.campaign_id] if args.campaign_id else await store.campaign_ids()
        return [await store.status(cid) for cid in ids]

    reports = _with_store(args, work)
    if args.json:
        print(json.dumps(reports[0] if args.campaign_id else reports, indent=2))
        return 0
    if not reports:
        console.print("no campaigns yet; create one with: callfleet campaign create FILE.yaml")
        return 0
    table = Table(title_justify="left")
    for column in ("campaign", "state", "pacing", "ready", "waiting", "dialling", "attempts",
                   "connected", "abandoned (30d)", "dialer"):
        table.add_column(column)
    for r in reports:
        ab = r["abandonment"]
        beat = r["dialer"]
        table.add_row(
            r["id"], r["state"], r["pacing_mode"], str(r["leads"]["ready"]),
            str(r["leads"]["waiting_retry_or_window"]), str(r["leads"]["dialing"]),
            str(r["counts"].get("attempts", 0)), str(r["counts"].get("connected", 0)),
            f"{ab['rate']:.2%} of {ab['answered']} (cap {ab['cap']:.0%})",
            beat["reason"] if beat else "not reporting")
    out.print(table)
    return 0


@reports_errors(_campaign_errors)
def cmd_ab_report(args: argparse.Namespace) -> int:
    from cluster.dialer.ab import ab_report  # heavy: scipy

    async def work(store):
        counter = RedisConversionCounter(store.redis)
        try:
            config, _ = await store.get_campaign(args.name)
            rule = config.ab_test
        except CampaignNotFound:  # counted under a name the dialer does not know (inbound)
            rule = ABTestConfig()
        return await counter.report(args.name), await counter.winner(args.name), rule

    counts, pinned, rule = _with_store(args, work)
    if not counts:
        raise CliError(f"no A/B counts for {args.name!r}: its calls had no script variant, "
                       "or none was counted yet")
    alpha = args.alpha if args.alpha is not None else rule.alpha
    if not 0 < alpha < 0.5:
        raise CliError(f"--alpha must be between 0 and 0.5, got {alpha}")
    report = ab_report(args.name, counts, alpha,
                       args.min_calls if args.min_calls is not None else rule.min_calls_per_variant)
    doc = {**report.to_dict(), "pinned": pinned, "auto_stop": rule.auto_stop}
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    table = Table(title=f"A/B report: {args.name} ({int(report.confidence * 100)} % intervals)",
                  title_justify="left")
    for column in ("variant", "calls", "conversions", "rate", "interval", "p vs best"):
        table.add_column(column)
    for v in report.variants:
        table.add_row(v.variant, str(v.calls), str(v.conversions), f"{v.rate:.2%}",
                      f"{v.ci_low:.2%} - {v.ci_high:.2%}",
                      "best" if v.p_vs_best is None else f"{v.p_vs_best:.4g}")
    out.print(table)
    overall = "no test" if report.p_value is None else f"p = {report.p_value:.4g}"
    out.print(f"all variants ({report.test}): {overall}")
    out.print(f"verdict: {'winner ' + report.winner if report.winner else 'none'} - "
              f"{report.reason}")
    if pinned:
        out.print(f"pinned: every further dialer call goes to variant {pinned['variant']} "
                  "(auto_stop)")
    elif rule.auto_stop:
        out.print("auto_stop is on: the dialer pins the winner once there is one")
    return 0


def _parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"cannot read {text!r} as an ISO date/time "
                       "(e.g. 2026-03-01 or 2026-03-01T09:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


RECORD_COLUMNS = ("attempt_id", "lead_id", "attempt", "call_uuid", "started_at", "ended_at",
                  "result", "cause", "answered", "abandoned", "ring_s", "gateway", "handle_s",
                  "hangup_cause", "escalated")


@reports_errors(_campaign_errors)
def cmd_records(args: argparse.Namespace) -> int:
    since = _parse_time(args.since) if args.since else None
    until = _parse_time(args.until) if args.until else None
    if args.days is not None:
        since = (datetime.now(timezone.utc) - timedelta(days=args.days)).timestamp()

    async def work(store):
        await store.get_campaign(args.campaign_id)  # unknown id -> clear error
        return await store.records(args.campaign_id, since, until, limit=10_000_000)

    records = _with_store(args, work)
    if args.format == "json":
        text = json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(RECORD_COLUMNS)
        for r in records:
            doc = r.model_dump(mode="json")
            for key in ("started_at", "ended_at"):
                doc[key] = datetime.fromtimestamp(doc[key], timezone.utc).isoformat(timespec="seconds")
            writer.writerow(["" if doc[c] is None else doc[c] for c in RECORD_COLUMNS])
        text = buffer.getvalue()
    if args.output:
        Path(args.output).write_text(text)
        console.print(f"{len(records)} records written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


@reports_errors(_campaign_errors)
def cmd_dnc(args: argparse.Namespace) -> int:

    numbers = [normalise_e164(n, args.country) for n in args.numbers]

    async def work(store):
        if args.campaign:
            await store.get_campaign(args.campaign)
        who = {"actor": f"cli:{_operator()}", "reason": args.reason, "source": "cli"}
        if args.dnc_action == "add":
            return await store.add_dnc(numbers, args.campaign, **who)
        if args.dnc_action == "remove":
            return await store.remove_dnc(numbers, args.campaign, **who)
        return [await store.is_dnc(n, args.campaign) for n in numbers]

    result = _with_store(args, work)
    scope = f"campaign {args.campaign}" if args.campaign else "global"
    if args.dnc_action == "check":
        for number, listed in zip(numbers, result, strict=True):
            print(f"{number}\t{'do-not-call' if listed else 'callable'}")
        return 0
    verb = "added to" if args.dnc_action == "add" else "removed from"
    console.print(f"{result} number(s) {verb} the {scope} do-not-call list")
    return 0


def _operator() -> str:
    """Who runs the command, for the do-not-call ledger."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _scorer(args):
    """The registered conversion model as lead priority, when there is one."""

    return registered_scorer(load_settings(getattr(args, "config", None)).registry_path)
