"""`callfleet floor start | stop | status`: the floor actors (FreeSWITCH simulator when
configured, ESL controller, skill router, dialer) on a Ray cluster whose Serve apps were
deployed some other way (`serve deploy configs/serve.yaml`, KubeRay). `callfleet up` starts
them itself. Typical use on a cluster:

    ray job submit --working-dir . -- callfleet floor start
"""

from __future__ import annotations

import argparse
import json

from cluster.actors.esl import actor_name
from cluster.actors.names import RECORD_WRITER_NAME, ROUTER_NAME
from cluster.actors.switch import SIM_NAME
from cluster.cli.common import console
from cluster.runtime.lifecycle import (
    ClusterError,
    check_redis,
    connect_ray,
    read_info,
    start_floor_actors,
    stop_floor_actors,
)
from configs.settings import load_settings


def _connect(args):

    settings = load_settings(args.config)
    info = read_info(settings)
    redis_url = settings.redis_url or (info.redis_url if info else None)
    if not redis_url:
        raise ClusterError("no Redis: set redis_url (or CALLFLEET_REDIS_URL)")
    settings = settings.model_copy(update={"redis_url": redis_url})
    address = settings.ray.address or (info.ray_address if info else None) or "auto"
    connect_ray(address)
    return settings


def cmd_start(args) -> int:

    settings = _connect(args)
    check_redis(settings)  # the floor writes DNC entries and compliance records there
    start_floor_actors(settings, lambda line: console.print(f"[dim]·[/dim] {line}"))
    console.print("[green]floor running[/green]")
    return 0


def cmd_stop(args) -> int:

    stop_floor_actors(_connect(args))
    console.print("floor actors stopped")
    return 0


def cmd_status(args) -> int:
    import ray  # heavy: loads ray


    settings = _connect(args)
    names = {"controller": actor_name(settings.freeswitch), "router": ROUTER_NAME,
             "dialer": settings.dialer.actor_name, "simulator": SIM_NAME,
             "records": RECORD_WRITER_NAME}
    report = {}
    for role, name in names.items():
        try:
            handle = ray.get_actor(name, namespace="callfleet")
        except ValueError:
            report[role] = "not running"
            continue
        method = getattr(handle, "status", None)
        try:
            report[role] = ray.get(method.remote(), timeout=10) if method else "running"
        except Exception as exc:
            report[role] = f"error: {type(exc).__name__}"
    if args.json:
        print(json.dumps(report, default=str))
    else:
        for role, state in report.items():
            console.print(f"{role:<11} {state}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("floor", help="start, stop or inspect the floor actors",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="floor_command", required=True, metavar="ACTION")
    sub.add_parser("start", help="start the controller, router and dialer (and simulator)"
                   ).set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop them").set_defaults(func=cmd_stop)
    s = sub.add_parser("status", help="what each actor reports")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
