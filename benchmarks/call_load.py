"""Call load: N concurrent simulated calls (default 1, 4, 8, 16, 32) through a running
cluster; per level the turn latency p50/p95 (end of caller speech → first bot audio at
the caller), the share of turns over 1.5 s, completed / failed / dropped calls and the
machine's CPU use. Reports the largest N that keeps p95 ≤ 1.5 s with no dropped call.

    callfleet up
    python benchmarks/call_load.py                       # media forks straight to the gateway
    python benchmarks/call_load.py --via esl --levels 1 4 8
    python benchmarks/call_load.py --json                # last line: one JSON object

Calls come from the shipped scenarios (configs/scenarios/default.yaml), voiced by the
simulated caller voice; a level's calls start `--stagger` seconds apart. Each level runs
`--rounds` times and pools the turns; `--warmup` calls go first and are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.runtime.lifecycle import connect_ray, read_info  # noqa: E402
from cluster.sim.results import summarize  # noqa: E402
from cluster.sim.simulate import place  # noqa: E402
from configs.settings import load_settings  # noqa: E402
from telephony.call_data import STAGES, percentile  # noqa: E402
from telephony.sim.caller_voice import CallerVoice  # noqa: E402
from telephony.sim.scenarios import build_call, load_scenarios  # noqa: E402

TARGET_P95_S = 1.5


def run_level(settings, info, scenarios, voice, n: int, stagger_s: float, via: str,
              rounds: int = 1) -> dict:
    """`rounds` runs of n concurrent calls, one after the other, their turns pooled (a
    level of 8 calls gives ~19 turns a round: too few for a steady p95 from one)."""
    results, call_uuids, wall, cpu = [], [], 0.0, []
    for _ in range(rounds):
        plan = [(scenarios[i % len(scenarios)], build_call(scenarios[i % len(scenarios)], voice))
                for i in range(n)]
        psutil.cpu_percent(None)
        started = time.monotonic()
        if via == "esl":
            from cluster.sim.via_esl import place_via_esl

            got, _records = asyncio.run(place_via_esl(settings, info, plan, stagger_s))
        else:
            got = asyncio.run(place(info, plan, stagger_s))
        cpu.append(psutil.cpu_percent(None))
        wall += time.monotonic() - started
        results += got
        call_uuids += [call.meta.call_uuid for _, call in plan]
    out = summarize(results, wall)
    answered = out["turns_answered"]
    out["share_over_1_5_s"] = round(out["turns_over_1_5_s"] / answered, 3) if answered else None
    out["cpu_percent"] = round(sum(cpu) / len(cpu), 1)
    out["concurrent_calls"] = n
    out["rounds"] = rounds
    out["stages_ms"] = asyncio.run(stage_times(info, call_uuids))
    return out


async def stage_times(info, call_uuids: list[str]) -> dict[str, dict[str, float]]:
    """p50/p95 of each turn stage of these calls, from their records in Redis. Each stage is
    measured from the endpoint (the gateway deciding the caller has finished), cumulative:
    queued → ASR done → intent+emotion done → bot decided → first audio out."""
    from cluster.records.call_state import RedisCallRecorder

    recorder = RedisCallRecorder(info.redis_url)
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    try:
        for call_uuid in call_uuids:
            record = await recorder.get_call(call_uuid) or {}
            for turn in record.get("turns", []):
                for stage, value in (turn.get("timing") or {}).items():
                    if stage in samples and value is not None:
                        samples[stage].append(float(value))
    finally:
        await recorder.close()
    return {stage: {"p50": round(percentile(v, 0.5) or 0.0, 1), "p95": round(percentile(v, 0.95) or 0.0, 1)}
            for stage, v in samples.items() if v}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between call starts")
    parser.add_argument("--via", choices=["fork", "esl"], default="fork")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per level, turns pooled (default 3)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="calls placed first and not counted: fills the TTS prompt cache "
                        "and wakes every replica, as on a floor that is already running "
                        "(0 = measure from cold)")
    parser.add_argument("--scenario", help="scenario YAML (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = load_settings(None)
    info = read_info(settings)
    if info is None:
        print("no running cluster: start one with `callfleet up`", file=sys.stderr)
        return 2
    if args.via == "esl":
        connect_ray(info.ray_address)
    scenarios = load_scenarios(args.scenario)
    voice = CallerVoice()
    if args.warmup:
        run_level(settings, info, scenarios, voice, args.warmup, args.stagger, args.via)
    levels = []
    for n in args.levels:
        level = run_level(settings, info, scenarios, voice, n, args.stagger, args.via, args.rounds)
        levels.append(level)
        print(f"{n:>3} calls: p50 {level['turn_latency_p50_s']:.2f} s  p95 "
              f"{level['turn_latency_p95_s']:.2f} s  over 1.5 s {level['share_over_1_5_s']}  "
              f"completed {level['completed']}/{level['calls']}  failed {level['failed']}  "
              f"dropped {level['dropped']}  turns {level['turns_answered']}  "
              f"cpu {level['cpu_percent']:.0f} %", file=sys.stderr)
        stages = level["stages_ms"]
        if stages:
            print("           stages after the endpoint, p50/p95 ms: " + "  ".join(
                f"{name.removesuffix('_ms')} {v['p50']:.0f}/{v['p95']:.0f}"
                for name, v in stages.items()), file=sys.stderr)
    ok = [lv["concurrent_calls"] for lv in levels
          if lv["turn_latency_p95_s"] <= TARGET_P95_S and lv["dropped"] == 0 and lv["failed"] == 0]
    best = max(ok) if ok else 0
    result = {
        "benchmark": "call_load",
        "via": args.via,
        "rounds": args.rounds,
        "warmup_calls": args.warmup,
        "machine": f"{platform.machine()} {psutil.cpu_count()} cpu(s)",
        "levels": levels,
        "max_calls_p95_under_1_5_s": best,
    }
    print(f"largest N with p95 ≤ {TARGET_P95_S} s and no dropped call: {best}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
