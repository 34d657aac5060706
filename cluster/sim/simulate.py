"""`callfleet simulate`: N concurrent simulated calls against a running cluster, a report
per call and a summary (turn latency p50/p95, completed / failed / dropped calls).

A call is *completed* when every caller turn got a bot answer and the call ended
normally (the bot closed it with 1000, or the caller hung up after the last answer);
*failed* when the websocket could not be opened or errored; *dropped* when it was cut
off abnormally (a close code other than 1000/1001, or turns left unanswered).

Forked straight to the gateway, each call is first made known the way the ESL controller
makes a real one known (`ForkIssuer`): its record in Redis (answered, the scenario's
customer as ``callfleet_customer_<field>`` variables) and a fork credential in its
metadata, so the gateway admits it as it admits FreeSWITCH's forks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

from rich.console import Console

from cluster.actors.esl import RedisCallRecordSink
from cluster.runtime.fork_secret import with_fork_secret
from cluster.runtime.lifecycle import ClusterError, ClusterInfo, connect_ray, read_info
from cluster.sim.results import CallResult, summarize
from cluster.sim.via_esl import place_via_esl
from configs.settings import Settings
from telephony.call_fsm import CallPhase, CallRecord
from telephony.fork_auth import CREDENTIAL_FIELD, ForkCredentials
from telephony.sim.caller_voice import CallerVoice
from telephony.sim.fork_client import SimulatedCall, run_call
from telephony.sim.scenarios import Scenario, build_call, load_scenarios


class ForkIssuer:
    """What the ESL controller does before FreeSWITCH opens a call's fork, for simulated
    calls forked straight to the gateway: the call's record (``cf:esl:<uuid>``, answered),
    then a credential in the fork's metadata (when the cluster has a fork secret)."""

    def __init__(self, settings: Settings, redis_url: str):
        auth = with_fork_secret(settings, create=False).freeswitch.fork_auth
        self.credentials = ForkCredentials.from_settings(auth)
        self.sink = RedisCallRecordSink(redis_url, ttl_s=settings.call_ttl_s)
        self.records: dict[str, CallRecord] = {}

    async def answered(self, call: SimulatedCall) -> None:
        meta = call.meta
        variables = {f"callfleet_customer_{k}": str(v) for k, v in meta.customer.items()}
        record = CallRecord(meta.call_uuid, meta.direction or "inbound",
                            destination=meta.callee or "", caller_id=meta.caller or "",
                            variables=variables)
        record.move(CallPhase.ANSWERED)
        self.records[meta.call_uuid] = record
        await self.sink.save(record)
        if self.credentials is not None:
            credential = self.credentials.issue(meta.call_uuid)
            call.meta = dataclasses.replace(meta, extra={**meta.extra, CREDENTIAL_FIELD: credential})

    async def hung_up(self, call: SimulatedCall) -> None:
        record = self.records.pop(call.meta.call_uuid, None)
        if record is not None:
            record.hangup_cause = "NORMAL_CLEARING"
            record.move(CallPhase.ENDED)
            await self.sink.save(record)

    async def aclose(self) -> None:
        await self.sink.redis.aclose()


async def place(info: ClusterInfo, calls: list[tuple[Scenario, SimulatedCall]],
                stagger_s: float, settings: Settings | None = None) -> list[CallResult]:
    """Place the calls; with `settings`, each is made known first (`ForkIssuer`), else
    only a loopback-only local gateway admits them."""
    issuer = ForkIssuer(settings, info.redis_url) if settings is not None else None

    async def one(i: int, scenario: Scenario, call: SimulatedCall) -> CallResult:
        await asyncio.sleep(i * stagger_s)
        if issuer is not None:
            await issuer.answered(call)
        try:
            report = await run_call(f"{info.media_url}/{call.meta.call_uuid}", call)
        finally:
            if issuer is not None:
                await issuer.hung_up(call)
        return CallResult(scenario.name, report)

    try:
        return await asyncio.gather(*(one(i, s, c) for i, (s, c) in enumerate(calls)))
    finally:
        if issuer is not None:
            await issuer.aclose()


def run_simulation(settings: Settings, calls: int, scenario_file: str | None = None,
                   stagger_s: float = 0.25, as_json: bool = False,
                   console: Console | None = None, via: str = "fork") -> int:

    console = console or Console(stderr=True)
    settings = with_fork_secret(settings, create=False)  # the one `callfleet up` generated
    info = read_info(settings)
    if info is None:
        raise ClusterError("no running cluster: start one with `callfleet up` first")
    scenarios = load_scenarios(scenario_file)
    voice = CallerVoice()
    plan = []
    for i in range(calls):
        scenario = scenarios[i % len(scenarios)]
        plan.append((scenario, build_call(scenario, voice)))
    if not as_json:
        route = "the ESL controller and a simulated FreeSWITCH" if via == "esl" else info.media_url
        console.print(f"placing {calls} call(s) through {route} …")
    started = time.monotonic()
    records: list[dict] = []
    if via == "esl":

        connect_ray(info.ray_address)  # in the main thread (Ray installs signal handlers)
        results, records = asyncio.run(place_via_esl(settings, info, plan, stagger_s))
    else:
        results = asyncio.run(place(info, plan, stagger_s, settings))
    summary = summarize(results, time.monotonic() - started)
    if records:
        summary["call_phases"] = {
            " → ".join(p for p, _ in r["history"]): sum(
                1 for x in records if x["history"] == r["history"]) for r in records}
        summary["hangup_causes"] = {
            c: sum(1 for r in records if r.get("hangup_cause") == c)
            for c in {r.get("hangup_cause") for r in records}}
    if not as_json:
        for n, result in enumerate(results, 1):
            r = result.report
            lat = ", ".join(f"{x:.2f}" if x is not None else "—" for x in r.turn_latency_s)
            console.print(
                f"call {n:>3} {result.status:<9} {result.scenario[:44]:<44} "
                f"turns [{lat}] s  ended by {r.hung_up_by or '-'} "
                f"({r.close_code} {r.close_reason or r.error or ''})"
            )
        console.print(
            f"[bold]{summary['completed']}/{summary['calls']} completed[/bold], "
            f"{summary['failed']} failed, {summary['dropped']} dropped; turn latency p50 "
            f"{summary['turn_latency_p50_s']:.2f} s, p95 {summary['turn_latency_p95_s']:.2f} s "
            f"over {summary['turns_answered']} turns ({summary['turns_over_1_5_s']} over 1.5 s)"
        )
        if records:
            console.print(f"ESL call records: {summary['hangup_causes']}")
    if as_json:
        print(json.dumps(summary))  # the last line of stdout, for scripts
    return 0 if summary["failed"] == 0 and summary["dropped"] == 0 else 1
