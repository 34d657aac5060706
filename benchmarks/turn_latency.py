"""Turn latency: end of caller speech → first bot audio frame at the caller, p50/p95,
for 1 and 4 concurrent simulated calls through a real cluster (Ray Serve, Redis, real
models). Also breaks the server side down by stage from the calls' Redis records.

    python benchmarks/turn_latency.py                 # starts a cluster, stops it after
    python benchmarks/turn_latency.py --reuse         # use a running `callfleet up`
    python benchmarks/turn_latency.py --concurrency 1 4 8 --turns 4 --json

Prints one human line per concurrency level and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.records.call_state import RedisCallRecorder  # noqa: E402
from cluster.runtime.lifecycle import down, read_info, up  # noqa: E402
from configs.settings import load_settings  # noqa: E402
from telephony import codecs  # noqa: E402
from telephony.call_data import percentile  # noqa: E402
from telephony.media_fork import ForkMetadata  # noqa: E402
from telephony.sim.fork_client import CallerTurn, SimulatedCall, run_call  # noqa: E402
from telephony.sim.scenarios import trim_silence  # noqa: E402

LINES = [
    "Hi, I'd like to know where my order is.",
    "Can I change the delivery address?",
    "I want a refund for the shoes I bought.",
    "What time are you open tomorrow?",
    "Please cancel my last order.",
    "Yes, that's right.",
]


def make_calls(voice, n: int, turns: int, rate: int) -> list[SimulatedCall]:
    calls = []
    for i in range(n):
        call_turns = []
        for t in range(turns):
            text = LINES[(i + t) % len(LINES)]
            pcm = voice.speak(text, 16000)
            if rate == 8000:
                pcm = codecs.phone_line(pcm, 16000)
            call_turns.append(CallerTurn(trim_silence(pcm, rate), text))
        meta = ForkMetadata(call_uuid=str(uuid.uuid4()), sample_rate=rate, direction="inbound")
        calls.append(SimulatedCall(meta, call_turns, max_wait_s=30, hangup_after_s=1.0))
    return calls


async def run_level(info, rounds: list[list[SimulatedCall]]) -> dict:
    started = time.monotonic()
    reports = []
    for calls in rounds:
        reports += await asyncio.gather(
            *(run_call(f"{info.media_url}/{c.meta.call_uuid}", c) for c in calls)
        )
    wall = time.monotonic() - started
    calls = [c for r in rounds for c in r]
    await asyncio.sleep(0.5)
    recorder = RedisCallRecorder(info.redis_url)
    stages: dict[str, list[float]] = {"asr_ms": [], "nlu_ms": [], "bot_ms": [], "first_audio_ms": []}
    try:
        for c in calls:
            record = await recorder.get_call(c.meta.call_uuid) or {}
            for turn in record.get("turns", []):
                for key in stages:
                    value = turn["timing"].get(key)
                    if value is not None:
                        stages[key].append(value)
    finally:
        await recorder.close()
    latencies = [x for r in reports for x in r.turn_latency_s if x is not None]
    missing = sum(1 for r in reports for x in r.turn_latency_s if x is None)
    return {
        "calls": len(calls),
        "concurrency": len(rounds[0]),
        "turns": len(latencies),
        "unanswered_turns": missing,
        "failed_calls": sum(1 for r in reports if r.error),
        "p50_s": round(percentile(latencies, 0.5) or 0, 3),
        "p95_s": round(percentile(latencies, 0.95) or 0, 3),
        "max_s": round(max(latencies, default=0), 3),
        "server_p50_ms": {k: round(percentile(v, 0.5) or 0, 1) for k, v in stages.items()},
        "wall_s": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--turns", type=int, default=4, help="caller turns per call")
    parser.add_argument("--rounds", type=int, default=2, help="repeat each level (more samples)")
    parser.add_argument("--rate", type=int, choices=(8000, 16000), default=16000)
    parser.add_argument("--reuse", action="store_true", help="use the cluster `callfleet up` started")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    from telephony.sim.caller_voice import CallerVoice

    settings = load_settings()
    started_here = False
    info = read_info(settings) if args.reuse else None
    if info is None:
        info = up(settings, status=lambda s: None if args.json else print("·", s, file=sys.stderr))
        started_here = True
    voice = CallerVoice()
    results = {}
    try:
        asyncio.run(run_level(info, [make_calls(voice, 1, 1, args.rate)]))  # warm-up, not counted
        for n in args.concurrency:
            rounds = [make_calls(voice, n, args.turns, args.rate) for _ in range(args.rounds)]
            merged = asyncio.run(run_level(info, rounds))
            results[str(n)] = merged
            if not args.json:
                print(f"{n} concurrent call(s): end of speech → first bot audio p50 "
                      f"{merged['p50_s']:.3f} s, p95 {merged['p95_s']:.3f} s over {merged['turns']} "
                      f"turns ({merged['unanswered_turns']} unanswered, {merged['failed_calls']} "
                      f"failed calls); server p50 ms {merged['server_p50_ms']}")
    finally:
        if started_here:
            down(settings, status=lambda s: None)
    out = {
        "benchmark": "turn_latency",
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_version()}",
        "asr_model": settings.asr.model,
        "sample_rate": args.rate,
        "target_p50_s_1_call": 1.2,
        "levels": results,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
