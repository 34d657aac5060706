"""`RecordWriter`: drains the records outbox (`cluster.records.outbox`) into the durable
store, off the call path.

One loop: read a batch (the writer's own unacknowledged entries first), write it in one
transaction of idempotent upserts, and only then acknowledge and delete it. So

* a writer killed after reading, or after writing but before acknowledging, reads the
  same batch again when it restarts, and writing it again changes nothing;
* while the database is down (`StoreUnavailable`) the batch stays pending and every new
  event stays in the stream; the writer backs off (up to ``records.retry_max_s``) and
  goes on where it stopped once the database answers;
* an event that cannot become rows (`BadEvent`), or that the database refuses on its own,
  is moved to the dead letters with the reason, so it cannot hold up the rest.

It also runs the retention purge every ``records.purge_interval_s`` and, when given an
`SlaWatch`, the tickets' SLA pass every ``tickets.sla_check_interval_s``. Plain asyncio; the
database work runs in a thread. The Ray actor that hosts it is `cluster.actors.records`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from cluster.records.outbox import Outbox, OutboxEntry
from cluster.store.ingest import BadEvent, rows_for
from cluster.store.repository import RecordStore, StoreUnavailable
from cluster.store.tickets import SlaWatch
from configs.records import RecordsSettings

__all__ = ["RecordWriter", "WriterStats"]

log = logging.getLogger("callfleet.store.writer")


@dataclass
class WriterStats:
    """What the writer has done since it started (its `status`)."""

    written: int = 0  # events in SQL
    batches: int = 0
    dead: int = 0  # events parked in the dead letters
    failures: int = 0  # batches the database could not take (retried)
    last_error: str = ""
    last_purge: dict[str, int] = field(default_factory=dict)
    lag_s: float | None = None  # age of the oldest event of the last batch


class RecordWriter:
    """Outbox → SQL. `step` is one batch; `run` loops until stopped."""

    def __init__(self, store: RecordStore, outbox: Outbox,
                 settings: RecordsSettings | None = None,
                 clock: Callable[[], float] = time.time, sla: SlaWatch | None = None):
        self.store = store
        self.sla = sla
        self.outbox = outbox
        self.settings = settings or RecordsSettings()
        self.clock = clock
        self.stats = WriterStats()
        self._next_purge = 0.0

    async def step(self, block_ms: int | None = None) -> int:
        """Read one batch and write it; returns the events written. Raises
        `StoreUnavailable` (the batch stays pending) and Redis errors."""
        entries = await self.outbox.read(self.settings.batch_size, block_ms)
        if not entries:
            return 0
        gone = [e for e in entries if e.event is None and e.error == "entry deleted"]
        unreadable = [e for e in entries if e.event is None and e not in gone]
        good = [e for e in entries if e.event is not None]
        why: dict[str, str] = {}
        try:
            await asyncio.to_thread(self.store.apply, [e.event for e in good])
        except StoreUnavailable:
            raise
        except (BadEvent, SQLAlchemyError):
            # one event spoils the batch: write them one by one, park the ones that fail
            good, refused = await self._one_by_one(good, why)
            unreadable.extend(refused)
        if unreadable:
            await self.outbox.dead_letter(unreadable, why)
            self.stats.dead += len(unreadable)
            log.warning("%d outbox event(s) moved to the dead letters", len(unreadable))
        await self.outbox.ack([e.id for e in good + gone])
        self.stats.written += len(good)
        self.stats.batches += 1
        oldest = min((float(e.event.get("at") or 0) for e in good if e.event), default=0)
        self.stats.lag_s = max(0.0, self.clock() - oldest) if oldest else None
        return len(good)

    async def _one_by_one(self, entries: list[OutboxEntry], why: dict[str, str]
                          ) -> tuple[list[OutboxEntry], list[OutboxEntry]]:
        written, refused = [], []
        for entry in entries:
            try:
                rows_for(entry.event)  # BadEvent before touching the database
                await asyncio.to_thread(self.store.apply, [entry.event])
                written.append(entry)
            except StoreUnavailable:
                raise
            except (BadEvent, SQLAlchemyError) as exc:
                why[entry.id] = f"{type(exc).__name__}: {str(exc)[:300]}"
                refused.append(entry)
        return written, refused

    async def purge_if_due(self) -> dict[str, int] | None:
        """Run the retention purge when ``purge_interval_s`` has passed since the last."""
        now = self.clock()
        if now < self._next_purge:
            return None
        self._next_purge = now + self.settings.purge_interval_s
        counts = await asyncio.to_thread(
            self.store.purge, datetime.fromtimestamp(now, timezone.utc),
            self.settings.retention_days, self.settings.compliance_retention_days)
        self.stats.last_purge = counts
        if any(counts.values()):
            log.info("retention purge: %s", counts)
        return counts

    async def _sla_if_due(self) -> None:
        """The tickets' SLA pass; its failure never holds up the outbox (retried on the
        next interval)."""
        if self.sla is None:
            return
        try:
            await self.sla.check_if_due()
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.warning("ticket SLA pass failed: %s", type(exc).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop` is set; database or Redis outages are waited out."""
        delay = 0.0
        while not stop.is_set():
            try:
                await self.purge_if_due()
                await self._sla_if_due()
                written = await self.step(self.settings.block_ms)
                delay = 0.0
                if written >= self.settings.batch_size or not self.settings.linger_ms:
                    continue
                delay = self.settings.linger_ms / 1000  # let the next batch fill up
            except (StoreUnavailable, RedisError, OSError) as exc:
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                delay = min(self.settings.retry_max_s, max(0.5, delay * 2))
                log.warning("record writer waiting %.1f s: %s", delay, self.stats.last_error)
            except Exception as exc:  # a bug must not end the loop: log and go on
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                delay = min(self.settings.retry_max_s, max(1.0, delay * 2))
                log.exception("record writer step failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
