"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import time

from cluster.records.call_state import RedisCallRecorder


async def fetch(info, call_uuid: str) -> dict:
    """A call's context from Redis, once it has ended (or what there is after 10 s)."""
    recorder = RedisCallRecorder(info.redis_url)
    try:
        record = None
        for _ in range(100):
            record = await recorder.get_call(call_uuid)
            if record and record.get("status") == "ended":
                return record
            await asyncio.sleep(0.1)
        return record
    finally:
        await recorder.close()


class Traffic:
    """Keeps `concurrency` requests in flight; records each answer's version or failure."""

    def __init__(self, handle, concurrency: int = 3):
        self.handle = handle
        self.concurrency = concurrency
        self.answers: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()

    async def _client(self, n: int) -> None:
        texts = ["hello there", "goodbye for now", "hi", "see you later"]
        i = n
        while not self._stop.is_set():
            try:
                result = await self.handle.classify.remote(texts[i % len(texts)])
                self.answers.append((time.monotonic(), result.model_version))
            except Exception as exc:  # any failure a caller would see
                self.failures.append(repr(exc)[:300])
            i += 1

    def longest_gap_s(self) -> float:
        """The longest time without any answer (how long callers would have waited)."""
        times = sorted(t for t, _ in self.answers)
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    async def run_while(self, action) -> None:
        clients = [asyncio.create_task(self._client(n)) for n in range(self.concurrency)]
        await asyncio.sleep(1.0)
        await action()
        await asyncio.sleep(1.0)
        self._stop.set()
        await asyncio.gather(*clients)
