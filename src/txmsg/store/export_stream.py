"""The child process of an export run's reader (see export_reader.py): the dataset's records
of a range, read with ADBC, written to stdout as an Arrow IPC stream. Imports only pyarrow,
the driver and `core`: it starts in a fraction of a second."""

from __future__ import annotations

import os
import sys
from dataclasses import fields
from typing import Any, BinaryIO

import pyarrow as pa

from txmsg.core.export_record import ExportRecord

# The dataset's columns in the order runs read them: ExportRecord's fields, plus id and times.
RECORD_FIELDS = tuple(f.name for f in fields(ExportRecord) if f.name != "timestamp")
COLUMNS = ("id", "ingestion_us", "timestamp_us", *RECORD_FIELDS)
_INTEGERS = {"id", "ingestion_us", "timestamp_us"}


def _type(name: str) -> pa.DataType:
    if name in _INTEGERS:
        return pa.int64()
    return pa.bool_() if name == "is_test" else pa.string()


FLAT = pa.schema([(name, _type(name)) for name in COLUMNS])
TARGET_VARIABLE = "TXMSG_EXPORT_READER_TARGET"  # not in argv: a PostgreSQL URI may hold a password


def _typing_row() -> str:
    # SQLite has no column types to report: the driver infers them from the first rows, where
    # a column may be all null (every SMS field of an email batch). A first row of the right
    # types (id -1, dropped below) fixes them.
    values = ["-1" if n == "id" else "0" if n in _INTEGERS | {"is_test"} else "''" for n in COLUMNS]
    return "SELECT " + ", ".join(f"{v} AS {n}" for v, n in zip(values, COLUMNS, strict=True))


def stream(engine: str, target: str, after: int, upto: int, batch_rows: int, out: BinaryIO) -> None:
    """Records with after < id <= upto, in id order, as IPC batches of FLAT.

    `engine` is sqlite (`target` the database file) or postgresql (`target` a libpq URI).
    """
    # Both bounds are integers: inlined, so PostgreSQL's driver can use COPY.
    select = (
        f"SELECT {', '.join(COLUMNS)} FROM message_export "
        f"WHERE id > {int(after)} AND id <= {int(upto)} ORDER BY id"
    )
    skip_first = engine == "sqlite"
    if skip_first:
        import adbc_driver_sqlite.dbapi as sqlite_adbc

        conn: Any = sqlite_adbc.connect(target)
        query = f"{_typing_row()} UNION ALL SELECT * FROM ({select})"
        options = {"adbc.sqlite.query.batch_rows": str(batch_rows)}
    else:
        import adbc_driver_postgresql.dbapi as pg_adbc

        conn = pg_adbc.connect(target)
        query, options = select, {}
    with conn, conn.cursor() as cursor:
        if options:
            cursor.adbc_statement.set_options(**options)
        cursor.execute(query)
        with pa.ipc.new_stream(out, FLAT) as sink:
            for batch in cursor.fetch_record_batch():
                if skip_first:
                    skip_first = False
                    batch = batch.slice(1)
                columns = [c.cast(f.type) for c, f in zip(batch.columns, FLAT, strict=True)]
                batch = pa.RecordBatch.from_arrays(columns, schema=FLAT)
                # PostgreSQL's driver sizes batches in bytes: bound them in rows too.
                for offset in range(0, len(batch), batch_rows):
                    sink.write_batch(batch.slice(offset, batch_rows))


def main() -> None:
    engine, after, upto, batch_rows = sys.argv[1], *(int(a) for a in sys.argv[2:5])
    stream(engine, os.environ[TARGET_VARIABLE], after, upto, batch_rows, sys.stdout.buffer)


if __name__ == "__main__":
    main()
