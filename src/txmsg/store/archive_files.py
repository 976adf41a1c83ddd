"""Parquet files of expired delivery-log rows: written whole (temporary name, fsync, rename),
read back whole. One file holds one chunk of rows, so memory stays bounded either way."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from txmsg.durable import make_folders, publish

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("pkey", pa.string()),
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("detail", pa.string()),  # the entry's JSON detail, as JSON text
        # An entry recorded once (a first open, a receipt): restored with its key, so the same
        # one reported again is still dropped. Files written before it existed lack it.
        ("once_key", pa.string()),
    ]
)


def relative_path(event_id: str, now: datetime) -> str:
    """Where an archive goes, relative to the data directory (unique per call)."""
    stamp = now.strftime("%Y%m%dT%H%M%S")
    return f"interactions/event_id={event_id}/{stamp}-{secrets.token_hex(4)}.parquet"


def write(data_dir: Path, path: str, rows: list[dict[str, Any]]) -> None:
    target = data_dir / path
    make_folders(target.parent)
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for row in rows:
        for name in ("id", "pkey", "event_id", "kind", "at", "once_key"):
            columns[name].append(row[name])
        detail = row["detail"]
        columns["detail"].append(None if detail is None else orjson.dumps(detail).decode())
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    temporary = target.with_name(target.name + ".tmp")
    pq.write_table(table, temporary, compression="zstd")
    publish(temporary, target)


def read(data_dir: Path, path: str) -> list[dict[str, Any]]:
    """The rows of an archive, as delivery-log rows without their old id."""
    table = pq.read_table(data_dir / path)
    if "once_key" not in table.column_names:
        table = table.append_column("once_key", pa.nulls(table.num_rows, pa.string()))
    out = []
    for row in table.select(SCHEMA.names).cast(SCHEMA).to_pylist():
        detail = row["detail"]
        out.append(
            {
                "pkey": row["pkey"],
                "event_id": row["event_id"],
                "kind": row["kind"],
                "at": row["at"],
                "detail": None if detail is None else orjson.loads(detail),
                "once_key": row["once_key"],
            }
        )
    return out


def remove_if_present(data_dir: Path, path: str) -> None:
    """An archive whose rows could not be deleted from the live table is not kept."""
    (data_dir / path).unlink(missing_ok=True)
