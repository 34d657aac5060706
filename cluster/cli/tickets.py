"""`callfleet tickets`: tickets in the durable store and their SLA.

    callfleet tickets list [--status open|closed] [--queue Q] [--assignee A] [--breached]
    callfleet tickets show ID [--json]
    callfleet tickets assign ID AGENT          (``-`` puts it back in its queue)
    callfleet tickets close ID [--resolution TEXT]

Tickets come from bots (a script's ``ticket`` action, through the records outbox), agents
(the desk and the API) and other channels (``POST /api/tickets/intake``). Priority is 1
(most urgent) to 4; the deadlines are the queue's (``tickets.queues``). Phone numbers are
masked. See docs/records.md ("Tickets").
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from cluster.cli.common import CliError, console, out, reports_errors
from cluster.cli.records import _open, _store_errors


def _tickets(args: argparse.Namespace):
    from cluster.store.tickets import TicketStore  # heavy: SQLAlchemy

    store, settings = _open(args)
    return store, TicketStore(store, settings.tickets, settings.customers.vip_tiers)


def _user_errors() -> tuple[type[Exception], ...]:
    from cluster.store.tickets import TicketConflict, TicketNotFound  # heavy: SQLAlchemy

    return (TicketConflict, TicketNotFound)


def _deadline(ticket: dict[str, Any], kind: str) -> str:
    when = ticket.get(f"{kind}_due")
    text = when[:16].replace("T", " ") if when else "-"
    return f"{text} BREACHED" if ticket.get(f"{kind}_breached_at") else text


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_list(args: argparse.Namespace) -> int:
    from cluster.store.tickets import TicketQuery, public_ticket  # heavy: SQLAlchemy

    store, tickets = _tickets(args)
    try:
        rows = [public_ticket(r) for r in tickets.list(TicketQuery(
            status=args.status, queue=args.queue, assignee=args.assignee,
            breached=True if args.breached else None, limit=args.limit))]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{len(rows)} ticket(s), most urgent first (UTC)", title_justify="left")
    for column in ("id", "P", "status", "queue", "assignee", "source", "subject",
                   "first response due", "resolution due"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], str(row["priority"]), row["status"], row["queue"],
                      row["assignee"] or "-", row["source"], escape(row["subject"][:40]),
                      _deadline(row, "first_response"), _deadline(row, "resolution"))
    out.print(table)
    return 0


def _show(ticket: dict[str, Any], as_json: bool) -> None:
    from cluster.store.tickets import public_ticket  # heavy: SQLAlchemy

    doc = public_ticket(ticket)
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    for name in ("id", "status", "priority", "queue", "assignee", "source", "channel",
                 "subject", "body", "call_uuid", "phone", "email", "tier", "emotion",
                 "created_by", "created_at", "first_response_due", "first_response_at",
                 "first_response_breached_at", "resolution_due", "closed_at",
                 "resolution_breached_at", "resolution"):
        if doc.get(name) not in (None, ""):
            out.print(f"[bold]{name}[/bold]: {escape(str(doc[name]))}")


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_show(args: argparse.Namespace) -> int:
    store, tickets = _tickets(args)
    try:
        ticket = tickets.get(args.ticket_id)
    finally:
        store.close()
    if ticket is None:
        raise CliError(f"no ticket {args.ticket_id!r}")
    _show(ticket, args.json)
    return 0


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_assign(args: argparse.Namespace) -> int:
    store, tickets = _tickets(args)
    agent = None if args.agent == "-" else args.agent
    try:
        ticket = tickets.assign(args.ticket_id, agent)
    finally:
        store.close()
    console.print(f"ticket {ticket['id']} " + (f"assigned to {escape(agent)}" if agent
                                              else f"back in queue {ticket['queue']}"))
    return 0


@reports_errors(_user_errors, unavailable=_store_errors)
def cmd_close(args: argparse.Namespace) -> int:
    store, tickets = _tickets(args)
    try:
        ticket = tickets.close(args.ticket_id, args.resolution)
    finally:
        store.close()
    console.print(f"ticket {ticket['id']} closed")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tickets", help="tickets and their SLA (durable store)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="tickets_command", required=True, metavar="ACTION")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store-url", metavar="URL",
                       help="database (default: store_url from the settings)")

    s = sub.add_parser("list", parents=[store], help="tickets, most urgent first")
    s.add_argument("--status", choices=("open", "closed"))
    s.add_argument("--queue", metavar="Q")
    s.add_argument("--assignee", metavar="AGENT")
    s.add_argument("--breached", action="store_true", help="only tickets past a deadline")
    s.add_argument("--limit", type=int, default=100)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", parents=[store], help="one ticket")
    s.add_argument("ticket_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("assign", parents=[store], help="give a ticket to an agent")
    s.add_argument("ticket_id")
    s.add_argument("agent", help="agent id ('-': back to the queue)")
    s.set_defaults(func=cmd_assign)

    s = sub.add_parser("close", parents=[store], help="resolve a ticket")
    s.add_argument("ticket_id")
    s.add_argument("--resolution", metavar="TEXT")
    s.set_defaults(func=cmd_close)
