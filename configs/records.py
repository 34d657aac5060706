"""The ``records:`` settings section: how call records and the compliance ledger reach the
durable SQL store (``store_url``) and how long they stay there (the store is
`cluster.store`, its outbox `cluster.records.outbox`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RecordsSettings"]


class RecordsSettings(BaseModel):
    """The record writer drains the Redis outbox into SQL; purges run in the writer."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    writer: bool = Field(True, description="`callfleet up` starts the record writer actor "
                         "(false: events wait in the Redis outbox until one runs)")
    auto_migrate: bool = Field(
        True, description="upgrade the SQL schema (Alembic) when the writer, the API or a "
        "`callfleet records` command opens the store; false: run `callfleet records migrate`")
    batch_size: int = Field(500, ge=1, le=10_000, description="outbox events per SQL transaction")
    block_ms: int = Field(1000, ge=10, le=60_000,
                          description="how long the writer waits for new events per read")
    linger_ms: int = Field(
        250, ge=0, le=10_000, description="after a batch smaller than batch_size, wait this "
        "long before reading again, so events arrive in fewer, larger transactions (less CPU "
        "beside live calls; records reach SQL at most this much later)")
    retry_max_s: float = Field(30.0, ge=0.1, le=600,
                               description="longest back-off while the database is down")
    retention_days: int | None = Field(
        365, ge=1, description="calls and their turns are purged this many days after they "
        "started; null = kept forever")
    compliance_retention_days: int | None = Field(
        1825, ge=1, description="dial attempts, do-not-call changes and calling-window "
        "decisions are kept this long (5 years: the TSR's record-keeping period); null = "
        "forever")
    purge_interval_s: float = Field(3600.0, ge=10, description="how often the writer purges")
