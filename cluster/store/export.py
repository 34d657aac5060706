"""Calls and turns out of the store as files people and tools read: CSV (one header row,
ISO times in UTC) or Parquet (typed columns, written in row groups as the rows stream in).
Phone numbers are masked unless the caller asks otherwise (`cluster.store.masking`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Boolean, DateTime, Float, Integer, Table

from cluster.store.masking import mask_row
from cluster.store.models import Call, CallTurn

__all__ = ["CALL_COLUMNS", "FORMATS", "TURN_COLUMNS", "jsonable", "write_csv", "write_parquet"]

FORMATS = ("csv", "parquet")
CALL_COLUMNS: tuple[str, ...] = tuple(c.name for c in Call.__table__.columns)
TURN_COLUMNS: tuple[str, ...] = tuple(c.name for c in CallTurn.__table__.columns)


def jsonable(row: dict[str, Any], mask: bool = True) -> dict[str, Any]:
    """A row as JSON-ready values: ISO times, numbers masked (unless `mask` is False)."""
    row = mask_row(row) if mask else dict(row)
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value


def write_csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], out: IO[str],
              mask: bool = True) -> int:
    """Rows as CSV to `out`; returns how many."""
    writer = csv.writer(out)
    writer.writerow(columns)
    count = 0
    for row in rows:
        row = mask_row(row) if mask else row
        writer.writerow([_cell(row.get(c)) for c in columns])
        count += 1
    return count


def _arrow_schema(table: Table, columns: tuple[str, ...]):
    import pyarrow as pa  # heavy: pyarrow only for Parquet exports

    def arrow_type(column):
        kind = column.type
        if isinstance(kind, DateTime) or getattr(kind, "impl", None) is not None and isinstance(
                kind.impl, DateTime):
            return pa.timestamp("us", tz="UTC")
        if isinstance(kind, Boolean):
            return pa.bool_()
        if isinstance(kind, Integer):
            return pa.int64()
        if isinstance(kind, Float):
            return pa.float64()
        return pa.string()

    return pa.schema([(c, arrow_type(table.c[c])) for c in columns])


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_parquet(rows: Iterable[dict[str, Any]], table: Table, columns: tuple[str, ...],
                  path: Path, mask: bool = True, row_group: int = 10_000) -> int:
    """Rows as a Parquet file at `path` (typed after the table's columns); returns how
    many. JSON columns (a turn's actions) are written as JSON text."""
    import pyarrow as pa  # heavy: pyarrow only for Parquet exports
    import pyarrow.parquet as pq  # heavy: pyarrow only for Parquet exports

    schema = _arrow_schema(table, columns)
    count = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for chunk in _chunks(rows, row_group):
            data = {c: [] for c in columns}
            for row in chunk:
                row = mask_row(row) if mask else row
                for c in columns:
                    value = row.get(c)
                    if isinstance(value, (list, dict)):
                        value = json.dumps(value, separators=(",", ":"))
                    data[c].append(value)
            writer.write_table(pa.table(data, schema=schema))
            count += len(chunk)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count
