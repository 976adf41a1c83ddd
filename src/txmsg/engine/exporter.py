"""Export flows at work: runs (incremental, one process at a time) and the retention purge.

A run exports the dataset records between the flow's watermark and the highest committed id
at its start. A reader process streams them in id order as Arrow batches while the previous
batch is encoded and written (reading and writing overlap; a batch or two in memory, whatever
the size of the run). The watermark moves only once every file is complete, and a run that
failed or crashed is retried under the same number, range and file tag, rewriting the same
file names (which hold the tag: no other flow's): each record is exported exactly once per flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from txmsg.core.errors import DomainError, conflict, not_found
from txmsg.core.export_flow import days_text
from txmsg.core.export_record import to_micros
from txmsg.core.timeutil import utcnow
from txmsg.destinations.files import PartitionedWriter
from txmsg.destinations.filesystems import open_destination
from txmsg.metrics import Metrics
from txmsg.store import export_flows as flow_store
from txmsg.store import message_export
from txmsg.store.db import Database
from txmsg.store.export_reader import ArrowReader

log = logging.getLogger(__name__)

PURGE_BATCH = 10_000
# Records per batch read and per Parquet row group: about 8 MB of typical emails, so a run's
# two processes stay near 250 MB together whatever its size.
BATCH_ROWS = 10_000


def _arrow_memory_pool() -> None:
    """Arrow's default allocator (mimalloc) keeps much of what a run freed; jemalloc hands it
    back to the system, so a long-lived server's memory stays flat across runs. Left as it is
    when the installation chose one (ARROW_DEFAULT_MEMORY_POOL) or jemalloc is not built in."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


class Exporter:
    def __init__(
        self,
        db: Database,
        retention: timedelta,
        *,
        clock: Callable[[], datetime] = utcnow,
        batch_rows: int = BATCH_ROWS,
        lock_lease: timedelta = timedelta(seconds=120),
        max_rows_per_file: int = 1_000_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.retention = retention
        self.clock = clock  # replaceable: tests move time on
        self.batch_rows = batch_rows
        self.lock_lease = lock_lease
        self.max_rows_per_file = max_rows_per_file
        _arrow_memory_pool()
        # Test hook, awaited after each batch is written (e.g. to crash a run mid-way).
        self.after_batch: Callable[[int], Awaitable[None]] | None = None

    async def run(self, name: str) -> Any:
        """Run flow `name` now; the run's row. 409 if another process is running it."""
        token = secrets.token_hex(8)
        flow = await self.db.write(_acquire, name, token, self.clock(), self.lock_lease)
        if flow is None:
            raise conflict(f"export flow '{name}' is already running")
        try:
            plan = await self.db.write(flow_store.begin_run, name, self.clock())
        except BaseException:
            await self.db.write(flow_store.release, name, token)
            raise
        writer: PartitionedWriter | None = None
        try:
            fs, base = await asyncio.to_thread(open_destination, flow.destination, flow.secrets)
            writer = PartitionedWriter(
                fs,
                base,
                flow.format,
                flow.compression,
                plan.run,
                self.max_rows_per_file,
                tag=plan.tag,
                overwrite=plan.attempt > 1,  # the names hold the run's tag: its own files
            )
            await self._copy(name, token, plan, writer)
            files = await asyncio.to_thread(writer.close)
        except asyncio.CancelledError:
            # Stopped (the process shuts down): its open files are not left to be completed
            # half-written when dropped (S3). The lock lapses; another process retries.
            if writer is not None:
                await asyncio.to_thread(writer.abandon)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as the run's error, then retried
            if writer is not None:
                await asyncio.to_thread(writer.abandon)
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("export flow %s run %d failed: %s", name, plan.run, error)
            done = writer.files if writer is not None else []
            await self.db.write(flow_store.fail_run, name, token, plan, done, error, self.clock())
        else:
            finished = await self.db.write(
                flow_store.finish_run, name, token, plan, writer.records, files, self.clock()
            )
            if not finished:
                log.warning("export flow %s run %d: lock lost to another process", name, plan.run)
        run = await self.db.read(flow_store.get_run, name, plan.run)
        if run is None:
            raise not_found(f"export flow '{name}' was deleted during its run")
        self.metrics.export_runs.labels(name, run.status).inc()
        return run

    async def _copy(
        self, name: str, token: str, plan: flow_store.RunPlan, writer: PartitionedWriter
    ) -> None:
        if plan.to_id <= plan.from_id:
            return  # nothing new: no reader at all
        loop = asyncio.get_running_loop()
        # One thread reads, one writes: each reuses its own allocations (the memory stays
        # flat), and the two overlap.
        reading = ThreadPoolExecutor(1, thread_name_prefix="txmsg-export-read")
        writing = ThreadPoolExecutor(1, thread_name_prefix="txmsg-export-write")
        reader = await loop.run_in_executor(
            reading, ArrowReader, self.db.url, plan.from_id, plan.to_id, self.batch_rows
        )
        pending = loop.run_in_executor(reading, reader.next)
        batches = 0
        renew_at = self.clock() + self.lock_lease / 2
        try:
            while True:
                batch = await pending
                if batch is None:
                    return
                # The next batch is read while this one is encoded and written.
                pending = loop.run_in_executor(reading, reader.next)
                await loop.run_in_executor(writing, writer.write, batch)
                del batch
                batches += 1
                now = self.clock()
                if now >= renew_at:  # the lock is renewed at half its lease
                    renew_at = now + self.lock_lease / 2
                    until = now + self.lock_lease
                    if not await self.db.write(flow_store.renew, name, token, until):
                        raise RuntimeError("the run's lock lapsed; another process took it over")
                if self.after_batch is not None:
                    await self.after_batch(batches)
        finally:
            # Let an outstanding read end (the reader is not shared between threads at once).
            await asyncio.gather(pending, return_exceptions=True)
            await loop.run_in_executor(reading, reader.close)
            reading.shutdown(wait=False)
            writing.shutdown(wait=False)

    async def run_due(self) -> None:
        """Run every flow whose schedule has come (each claimed by one process only)."""
        now = self.clock()
        for name in await self.db.read(flow_store.due, now):
            if not await self.db.write(flow_store.claim_due, name, now):
                continue
            try:
                run = await self.run(name)
            except DomainError as exc:  # running elsewhere (a manual run), or deleted
                log.info("scheduled run of export flow %s skipped: %s", name, exc.detail)
            except Exception:
                log.exception("scheduled run of export flow %s could not start", name)
            else:
                log.info(
                    "export flow %s run %d %s: %d records", name, run.run, run.status, run.records
                )

    async def purge(self) -> int:
        """Delete dataset records past the retention window, in short transactions."""
        cutoff = to_micros(self.clock() - self.retention)
        lost, behind = await self.db.read(flow_store.unexported_before, cutoff)
        if lost:  # retention shorter than a flow's lag (or a flow failing for that long)
            log.warning(
                "%d message export records past retention purged before export flows had "
                "exported them: %s (TXMSG_EXPORT_RETENTION_DAYS is %s)",
                lost,
                ", ".join(f"{name} ({count})" for name, count in behind.items()),
                days_text(self.retention),
            )
        total = 0
        while True:
            deleted = await self.db.write(message_export.purge_in, cutoff, PURGE_BATCH)
            total += deleted
            if deleted < PURGE_BATCH:
                break
        if total:
            log.info("%d message export records past retention purged", total)
        return total

    async def scheduled(self) -> None:
        """The scheduler's job: due flows, then the purge."""
        await self.run_due()
        await self.purge()


def _acquire(conn: Any, name: str, token: str, now: datetime, lease: timedelta) -> Any | None:
    flow_store.require(conn, name)
    if not flow_store.acquire(conn, name, token, now, lease):
        return None
    return flow_store.get(conn, name)
