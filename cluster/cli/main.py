"""`callfleet` — start, inspect and stop a CallFleet cluster, and run the demo.

    callfleet up        start local Ray + embedded Redis + the Serve app, return when healthy
    callfleet status    what is running and whether it answers
    callfleet down      stop everything `up` started
    callfleet deploy    start or update everything on an existing Ray cluster (a Ray job)
    callfleet serve-config  the portable Serve config (configs/serve.yaml)
    callfleet demo      up, place a few simulated calls, print them, then stop what it started
    callfleet simulate  N concurrent simulated calls against a running cluster
    callfleet models    list, show, promote or roll back model versions in the registry
    (and the commands of the modules in COMMAND_MODULES: bot, kb, train, eval, campaign, ...)
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from cluster.cli.common import console, reports_errors
from cluster.runtime.deploy import deploy
from cluster.runtime.lifecycle import ClusterError, cluster_status, down, up
from cluster.runtime.progress import progress_display
from cluster.runtime.serve_deploy import render_portable_config
from configs.settings import ConfigError, Settings, load_settings

# Each module here exposes `register(subparsers)` and keeps its heavy imports inside its
# command functions, so `callfleet --help` stays fast.
COMMAND_MODULES = (
    "cluster.cli.models",
    "cluster.cli.bots",
    "cluster.cli.kb",
    "cluster.cli.train",
    "cluster.cli.campaigns",
    "cluster.cli.agents",
    "cluster.cli.floor",
    "cluster.cli.records",
    "cluster.cli.tickets",
    "cluster.cli.customers",
)


def _settings(args) -> Settings:
    return load_settings(args.config)


def cmd_up(args) -> int:

    settings = _settings(args)
    with progress_display(console) as (status, task):
        info = up(settings, status=status, progress=task)
    console.print(f"[green]CallFleet is up[/green]: media forks to {info.media_url}/<call-uuid>")
    if info.job_url:
        console.print(f"  redeploy onto it: RAY_AUTH_MODE=token ray job submit --address "
                      f"{info.job_url} --working-dir . -- callfleet deploy")
    console.print("  stop it with: callfleet down")
    return 0


def cmd_deploy(args) -> int:
    settings = _settings(args)
    with progress_display(console) as (status, task):
        report = deploy(settings, status=status, progress=task)
    console.print(f"[green]CallFleet deployed[/green] on {report.ray_address}: "
                  f"API {report.http_url}/api, media forks to {report.media_url}/<call-uuid>")
    if report.models_built:
        console.print(f"  built default models: {', '.join(report.models_built)}")
    return 0


def cmd_serve_config(args) -> int:
    text = render_portable_config(_settings(args))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
        console.print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_down(args) -> int:

    stopped = down(_settings(args), status=lambda s: console.print(f"[dim]·[/dim] {s}"))
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args) -> int:

    report = cluster_status(_settings(args))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0 if report["running"] else 1
    if not report.get("ray_address"):
        console.print(f"[yellow]not running[/yellow]: {report.get('reason')}")
        return 1
    ok = "[green]running[/green]" if report["running"] else "[red]degraded[/red]"
    console.print(f"CallFleet {ok}  ray={report['ray_address']}  redis={report['redis']}")
    if report.get("job_url"):
        console.print(f"  job server {report['job_url']} (ray job submit --address)")
    gateway = report.get("gateway", {})
    console.print(f"  gateway {report['http_url']}: {gateway.get('status')} "
                  f"(active calls: {gateway.get('active_calls', '-')}, "
                  f"intent model: {gateway.get('intent_model', '-')})")
    for name, dep in report.get("deployments", {}).items():
        console.print(f"  {name:<8} {dep['status']:<10} replicas {dep['replicas']}")
    return 0 if report["running"] else 1


def cmd_demo(args) -> int:
    from cluster.sim.demo import run_demo  # heavy: loads scipy

    return run_demo(_settings(args), calls=args.calls, keep=args.keep, console=console)


def _scenario_errors() -> tuple[type[Exception], ...]:
    from telephony.sim.scenarios import ScenarioError  # heavy: loads scipy

    return (ScenarioError,)


@reports_errors(_scenario_errors)
def cmd_simulate(args) -> int:
    from cluster.sim.simulate import run_simulation  # heavy: loads scipy

    return run_simulation(_settings(args), calls=args.calls, scenario_file=args.scenario,
                          stagger_s=args.stagger, as_json=args.json, console=console,
                          via=args.via)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callfleet",
        description="CallFleet: AI voice bots for contact centres on Ray Serve behind FreeSWITCH.",
        epilog="Settings: configs/default.yaml, overridden by CALLFLEET_<SECTION>__<FIELD> "
        "environment variables (e.g. CALLFLEET_ASR__MODEL=base) or --config FILE.",
    )
    parser.add_argument("--config", help="settings YAML (default: configs/default.yaml or $CALLFLEET_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("up", help="start local Ray, embedded Redis and the Serve app; return when healthy")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser(
        "deploy", help="start or update everything on the Ray cluster this runs in (a job)",
        description="Start or update CallFleet on an existing Ray cluster: Redis (configured, "
        "or embedded on this node), the default models when none are registered, both Serve "
        "apps, and the floor actors (ESL controller, skill router, dialer). Returns when the "
        "gateway answers; running it again updates in place without dropping calls. Exit 0 "
        "when deployed, 1 with one line saying why not.",
        epilog="run it as a Ray job: RAY_AUTH_MODE=token ray job submit --address "
        "http://127.0.0.1:8265 --working-dir . -- callfleet deploy   (see docs/deploy.md)")
    p.set_defaults(func=cmd_deploy)
    p = sub.add_parser(
        "serve-config", help="print the Serve config `serve deploy` and KubeRay take",
        description="Print (or write) the declarative Serve config of both apps with nothing "
        "machine-specific in it, as `serve build` would: settings come from the cluster's "
        "CALLFLEET_* environment. configs/serve.yaml is this output.")
    p.add_argument("-o", "--output", metavar="FILE", help="write it here instead of stdout")
    p.set_defaults(func=cmd_serve_config)
    p = sub.add_parser("down", help="stop everything `up` started")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("status", help="show what is running and whether it answers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("demo", help="bring the cluster up, place simulated calls, print them, clean up")
    p.add_argument("--calls", type=int, default=3, help="number of simulated calls (default 3)")
    p.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser(
        "simulate", help="place N concurrent simulated calls against a running cluster",
        description="Place N concurrent simulated FreeSWITCH calls (media fork over websocket) "
        "against the cluster `callfleet up` started; print a report per call and a summary.",
    )
    p.add_argument("--calls", type=int, default=4, help="number of calls (default 4)")
    p.add_argument("--scenario", metavar="FILE",
                   help="scenario YAML (default configs/scenarios/default.yaml)")
    p.add_argument("--stagger", type=float, default=0.25, metavar="S",
                   help="seconds between call starts (default 0.25)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--via", choices=["fork", "esl"], default="fork",
                   help="fork: open media forks straight to the gateway; esl: originate each "
                   "call through the ESL controller actor and a simulated FreeSWITCH (default fork)")
    p.set_defaults(func=cmd_simulate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        return _run(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def _cluster_errors() -> tuple[type[Exception], ...]:
    # lifecycle loads httpx and the Redis server wrapper: only once something failed

    return (ClusterError,)


@reports_errors(lambda: (ConfigError,), unavailable=_cluster_errors)
def _run(args: argparse.Namespace) -> int:
    """The chosen command; invalid settings exit 2, a cluster that cannot start or answer 1."""
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
