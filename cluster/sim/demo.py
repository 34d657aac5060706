"""`callfleet demo`: bring the cluster up, place simulated calls through the media
gateway, print each conversation from its Redis record, then stop what it started."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.table import Table

from cluster.records.call_state import RedisCallRecorder
from cluster.runtime.lifecycle import ClusterInfo, down, read_info, up
from cluster.runtime.progress import progress_display
from cluster.sim.simulate import place
from configs.settings import Settings
from telephony.call_data import percentile
from telephony.sim.caller_voice import CallerVoice
from telephony.sim.fork_client import CallReport, SimulatedCall
from telephony.sim.scenarios import Scenario, build_call, load_scenarios


async def place_calls(info: ClusterInfo, plan: list[tuple[Scenario, SimulatedCall]],
                      stagger_s: float = 1.5, settings: Settings | None = None):
    """Place the calls (made known to the gateway with `settings`: `ForkIssuer`), then read
    each one's record back from Redis."""
    results = await place(info, plan, stagger_s, settings)
    recorder = RedisCallRecorder(info.redis_url)
    try:
        await asyncio.sleep(0.5)  # the gateway writes the call's end after the socket closes
        records = [await recorder.get_call(call.meta.call_uuid) for _, call in plan]
    finally:
        await recorder.close()
    return [r.report for r in results], records


def print_call(console: Console, title: str, report: CallReport, record: dict | None) -> None:
    table = Table(title=title, title_justify="left", show_lines=True, expand=True)
    table.add_column("#", width=2)
    table.add_column("caller said (ASR)", ratio=3)
    table.add_column("intent", ratio=2)
    table.add_column("emotion", ratio=2)
    table.add_column("bot reply", ratio=4)
    table.add_column("latency", justify="right", ratio=1)
    turns = (record or {}).get("turns", [])
    for i, turn in enumerate(turns):
        intent, emotion = turn["intent"], turn["emotion"]
        oos = " (out of scope)" if intent.get("out_of_scope") else ""
        scores = emotion.get("scores", {})
        measured = report.turn_latency_s[i] if i < len(report.turn_latency_s) else None
        latency = f"{measured:.2f} s" if measured is not None else "-"
        table.add_row(
            str(turn["n"]), turn["caller"],
            f"{intent['label']} {intent['confidence']:.2f}{oos}",
            f"{emotion['label']} (anger {scores.get('anger', 0):.2f})",
            turn["bot"], latency,
        )
    console.print(table)
    outcome = (record or {}).get("outcome", {})
    console.print(
        f"  ended: {outcome.get('reason', report.close_reason or report.error)}"
        + (f" → escalated: {outcome['escalation']}" if outcome.get("escalation") else "")
        + f"; barge-ins: {outcome.get('barge_ins', 0)}; bot audio {report.bot_audio_s:.1f} s\n"
    )


def run_demo(settings: Settings, calls: int = 3, keep: bool = False,
             console: Console | None = None) -> int:

    console = console or Console()
    already = read_info(settings) is not None
    t0 = time.monotonic()
    with progress_display(console) as (status, task):
        info = up(settings, status=status, progress=task)
        status(f"cluster ready in {time.monotonic() - t0:.0f} s; synthesizing the callers' voices")
        voice = CallerVoice()
        known = load_scenarios()
        scenarios = [known[i % len(known)] for i in range(calls)]
        simulated = [build_call(s, voice) for s in scenarios]
        status(f"placing {calls} simulated call(s) through {info.media_url}")
    exit_code = 0
    try:
        reports, records = asyncio.run(place_calls(
            info, list(zip(scenarios, simulated, strict=True)), settings=settings))
        latencies: list[float] = []
        for scenario, report, record in zip(scenarios, reports, records, strict=True):
            print_call(console, f"Call: {scenario.name}", report, record)
            latencies += [x for x in report.turn_latency_s if x is not None]
            if report.error or record is None:
                exit_code = 1
        failed = sum(1 for r in reports if r.error)
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        console.print(
            f"[bold]Summary[/bold]: {len(reports) - failed}/{len(reports)} calls completed, "
            f"{len(latencies)} bot turns; end of caller speech → first bot audio: "
            + (f"p50 {p50:.2f} s, p95 {p95:.2f} s" if latencies else "no turns answered")
        )
    finally:
        if not keep and not already:
            stopped = down(settings, status=lambda s: console.print(f"[dim]·[/dim] {s}"))
            console.print(f"stopped: {', '.join(stopped)}")
        elif keep:
            console.print("cluster left running (callfleet down to stop it)")
    return exit_code
