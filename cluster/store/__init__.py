"""The durable store: calls, their turns and the compliance ledger in SQL (SQLAlchemy 2,
Alembic migrations shipped here; SQLite by default, PostgreSQL in production).

Writes arrive only through the records outbox (`cluster.records.outbox`), drained by
`RecordWriter`; people read through `RecordStore` (`callfleet records`, the API's
``/api/records``). See docs/records.md.
"""

from cluster.store.engine import head_revision, make_engine, migrate, normalise_url, redact_url
from cluster.store.ingest import BadEvent, rows_for
from cluster.store.masking import mask_number, mask_row
from cluster.store.repository import CallQuery, ComplianceWindow, RecordStore, StoreUnavailable
from cluster.store.writer import RecordWriter, WriterStats

__all__ = [
    "BadEvent",
    "CallQuery",
    "ComplianceWindow",
    "RecordStore",
    "RecordWriter",
    "StoreUnavailable",
    "WriterStats",
    "head_revision",
    "make_engine",
    "mask_number",
    "mask_row",
    "migrate",
    "normalise_url",
    "redact_url",
    "rows_for",
]
