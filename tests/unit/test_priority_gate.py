"""The TTS replica's priority gate: one job at a time, first sentences before read-ahead."""

from __future__ import annotations

import asyncio

import pytest

from deployments.priority_gate import PriorityGate

pytestmark = pytest.mark.unit


def test_waiters_go_by_priority_then_arrival() -> None:
    async def scenario() -> list[str]:
        gate, order = PriorityGate(1), []
        release = asyncio.Event()

        async def job(name: str, priority: int, hold: asyncio.Event | None = None) -> None:
            async with gate.hold(priority):
                order.append(name)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(job("busy", 0, release))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(job(name, prio)) for name, prio in
                 (("read-ahead A", 1), ("first B", 0), ("read-ahead C", 1), ("first D", 0))]
        await asyncio.sleep(0)
        assert gate.active == 1 and gate.waiting == 4
        release.set()
        await asyncio.gather(first, *tasks)
        assert gate.active == 0
        return order

    assert asyncio.run(scenario()) == ["busy", "first B", "first D", "read-ahead A", "read-ahead C"]


def test_a_cancelled_waiter_neither_runs_nor_leaks_its_slot() -> None:
    async def scenario() -> list[str]:
        gate, order = PriorityGate(1), []
        release = asyncio.Event()

        async def job(name: str, hold: asyncio.Event | None = None) -> None:
            async with gate.hold():
                order.append(name)
                if hold is not None:
                    await hold.wait()

        busy = asyncio.create_task(job("busy", release))
        await asyncio.sleep(0)
        gone = asyncio.create_task(job("hung up"))
        later = asyncio.create_task(job("next caller"))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        await asyncio.gather(busy, later)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert gate.active == 0
        async with gate.hold():  # the slot is free again
            order.append("after")
        return order

    assert asyncio.run(scenario()) == ["busy", "next caller", "after"]


def test_slots_allow_that_many_at_once() -> None:
    async def scenario() -> int:
        gate, peak, running = PriorityGate(2), 0, 0

        async def job() -> None:
            nonlocal peak, running
            async with gate.hold():
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(job() for _ in range(6)))
        return peak

    assert asyncio.run(scenario()) == 2
    with pytest.raises(ValueError):
        PriorityGate(0)
