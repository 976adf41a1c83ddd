"""Reads the message export dataset straight into Arrow batches, for export runs.

Export runs read millions of rows: a Python object per value would cost more than encoding
the Parquet files. The ADBC drivers (Apache Arrow's database connectivity) read SQLite and
PostgreSQL (COPY) into Arrow columns in C. They run in a child process (export_stream.py)
that streams Arrow IPC batches through a pipe:
- the SQLite driver links its own copy of SQLite, and two copies in one process break each
  other's file locks (closing a file drops every POSIX lock of the process on it);
- the child reads while the run's process encodes and writes files: two cores, no GIL shared.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
from sqlalchemy.engine import make_url

from txmsg.store.export_stream import TARGET_VARIABLE


class ArrowReader:
    """The records with after < id <= upto, in id order, batch by batch (export_stream.FLAT)."""

    def __init__(self, database_url: str, after: int, upto: int, batch_rows: int) -> None:
        url = make_url(database_url)
        engine = url.get_backend_name()
        if engine == "sqlite":
            target = url.database or ""
        else:
            target = url.set(drivername="postgresql").render_as_string(hide_password=False)
        args = [sys.executable, "-m", "txmsg.store.export_stream", engine, str(after), str(upto)]
        self._proc = subprocess.Popen(
            [*args, str(batch_rows)],
            env={**os.environ, TARGET_VARIABLE: target},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._reader: pa.ipc.RecordBatchStreamReader | None = None

    def next(self) -> pa.RecordBatch | None:
        """The next batch, None at the end. Blocking: call it from a worker thread."""
        assert self._proc.stdout is not None
        try:
            if self._reader is None:
                self._reader = pa.ipc.open_stream(self._proc.stdout)
            return self._reader.read_next_batch()
        except StopIteration:
            self._check()
            return None
        except pa.ArrowInvalid:  # the stream broke off: the child failed
            self._check()
            raise

    def _check(self) -> None:
        assert self._proc.stderr is not None
        if self._proc.wait() != 0:
            lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"reading the dataset failed: {lines[-1] if lines else '?'}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
