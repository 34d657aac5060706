"""What the durable records cost the call path, and how fast the writer drains them.

Three measurements, on a real redis-server (the embedded one) and a real database:

1. **Outbox cost**: one call records 2000 turns back to back through the gateway's
   `RedisCallRecorder`, alternating blocks with and without the outbox event in the
   recorder's transaction (without = the recorder as it was before issue 17).
2. **32 calls, with and without the store**: `--calls` concurrent calls record `--turns`
   turns each (one every `--gap-ms` per call), alternating `--rounds` times between no
   outbox event and the outbox with a record writer in another process (as the actor is)
   draining it into SQLite meanwhile. Reported: the latency of `recorder.turn()` (what a
   turn waits for its record, after its first audio went out) p50/p95/p99.
3. **Drain rate**: a backlog of events (32 calls' worth by default) written into an empty
   store by one writer: events/s and turns/s, for SQLite and, when its binaries are
   installed, PostgreSQL (a throwaway server, as the tests start it).

    python benchmarks/records_store.py                 # 32 calls x 20 turns, 3 rounds
    python benchmarks/records_store.py --no-postgres

Prints one human-readable line per figure, then one JSON object as the last line. It does
not start Ray or the models: the turn latency a caller hears (ASR, NLU, TTS) is ~1 s at
p95 (docs/benchmarks.md); what this measures is the part of a turn the records add.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis  # noqa: E402

from bots.script.state import DialogState  # noqa: E402
from cluster.records import call_state  # noqa: E402
from cluster.records.call_state import RedisCallRecorder  # noqa: E402
from cluster.records.outbox import OUTBOX, Outbox  # noqa: E402
from cluster.runtime.redis_server import EmbeddedRedis  # noqa: E402
from cluster.store import RecordStore, RecordWriter  # noqa: E402
from configs.records import RecordsSettings  # noqa: E402
from telephony.call_data import CallOutcome, TurnRecord, TurnTiming, percentile  # noqa: E402
from telephony.media_fork import ForkMetadata  # noqa: E402
from tests.fakes.dialer import free_port  # noqa: E402
from training.models.outputs import EmotionResult, IntentResult  # noqa: E402


def _turn(n: int) -> TurnRecord:
    return TurnRecord(
        n=n, bot="Your order 4711 left our warehouse this morning and arrives tomorrow.",
        bot_state="order_status", caller="hi I wanted to know where my order is",
        intent=IntentResult("order_status", 0.91, [("order_status", 0.91), ("refund", 0.05)]),
        emotion=EmotionResult("neutral", {"neutral": 0.8, "angry": 0.1, "happy": 0.1}),
        timing=TurnTiming(endpoint_ms=400.0, prep_ms=402.0, asr_ms=650.0, asr_engine_ms=420.0,
                          nlu_ms=700.0, bot_ms=705.0, first_audio_ms=980.0))


async def call_path(url: str, calls: int, turns: int, gap_ms: float, tag: str,
                    outbox: bool) -> list[float]:
    """Per-turn record latency (ms) of `calls` concurrent calls."""
    original = call_state.add_to
    if not outbox:  # the recorder as it was before the outbox
        call_state.add_to = lambda pipe, event: None
    recorder = RedisCallRecorder(url, ttl_s=3600)
    latencies: list[float] = []
    try:
        async def one(i: int) -> None:
            call_uuid = f"{tag}-{i:03d}"
            await recorder.call_started(ForkMetadata(
                call_uuid=call_uuid, sample_rate=8000, caller=f"+1415555{i:04d}",
                callee="+12125550100", direction="inbound", campaign="support",
                extra={"bot": "shop"}))
            state = DialogState(script="shop", variant="a", call={"id": call_uuid})
            await asyncio.sleep(gap_ms / 1000 * (i / calls))  # calls do not move in step
            for n in range(1, turns + 1):
                state.seq = state.turns = n
                t0 = time.perf_counter()
                await recorder.turn(call_uuid, _turn(n), state)
                latencies.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(gap_ms / 1000)
            await recorder.call_ended(call_uuid, CallOutcome(turns=turns))

        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await recorder.close()
        call_state.add_to = original
    return latencies


def _writer_process(url: str, store_url: str, seconds: float, queue) -> None:
    """A record writer in its own process (as the actor is), draining for `seconds`."""

    async def main() -> int:
        client = aioredis.from_url(url)
        store = RecordStore.open(store_url)
        writer = RecordWriter(store, Outbox(client, consumer="bench"),
                              RecordsSettings(block_ms=200))
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        store.close()
        await client.aclose()
        return writer.stats.written

    queue.put(asyncio.run(main()))


async def drain(url: str, store_url: str, batch: int) -> dict[str, float]:
    client = aioredis.from_url(url)
    waiting = await client.xlen(OUTBOX)
    store = RecordStore.open(store_url)
    writer = RecordWriter(store, Outbox(client, consumer=f"drain-{time.time_ns()}"),
                          RecordsSettings(batch_size=batch))
    t0 = time.perf_counter()
    written = 0
    while n := await writer.step(block_ms=None):
        written += n
    seconds = time.perf_counter() - t0
    with store.connection() as connection:
        turns = connection.exec_driver_sql("SELECT count(*) FROM call_turns").scalar_one()
    store.close()
    await client.aclose()
    return {"events": written, "waiting_before": waiting, "seconds": round(seconds, 3),
            "events_per_s": round(written / seconds, 1), "turns": int(turns),
            "turns_per_s": round(turns / seconds, 1)}


def stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 0.5), 3),
            "p95_ms": round(percentile(values, 0.95), 3),
            "p99_ms": round(percentile(values, 0.99), 3)}


async def sequential_cost(url: str, turns: int, block: int = 100) -> dict[str, float]:
    """One call recording `turns` turns back to back, alternating blocks with and without
    the outbox event: what the outbox adds to one turn's record write (no contention)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for b in range(turns // block):
        outbox = bool(b % 2)
        original = call_state.add_to
        if not outbox:
            call_state.add_to = lambda pipe, event: None
        recorder = RedisCallRecorder(url, ttl_s=3600)
        try:
            state = DialogState(script="shop", variant="a", call={"id": f"seq-{b}"})
            for n in range(1, block + 1):
                state.seq = state.turns = n
                t0 = time.perf_counter()
                await recorder.turn(f"seq-{b}", _turn(n), state)
                times[outbox].append((time.perf_counter() - t0) * 1e6)
        finally:
            await recorder.close()
            call_state.add_to = original
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    return {"without_us": round(mean[False], 1), "with_us": round(mean[True], 1),
            "added_us": round(mean[True] - mean[False], 1),
            "p50_without_us": round(percentile(times[False], 0.5), 1),
            "p50_with_us": round(percentile(times[True], 0.5), 1)}


async def run(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="callfleet-bench-records-"))
    redis_server = EmbeddedRedis(root / "redis", free_port())
    redis_server.start()
    url = redis_server.url
    report: dict = {"calls": args.calls, "turns": args.turns, "gap_ms": args.gap_ms}
    try:
        client = aioredis.from_url(url)
        cost = await sequential_cost(url, 2000)
        report["outbox_cost_per_turn_record"] = cost
        print(f"one turn's record write, no contention: {cost}")
        await client.delete(OUTBOX)

        # 32 calls without the store (no outbox event) and with it (outbox + a writer in
        # another process draining into SQLite), alternating round by round
        sqlite_url = f"sqlite:///{root / 'callfleet.db'}"
        RecordStore.open(sqlite_url).close()
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        seconds = 2 * args.rounds * (args.turns * args.gap_ms / 1000 + 1.5) + 5
        proc = context.Process(target=_writer_process, args=(url, sqlite_url, seconds, queue))
        proc.start()
        await asyncio.sleep(3)  # the writer process is importing and migrating
        without, with_store = [], []
        for r in range(args.rounds):  # alternate, so drift hits both alike
            without += await call_path(url, args.calls, args.turns, args.gap_ms, f"a{r}", False)
            with_store += await call_path(url, args.calls, args.turns, args.gap_ms, f"b{r}", True)
        proc.join(seconds + 30)
        report["turn_record_without_store"] = stats(without)
        report["turn_record_with_store"] = stats(with_store)
        report["written_by_concurrent_writer"] = queue.get(timeout=5) if not queue.empty() else None
        print(f"record a turn, {args.calls} calls, no store:   {stats(without)}")
        print(f"record a turn, {args.calls} calls, with store: {stats(with_store)} "
              f"({report['written_by_concurrent_writer']} events written meanwhile)")

        # drain rate from a backlog of one load's events
        backends = {"sqlite": f"sqlite:///{root / 'drain.db'}"}
        server = None
        if args.postgres:
            try:
                from tests.postgres import PostgresServer  # the tests' throwaway server

                server = PostgresServer().start()
                backends["postgresql"] = server.new_database()
            except Exception as exc:  # no binaries here: SQLite only
                print(f"PostgreSQL not measured: {exc}")
        try:
            for name, store_url in backends.items():
                await client.delete(OUTBOX)
                await call_path(url, args.calls, args.turns, 0.0, f"{name}", True)
                RecordStore.open(store_url).close()
                figures = await drain(url, store_url, args.batch)
                report[f"drain_{name}"] = figures
                print(f"drain into {name}: {figures}")
        finally:
            if server is not None:
                server.stop()
        await client.aclose()
    finally:
        redis_server.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=100.0,
                        help="time between one call's turns (default 100 ms)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="writer batch size")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
