"""Archive files written before they held `once_key` are read back, that column empty."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from txmsg.store import archive_files

OLD_SCHEMA = pa.schema([f for f in archive_files.SCHEMA if f.name != "once_key"])


def test_an_archive_without_once_keys_reads_back(tmp_path: Path) -> None:
    at = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    row = {"id": 7, "pkey": "P1", "event_id": "EVTx", "kind": "opened", "at": at}
    old = pa.Table.from_pylist([{**row, "detail": '{"machine":false}'}], schema=OLD_SCHEMA)
    (tmp_path / "old").mkdir()
    pq.write_table(old, tmp_path / "old" / "a.parquet")
    assert archive_files.read(tmp_path, "old/a.parquet") == [
        {"pkey": "P1", "event_id": "EVTx", "kind": "opened", "at": at,
         "detail": {"machine": False}, "once_key": None}
    ]  # fmt: skip

    archive_files.write(tmp_path, "new/b.parquet", [{**row, "detail": None, "once_key": "first"}])
    [back] = archive_files.read(tmp_path, "new/b.parquet")
    assert back["once_key"] == "first" and back["detail"] is None
