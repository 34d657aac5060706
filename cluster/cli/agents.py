"""`callfleet agents` and `callfleet queue` — the human-agent roster and the waiting
calls of a running cluster.

    callfleet agents list                      agents, states, load and conversion rates
    callfleet agents add ID --extension EXT    register an agent; prints their API token once
    callfleet agents remove ID                 unregister (pending offers move on)
    callfleet agents state ID STATE            available | break | logged_out (supervisor)
    callfleet agents token ID                  issue a new API token (the old one stops working)
    callfleet queue                            escalated calls waiting for an agent

They work on the cluster's Redis: ``--redis-url``, else the URL in
``<state_dir>/run/cluster.json`` written by `callfleet up`, else ``redis_url`` from the
settings (`cluster.cli.common.redis_url`). Changes made
here never make offers themselves; the running skill router picks them up on its next
sweep. Bad input exits with status 2, an unreachable Redis with 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from redis.exceptions import RedisError
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
from cluster.routing import (
    AgentExistsError,
    AgentProfile,
    InvalidStateChangeError,
    RedisFeedPublisher,
    RoutingSettings,
    RoutingStore,
    SkillRouter,
    UnknownAgentError,
)
from configs.settings import load_settings

__all__ = ["register"]


# -- parser ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Register ``agents`` (with its actions) and ``queue`` on the top-level `subparsers`."""
    common = redis_url_option()

    agents = subparsers.add_parser(
        "agents", parents=[common], help="list, add, remove human agents and set their state",
        description="Manage the human agents escalated calls are routed to. Agents, their "
        "states and statistics live in the cluster's Redis.",
    )
    sub = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")

    p = sub.add_parser("list", parents=[common], help="agents with state, load and conversion rate",
                       description="One row per agent: state (and whether the heartbeat is "
                       "fresh), calls and offers in progress, skills, handled calls, "
                       "conversion rate and offers not answered.")
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(func=cmd_agents_list)

    p = sub.add_parser("add", parents=[common], help="register an agent and print their API token",
                       description="Register an agent (logged out). Their API token is printed "
                       "once on stdout and only its hash is stored; give it to the agent's "
                       "desktop. Skills: --skill billing=3 --skill german (level 1).")
    p.add_argument("agent_id", metavar="ID", help="agent id: letters, digits, _ . - (max 64)")
    p.add_argument("--extension", required=True, metavar="EXT",
                   help="dialplan extension calls are transferred to")
    p.add_argument("--name", default="", help="display name")
    p.add_argument("--skill", action="append", default=[], metavar="NAME[=LEVEL]",
                   help="a skill with level 1..10 (default 1); repeat for more")
    p.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="most calls at once (default 1)")
    p.add_argument("--json", action="store_true", help="print the agent and token as JSON")
    p.set_defaults(func=cmd_agents_add)

    p = sub.add_parser("remove", parents=[common], help="unregister an agent",
                       description="Unregister an agent. Offers waiting for their answer go "
                       "back to the queue; calls already connected are not touched.")
    p.add_argument("agent_id", metavar="ID")
    p.set_defaults(func=cmd_agents_remove)

    p = sub.add_parser("state", parents=[common], help="set an agent's state (supervisor)",
                       description="Set an agent to available, break or logged_out (on_call "
                       "and wrap_up are set by the router). Break and logout hand pending "
                       "offers to other agents.")
    p.add_argument("agent_id", metavar="ID")
    p.add_argument("state", choices=["available", "break", "logged_out"], metavar="STATE",
                   help="available | break | logged_out")
    p.set_defaults(func=cmd_agents_state)

    p = sub.add_parser("token", parents=[common], help="issue a new API token for an agent",
                       description="Replace an agent's API token; the old one stops working "
                       "at once. The new token is printed once on stdout.")
    p.add_argument("agent_id", metavar="ID")
    p.set_defaults(func=cmd_agents_token)

    p = subparsers.add_parser(
        "queue", parents=[common], help="escalated calls waiting for an agent",
        description="Calls waiting for a human agent, in the order they will be served: "
        "VIP first, then priority, then arrival. No transcripts or customer data are shown.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead")
    p.set_defaults(func=cmd_queue)


# -- plumbing ----------------------------------------------------------------------------


def _where(url: str) -> str:
    """host:port of a Redis URL (never its password)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or '?'}:{parts.port or 6379}"
    except ValueError:
        return "<invalid url>"


def _routing_settings(args: argparse.Namespace) -> Any:

    if getattr(args, "redis_url", None):
        return RoutingSettings()

    section = getattr(load_settings(getattr(args, "config", None)), "routing", None)
    return section if isinstance(section, RoutingSettings) else RoutingSettings()


def _with_router(args: argparse.Namespace, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work(router)` against the cluster's Redis with a non-dispatching router."""


    url = redis_url(args, missing_exit_code=EXIT_UNAVAILABLE)  # no cluster: nothing to ask
    settings = _routing_settings(args)

    async def main() -> Any:
        store = RoutingStore(url)
        router = SkillRouter(store, None, settings, sinks=[RedisFeedPublisher(store)],
                             dispatch=False)
        try:
            return await work(router)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (AgentExistsError, UnknownAgentError, InvalidStateChangeError) as exc:
        raise CliError(str(exc)) from None
    except (RedisError, OSError) as exc:
        raise CliError(
            f"cannot reach the cluster's Redis at {_where(url)} ({type(exc).__name__}); "
            "is the cluster up (`callfleet status`)?", exit_code=EXIT_UNAVAILABLE) from None


def _parse_skills(values: list[str]) -> dict[str, int]:
    skills: dict[str, int] = {}
    for value in values:
        name, _, level = value.partition("=")
        try:
            skills[name.strip()] = int(level) if level else 1
        except ValueError:
            raise CliError(
                f"--skill {value!r}: the level after '=' must be a whole number 1..10") from None
    return skills


# -- commands ----------------------------------------------------------------------------


@reports_errors()
def cmd_agents_list(args: argparse.Namespace) -> int:
    async def work(router: Any) -> list[Any]:
        return await router.list_agents()

    agents = [a.public() for a in _with_router(args, work)]
    if args.json:
        print(json.dumps(agents, indent=2))
        return 0
    if not agents:
        console.print("no agents yet; add one with: callfleet agents add ID --extension EXT")
        return 0
    table = Table(title=f"{len(agents)} agent(s)", title_justify="left")
    for column in ("agent", "name", "ext", "state", "calls", "offers", "skills", "handled",
                   "conversion", "no answer"):
        table.add_column(column, justify="right" if column in ("calls", "offers", "handled",
                                                                "conversion", "no answer") else "left")
    for a in agents:
        profile = a["profile"]
        state = a["state"] if a["online"] or a["state"] == "logged_out" else f"{a['state']} (no heartbeat)"
        rate = a["conversion_rate"]
        table.add_row(
            a["agent_id"], profile["name"] or "-", profile["extension"], state,
            f"{len(a['calls'])}/{profile['concurrency']}", str(a["pending_offers"]),
            ", ".join(f"{k}={v}" for k, v in sorted(profile["skills"].items())) or "-",
            str(a["handled"]), "-" if rate is None else f"{rate:.0%}", str(a["no_answers"]),
        )
    out.print(table)
    return 0


@reports_errors()
def cmd_agents_add(args: argparse.Namespace) -> int:


    try:
        profile = AgentProfile(agent_id=args.agent_id, extension=args.extension, name=args.name,
                               skills=_parse_skills(args.skill), concurrency=args.concurrency)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'agent'}: {e['msg']}"
                             for e in exc.errors())
        raise CliError(f"invalid agent: {problems}") from None

    async def work(router: Any) -> str:
        return await router.add_agent(profile)

    token = _with_router(args, work)
    if args.json:
        print(json.dumps({"agent": profile.model_dump(), "token": token}, indent=2))
        return 0
    console.print(f"[green]agent {profile.agent_id} added[/green] (logged out). Their API "
                  "token, shown only this once:")
    print(token)
    return 0


@reports_errors()
def cmd_agents_remove(args: argparse.Namespace) -> int:
    async def work(router: Any) -> bool:
        return await router.remove_agent(args.agent_id)

    if not _with_router(args, work):
        raise CliError(f"no agent {args.agent_id!r} is registered")
    console.print(f"agent {args.agent_id} removed")
    return 0


@reports_errors()
def cmd_agents_state(args: argparse.Namespace) -> int:
    async def work(router: Any) -> Any:
        return await router.set_state(args.agent_id, args.state)

    snapshot = _with_router(args, work)
    console.print(f"agent {args.agent_id} is now {snapshot.state.value}")
    return 0


@reports_errors()
def cmd_agents_token(args: argparse.Namespace) -> int:
    async def work(router: Any) -> str:
        return await router.rotate_token(args.agent_id)

    token = _with_router(args, work)
    console.print(f"new API token for {args.agent_id} (the old one no longer works):")
    print(token)
    return 0


@reports_errors()
def cmd_queue(args: argparse.Namespace) -> int:
    async def work(router: Any) -> list[Any]:
        return await router.queue()

    items = [item.model_dump(mode="json") for item in _with_router(args, work)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        console.print("no calls waiting")
        return 0
    table = Table(title=f"{len(items)} call(s) waiting", title_justify="left")
    for column in ("#", "call", "vip", "priority", "reason", "skills", "campaign", "waited", "left"):
        table.add_column(column)
    for position, item in enumerate(items, 1):
        left = item["deadline"] - item["enqueued_at"] - item["waited_s"]
        table.add_row(
            str(position), item["call_uuid"], "VIP" if item["vip"] else "", str(item["priority"]),
            item["reason"], ", ".join(f"{k}>={v}" for k, v in sorted(item["skills"].items())) or "-",
            item["campaign_id"] or "-", f"{item['waited_s']:.0f}s", f"{max(left, 0):.0f}s",
        )
    out.print(table)
    return 0
