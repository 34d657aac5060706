"""A priority gate for CPU-bound model work inside a replica.

Many calls share one TTS replica. Letting every request run at once in its own thread
makes them share the cores evenly, so all of them finish late together; and the
read-ahead of a reply's later sentences (synthesized while the first one plays) competes
with other callers' first sentences, which are what those callers are waiting in silence
for. The gate admits `slots` holders at a time and, among the waiting ones, the lowest
priority number first (ties: first come, first served).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["PriorityGate"]


class PriorityGate:
    def __init__(self, slots: int = 1):
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self._active = 0
        self._waiting: list[tuple[int, int, asyncio.Future]] = []
        self._order = itertools.count()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, fut in self._waiting if not fut.done())

    @asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        """Wait for a slot (lower `priority` first), hold it for the block."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self._active < self.slots and not self.waiting:
            self._active += 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted just as it was cancelled
                self._release()
            raise

    def _release(self) -> None:
        self._active -= 1
        while self._waiting and self._active < self.slots:
            _, _, fut = heapq.heappop(self._waiting)
            if fut.done():  # its waiter was cancelled
                continue
            self._active += 1
            fut.set_result(None)
