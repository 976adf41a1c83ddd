"""Day-partitioned export files with deterministic names, visible only once complete.

A run writes `date=YYYY-MM-DD/part-<run>-<tag>-<n>.<ext>` under the destination: records go to
the partition of their send day, a new file starts every `max_rows_per_file` records of a
partition. `tag` is random, drawn when the run began and kept by its retries: names depend only
on the run and the records (read in id order), so a retried run rewrites the same files, and
no other flow's run (nor that of a flow deleted and made again, numbered from 1 again) has
them. A run's first attempt overwrites nothing all the same: it fails rather than replace a
file of its name. (Runs begun before tags, `tag` None, are named `part-<run>-<n>`.) Each file
in a local folder is written under a hidden temporary name (`.part-...tmp`, which dataset
readers skip), flushed to disk and renamed when closed. On S3 it is uploaded under its final key
(multipart once large), which appears when the upload completes; as pyarrow cannot abort an
upload, a run that fails or is cancelled completes its open files and deletes them at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from txmsg.core.export_record import document
from txmsg.destinations.arrow import SCHEMA, nest
from txmsg.durable import make_folders, publish

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
EXTENSIONS = {"parquet": ".parquet", "json": ".ndjson"}


def _day(days_since_epoch: int) -> str:
    return datetime.fromtimestamp(days_since_epoch * 86_400, UTC).strftime("%Y-%m-%d")


class _File:
    """One output file, open under its temporary name (in a local folder) or its final key (in
    a bucket, where an upload is seen only once complete)."""

    def __init__(self, fs: pafs.FileSystem, base: str, relative: str, fmt: str, compression: str):
        self.fs = fs
        self.relative = relative
        folder, name = relative.rsplit("/", 1)
        self.final = f"{base}/{relative}"
        self.local = isinstance(fs, pafs.LocalFileSystem)
        if self.local:
            self.temp = f"{base}/{folder}/.{name}.tmp"
            make_folders(f"{base}/{folder}")
        else:
            # One upload, no copy (S3 copies over 5 GB in one request): the object appears
            # when the upload completes. A bucket has no folders: no `prefix/` markers.
            self.temp = self.final
        self.rows = 0
        self.stream: Any = fs.open_output_stream(self.temp, compression=None)
        self.parquet: pq.ParquetWriter | None = None
        self.text: Any = None
        if fmt == "parquet":
            self.parquet = pq.ParquetWriter(
                self.stream, SCHEMA, compression=None if compression == "none" else compression
            )
        elif compression == "gzip":
            self.text = pa.CompressedOutputStream(self.stream, "gzip")
        else:
            self.text = self.stream

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        if self.text is not None and self.text is not self.stream:
            self.text.close()
        self.stream.close()  # on S3: the upload completes, the object appears
        if self.local:
            # Complete: now it may be seen, its content and name on disk first (the watermark
            # committed next counts on them).
            publish(self.temp, self.final)

    def abandon(self) -> None:
        """After an error: close without publishing, and remove the temporary file. On S3
        pyarrow cannot abort an upload (closing the stream, or dropping it, completes it): the
        object is completed, then deleted at once."""
        try:
            if self.parquet is not None:
                self.parquet.close()
            self.stream.close()
            self.fs.delete_file(self.temp)
        except Exception:  # the run already failed with the first error: log this one
            log.warning("closing an abandoned export file failed", exc_info=True)


class PartitionedWriter:
    def __init__(
        self,
        fs: pafs.FileSystem,
        base: str,
        fmt: str,
        compression: str,
        run: int,
        max_rows_per_file: int = 1_000_000,
        *,
        tag: str | None = None,
        overwrite: bool = False,
    ) -> None:
        self._fs = fs
        self._tag = tag
        self._overwrite = overwrite  # a retry: the files of an earlier attempt of this run
        self._base = base
        self._fmt = fmt
        self._compression = compression
        self._run = run
        self._max_rows = max_rows_per_file
        self._open: dict[int, _File] = {}  # day -> file being written
        self._next: dict[int, int] = {}  # day -> number of the next file
        self.files: list[str] = []  # completed, relative to the destination
        self.records = 0

    def _ext(self) -> str:
        ext = EXTENSIONS[self._fmt]
        return ext + ".gz" if self._fmt == "json" and self._compression == "gzip" else ext

    def _file(self, day: int) -> _File:
        current = self._open.get(day)
        if current is not None and current.rows >= self._max_rows:
            current.close()
            self.files.append(current.relative)
            current = None
        if current is None:
            n = self._next.get(day, 0)
            self._next[day] = n + 1
            run = self._run if self._tag is None else f"{self._run}-{self._tag}"
            relative = f"date={_day(day)}/part-{run}-{n}{self._ext()}"
            final = f"{self._base}/{relative}"
            if not self._overwrite and self._fs.get_file_info(final).type != pafs.FileType.NotFound:
                raise FileExistsError(
                    f"{relative} exists already: another export flow's file? Each flow needs a "
                    "destination of its own"
                )
            current = _File(self._fs, self._base, relative, self._fmt, self._compression)
            self._open[day] = current
        return current

    def write(self, flat: pa.RecordBatch) -> None:
        """Append records (dataset rows as stored, in id order) to their day's files."""
        if not len(flat):
            return
        days = pc.divide(flat.column("timestamp_us"), DAY_US)
        found = pc.unique(days).to_pylist()
        for day in found:
            part = flat if len(found) == 1 else flat.filter(pc.equal(days, day))
            offset = 0
            while offset < len(part):
                target = self._file(day)
                take = min(len(part) - offset, self._max_rows - target.rows)
                self._append(target, part.slice(offset, take))
                target.rows += take
                offset += take
        self.records += len(flat)

    def _append(self, target: _File, flat: pa.RecordBatch) -> None:
        if target.parquet is not None:
            target.parquet.write_batch(nest(flat))
        else:
            lines = [orjson.dumps(document(row)) for row in flat.to_pylist()]
            target.text.write(b"\n".join(lines) + b"\n")

    def close(self) -> list[str]:
        """Complete every open file; the names of all the run's files."""
        for day in sorted(self._open):
            current = self._open[day]
            current.close()
            self.files.append(current.relative)
        self._open.clear()
        return sorted(self.files)

    def abandon(self) -> None:
        for current in self._open.values():
            current.abandon()
        self._open.clear()
