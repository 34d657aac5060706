"""`callfleet bots deploy FILE…`: check bot scripts, publish them to the cluster's Redis,
and wait until every gateway replica serves them (cluster/records/bot_scripts.py).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \\
        -- callfleet bots deploy bots/scripts/inbound_shop.yaml

A script with any error is refused with its ``file:line:column`` problems and nothing is
published: the versions serving now keep serving. Exit 0 when every replica serves the
new versions, 2 when a script is refused, 1 when replicas did not take it in time.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import redis
from rich.console import Console
from rich.markup import escape

from bots.functions import FUNCTIONS
from bots.script import check_script
from cluster.cli.common import (
    EXIT_USAGE,
    CliError,
    console,
    redis_url,
    redis_url_option,
    reports_errors,
)
from cluster.records.bot_scripts import BundleError, PublishedScripts, ScriptBundle

__all__ = ["print_check", "redis_url_parents", "register_deploy"]


def redis_url_parents() -> list[argparse.ArgumentParser]:
    return [redis_url_option()]


def register_deploy(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
                    ) -> None:
    p = sub.add_parser(
        "deploy", parents=parents,
        help="check scripts and make them live on every gateway replica (no restart)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="bot script(s) (.yaml)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="wait this long for every gateway replica (default 60)")
    p.add_argument("--no-wait", action="store_true", help="publish and return at once")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bot_deploy)


def print_check(file: str, script: Any, problems: list, bad: bool) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # one problem per line
    out = Console(highlight=False, soft_wrap=True)
    for problem in problems:
        colour = "red" if problem.severity == "error" else "yellow"
        err.print(f"[{colour}]{escape(str(problem))}[/{colour}]")
    if bad or script is None:
        errors = sum(p.severity == "error" for p in problems)
        err.print(f"[red]{escape(file)}: {errors} error(s), "
                  f"{len(problems) - errors} warning(s)[/red]")
        return
    s = script.summary()
    variants = f", variants {', '.join(s['variants'])}" if s["variants"] else ""
    out.print(f"[green]OK[/green] {escape(file)}: bot {s['bot']} (version {s['version']}): "
              f"{s['states']} states, {s['transitions']} transitions, {s['intents']} intents"
              f"{variants}" + (f", {s['warnings']} warning(s)" if s["warnings"] else ""))


def _bundle(files: list[str], as_json: bool) -> tuple[ScriptBundle | None, list[dict[str, Any]]]:
    """Check every file (all problems, all files); the bundle only when all are valid."""
    bundle = ScriptBundle()
    results, failed = [], False
    for file in files:
        script, problems = check_script(file, set(FUNCTIONS))
        bad = script is None or any(p.severity == "error" for p in problems)
        if not bad:
            try:
                bundle.add(file, script.name, script.sha, script.intents_file)
            except (BundleError, OSError) as exc:
                raise CliError(str(exc), exit_code=EXIT_USAGE) from None
        failed = failed or bad
        results.append({"file": file, "ok": not bad, "bot": script.name if script else None,
                        "version": script.sha if script else None,
                        "problems": [p.to_dict() for p in problems]})
        if not as_json:
            print_check(file, script, problems, bad)
    return (None if failed else bundle), results


def _wait_live(store: PublishedScripts, bundle: ScriptBundle, gen: int,
               timeout: float) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Until every live replica has loaded `gen` and serves each bot's new version."""
    deadline = time.monotonic() + timeout
    while True:
        replicas = store.replicas()
        done = {rid: rep.get("gen", 0) >= gen and all(
            rep.get("bots", {}).get(bot) == info["version"] for bot, info in bundle.bots.items())
            for rid, rep in replicas.items()}
        if replicas and all(done.values()):
            return True, replicas
        if time.monotonic() >= deadline:
            return False, replicas
        time.sleep(0.5)


@reports_errors(lambda: (redis.RedisError,))
def cmd_bot_deploy(args: argparse.Namespace) -> int:
    bundle, results = _bundle(args.files, args.json)
    if bundle is None:
        if args.json:
            print(json.dumps({"ok": False, "deployed": False, "files": results}, indent=2))
        else:
            console.print("[red]nothing deployed[/red]: the versions serving now keep serving")
        return EXIT_USAGE
    client = redis.Redis.from_url(redis_url(args), decode_responses=True, socket_timeout=5)
    store = PublishedScripts(client)
    try:
        gen = store.publish(bundle)
    except BundleError as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from None
    live, replicas = (False, {}) if args.no_wait else _wait_live(store, bundle, gen, args.timeout)
    summary = {"ok": live or args.no_wait, "deployed": True, "generation": gen,
               "bots": bundle.bots, "replicas": len(replicas),
               "serving": sum(all(r.get("bots", {}).get(b) == i["version"]
                                  for b, i in bundle.bots.items()) for r in replicas.values()),
               "files": results}
    if args.json:
        print(json.dumps(summary, indent=2))
    elif args.no_wait:
        console.print(f"published (generation {gen}); gateway replicas load it within seconds")
    elif live:
        for bot, info in bundle.bots.items():
            console.print(f"[green]live[/green] {bot} version {info['version']} on "
                          f"{len(replicas)} gateway replica(s)")
    elif not replicas:
        console.print(f"[yellow]published (generation {gen}), but no gateway replica "
                      "answered[/yellow]: replicas load it when they start")
    else:
        lagging = [rid for rid, r in replicas.items() if r.get("gen", 0) < gen
                   or any(r.get("bots", {}).get(b) != i["version"] for b, i in bundle.bots.items())]
        rejected = {k: v for r in replicas.values() for k, v in r.get("rejected", {}).items()}
        why = f"; refused by the replicas: {rejected}" if rejected else ""
        console.print(f"[red]not live everywhere[/red]: {len(lagging)} of {len(replicas)} "
                      f"replica(s) still serve other versions after {args.timeout:.0f} s{why}")
    return 0 if summary["ok"] or not replicas else 1
