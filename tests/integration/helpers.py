"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio

from cluster.call_state import RedisCallRecorder


async def fetch(info, call_id: str) -> dict:
    """A call's context from Redis, once it has ended (or what there is after 10 s)."""
    recorder = RedisCallRecorder(info.redis_url)
    try:
        record = None
        for _ in range(100):
            record = await recorder.get_call(call_id)
            if record and record.get("status") == "ended":
                return record
            await asyncio.sleep(0.1)
        return record
    finally:
        await recorder.close()
