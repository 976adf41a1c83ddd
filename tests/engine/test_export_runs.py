"""Export runs on both engines against real files: crash and retry, one process at a time,
records arriving during a run, schedules, the retention purge, the SMS shape, the send guard."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from pyarrow import fs as pafs

from export_support import (
    S3_KEY_ID,
    S3_SECRET,
    S3Server,
    list_files,
    read_ndjson_files,
    read_parquet_files,
    untagged,
)
from helpers import queued_event
from txmsg.core.errors import DomainError
from txmsg.core.export_flow import parse_create
from txmsg.core.export_record import email_record, sms_record, to_micros
from txmsg.core.queue import Outcome
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.engine.exporter import Exporter
from txmsg.store import export_flows as flow_store
from txmsg.store import message_export
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import export_flows

RETENTION = timedelta(days=7)
LOCAL = pafs.LocalFileSystem()
DAY_A = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
DAY_B = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The export folder (beside the SQLite database file, not holding it)."""
    return tmp_path / "out"


def _email(i: int, at: datetime) -> Any:
    return email_record(
        pkey=f"PK{i:08d}",
        event_id="EVTcart",
        version=2,
        sent_at=at + timedelta(seconds=i),
        to_email=f"user{i}@example.org",
        to_name=None,
        from_email="shop@example.com",
        from_name="Shop",
        reply_to=None,
        subject=f"Subject {i}",
        html=f"<p>{i}</p>",
        text=f"{i}",
    )


async def _load(db: Database, records: list[Any], ingested: datetime | None = None) -> None:
    await db.write(message_export.insert_in, records, to_micros(ingested or utcnow()))


async def _flow(db: Database, path: Path, name: str = "lake", fmt: str = "parquet") -> None:
    await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
    body = {"name": name, "format": fmt, "destination": {"type": "local", "path": str(path)}}
    await db.write(flow_store.create, parse_create(body, RETENTION), utcnow())


def _visible(path: Path) -> list[str]:
    return [f for f in list_files(LOCAL, str(path)) if not f.split("/")[-1].startswith(".")]


def _exported_ids(path: Path, files: list[str]) -> list[str]:
    return [r["messageID"] for r in read_parquet_files(LOCAL, str(path), files).to_pylist()]


def _two_days() -> list[Any]:
    """120 records of day A, 130 of day B, then 10 late ones of day A again (id order)."""
    return (
        [_email(i, DAY_A) for i in range(120)]
        + [_email(i, DAY_B) for i in range(120, 250)]
        + [_email(i, DAY_A) for i in range(250, 260)]
    )


async def test_failed_run_is_retried_with_the_same_files(db: Database, out: Path) -> None:
    await _load(db, _two_days())
    await _flow(db, out)
    exporter = Exporter(db, RETENTION, batch_rows=40, max_rows_per_file=50)

    async def crash(batch: int) -> None:
        if batch == 3:
            raise RuntimeError("disk full")

    exporter.after_batch = crash
    failed = await exporter.run("lake")
    assert failed.status == "failed" and "disk full" in failed.error
    # a completed file may already be there; the watermark has not moved
    assert untagged(failed.files) == [
        "date=2026-11-21/part-1-0.parquet",
        "date=2026-11-21/part-1-1.parquet",
    ]
    assert _visible(out) == failed.files
    assert (await db.read(flow_store.get, "lake")).watermark == 0

    exporter.after_batch = None
    done = await exporter.run("lake")
    assert (done.run, done.status, done.attempts, done.records) == (1, "succeeded", 2, 260)
    assert set(failed.files) < set(done.files)  # the same names again: rewritten
    assert untagged(done.files) == [
        "date=2026-11-21/part-1-0.parquet",
        "date=2026-11-21/part-1-1.parquet",
        "date=2026-11-21/part-1-2.parquet",
        "date=2026-11-22/part-1-0.parquet",
        "date=2026-11-22/part-1-1.parquet",
        "date=2026-11-22/part-1-2.parquet",
    ]
    assert list_files(LOCAL, str(out)) == done.files  # no temporary file left
    ids = _exported_ids(out, done.files)
    assert sorted(ids) == [f"PK{i:08d}" for i in range(260)]  # each exactly once
    sizes = [pq.ParquetFile(out / f).metadata.num_rows for f in done.files]
    assert sizes == [50, 50, 30, 50, 50, 30]
    assert (await db.read(flow_store.get, "lake")).watermark > 0
    nothing = await exporter.run("lake")
    assert (nothing.run, nothing.records, nothing.files) == (2, 0, [])


@pytest.mark.parametrize("stop", [RuntimeError("disk full"), asyncio.CancelledError()])
async def test_a_stopped_run_leaves_no_partial_object_on_s3(
    db: Database, s3: S3Server, stop: BaseException
) -> None:
    await _load(db, _two_days())
    bucket = s3.make_bucket()
    destination = {
        "type": "s3",
        "bucket": bucket,
        "prefix": "lake",
        "endpoint_url": s3.endpoint_url,
        "access_key_id": S3_KEY_ID,
        "secret_access_key": S3_SECRET,
    }
    body = {"name": "lake", "format": "parquet", "destination": destination}
    await db.write(flow_store.create, parse_create(body, RETENTION), utcnow())
    exporter = Exporter(db, RETENTION, batch_rows=40, max_rows_per_file=50)

    async def crash(batch: int) -> None:
        if batch == 3:
            raise stop

    exporter.after_batch = crash
    base = f"{bucket}/lake"
    try:
        failed = await exporter.run("lake")
    except asyncio.CancelledError:
        complete = 2
        gc.collect()  # a stream left open is completed when dropped
    else:
        assert failed.status == "failed"
        complete = len(failed.files)
    # the two files completed before the stop; none of the open ones, half-written
    found = list_files(s3.fs, base)
    assert len(found) == complete == 2, found
    assert sizes(s3.fs, base, found) == [50, 50]
    exporter.after_batch = None
    exporter.clock = lambda: utcnow() + timedelta(minutes=5)  # a cancelled run's lock lapsed
    done = await exporter.run("lake")
    assert (done.status, done.records) == ("succeeded", 260)
    assert list_files(s3.fs, base) == done.files
    assert sorted(
        r["messageID"] for r in read_parquet_files(s3.fs, base, done.files).to_pylist()
    ) == [f"PK{i:08d}" for i in range(260)]


def sizes(fs: pafs.FileSystem, base: str, files: list[str]) -> list[int]:
    return [pq.ParquetFile(fs.open_input_file(f"{base}/{f}")).metadata.num_rows for f in files]


async def test_crashed_run_is_taken_over_once_its_lock_lapses(
    db: Database, database_url: str, out: Path
) -> None:
    await _load(db, _two_days())
    await _flow(db, out, fmt="json")
    lease = timedelta(seconds=30)
    first = Exporter(db, RETENTION, batch_rows=40, max_rows_per_file=50, lock_lease=lease)

    async def die(batch: int) -> None:
        if batch == 4:
            raise asyncio.CancelledError  # stopped: its open files go, its lock stays

    first.after_batch = die
    with pytest.raises(asyncio.CancelledError):
        await first.run("lake")
    flow = await db.read(flow_store.get, "lake")
    assert flow.watermark == 0 and flow.lock_until > utcnow()

    # another process: refused while the lock holds, takes the run over once it lapsed
    other_db = Database(database_url)
    try:
        now = utcnow()
        other = Exporter(other_db, RETENTION, batch_rows=40, max_rows_per_file=50)
        other.clock = lambda: now
        with pytest.raises(DomainError) as refused:
            await other.run("lake")
        assert refused.value.status == 409
        other.clock = lambda: now + lease + timedelta(seconds=1)
        done = await other.run("lake")
    finally:
        await other_db.dispose()
    assert (done.run, done.status, done.attempts, done.records) == (1, "succeeded", 2, 260)
    assert _visible(out) == done.files
    assert all(f.endswith(".ndjson") for f in done.files)
    ids = [r["messageID"] for r in read_ndjson_files(LOCAL, str(out), done.files)]
    assert sorted(ids) == [f"PK{i:08d}" for i in range(260)]


async def test_one_process_runs_a_flow_at_a_time(
    db: Database, database_url: str, out: Path
) -> None:
    await _load(db, [_email(i, DAY_B) for i in range(100)])
    await _flow(db, out)
    first = Exporter(db, RETENTION, batch_rows=30)
    started, proceed = asyncio.Event(), asyncio.Event()

    async def hold(batch: int) -> None:
        started.set()
        await proceed.wait()

    first.after_batch = hold
    running = asyncio.create_task(first.run("lake"))
    await asyncio.wait_for(started.wait(), 10)
    other_db = Database(database_url)
    try:
        other = Exporter(other_db, RETENTION)
        with pytest.raises(DomainError) as refused:
            await other.run("lake")
        assert refused.value.status == 409
        with pytest.raises(DomainError):  # nor deleted while it runs
            await other_db.write(flow_store.delete, "lake", utcnow())
        proceed.set()
        done = await running
        assert (done.status, done.records) == ("succeeded", 100)
        after = await other.run("lake")
        assert (after.run, after.records) == (2, 0)
    finally:
        await other_db.dispose()


async def test_records_arriving_during_a_run_go_to_the_next(db: Database, out: Path) -> None:
    await _load(db, [_email(i, DAY_B) for i in range(50)])
    await _flow(db, out)
    exporter = Exporter(db, RETENTION, batch_rows=20)

    async def more(batch: int) -> None:
        if batch == 1:
            await _load(db, [_email(i, DAY_B) for i in range(50, 60)])

    exporter.after_batch = more
    first = await exporter.run("lake")
    assert first.records == 50
    exporter.after_batch = None
    second = await exporter.run("lake")
    assert second.records == 10
    assert _exported_ids(out, second.files) == [f"PK{i:08d}" for i in range(50, 60)]


async def test_due_flows_run_once_on_schedule(db: Database, database_url: str, out: Path) -> None:
    await _flow(db, out)
    await _load(db, [_email(1, DAY_B)])
    now = utcnow()
    other_db = Database(database_url)
    try:
        one, two = Exporter(db, RETENTION), Exporter(other_db, RETENTION)
        one.clock = two.clock = lambda: now
        await one.run_due()
        assert await db.read(flow_store.list_runs, "lake") == []  # due in an hour
        one.clock = two.clock = lambda: now + timedelta(hours=1, seconds=1)
        await asyncio.gather(one.run_due(), two.run_due())
    finally:
        await other_db.dispose()
    runs = await db.read(flow_store.list_runs, "lake")
    assert [(r.run, r.records) for r in runs] == [(1, 1)]
    await one.run_due()  # the next run is an hour later
    assert len(await db.read(flow_store.list_runs, "lake")) == 1


async def test_purge_removes_records_past_retention(db: Database) -> None:
    now = utcnow()
    await _load(db, [_email(1, DAY_B)], ingested=now - timedelta(days=7, minutes=1))
    await _load(db, [_email(2, DAY_B)], ingested=now - timedelta(days=6))
    exporter = Exporter(db, RETENTION)
    exporter.clock = lambda: now
    assert await exporter.purge() == 1
    left = await db.read(message_export.list_records, 0, 10)
    assert [r.message_id for r in left] == ["PK00000002"]
    exporter.clock = lambda: now + timedelta(days=1, minutes=1)
    assert await exporter.purge() == 1
    assert await db.read(message_export.list_records, 0, 10) == []


async def test_a_purge_of_records_not_yet_exported_is_a_warning(
    db: Database, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    old = now - timedelta(days=8)
    await _load(db, [_email(i, DAY_A) for i in range(3)], ingested=old)
    await _flow(db, out / "done", "done")
    exporter = Exporter(db, RETENTION)
    assert (await exporter.run("done")).records == 3
    await _load(db, [_email(i, DAY_A) for i in range(3, 5)], ingested=old)
    await _load(db, [_email(5, DAY_A)])  # within retention: not purged
    await _flow(db, out / "late", "late")
    with caplog.at_level(logging.INFO, logger="txmsg.engine.exporter"):
        assert await exporter.purge() == 5
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "5 message export records past retention purged before export flows had exported "
        "them: done (2), late (5) (TXMSG_EXPORT_RETENTION_DAYS is 7 days)"
    )
    caplog.clear()
    await exporter.run("done")
    await exporter.run("late")
    await _load(db, [_email(6, DAY_A)], ingested=old)  # exported by neither: told again
    with caplog.at_level(logging.INFO, logger="txmsg.engine.exporter"):
        assert await exporter.purge() == 1
    assert "1 message export records" in caplog.text and "done (1), late (1)" in caplog.text
    await exporter.run("done")
    await exporter.run("late")
    caplog.clear()
    await _load(db, [_email(7, DAY_A)], ingested=old)
    await exporter.run("done")
    await exporter.run("late")
    with caplog.at_level(logging.INFO, logger="txmsg.engine.exporter"):
        assert await exporter.purge() == 1  # exported by both first: no warning
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


async def test_records_after_the_purge_emptied_the_dataset_are_exported(
    db: Database, out: Path
) -> None:
    now = utcnow()
    await _load(db, [_email(i, DAY_A) for i in range(5)], ingested=now - timedelta(days=8))
    await _flow(db, out, fmt="json")
    exporter = Exporter(db, RETENTION)
    first = await exporter.run("lake")
    assert (first.status, first.records) == ("succeeded", 5)
    assert await exporter.purge() == 5  # the dataset is empty: no id left to count on
    await _load(db, [_email(i, DAY_B) for i in range(5, 8)])
    fresh = await db.read(message_export.list_records, 0, 10)
    assert min(r.id for r in fresh) > (await db.read(flow_store.get, "lake")).watermark
    second = await exporter.run("lake")
    assert (second.status, second.records) == ("succeeded", 3)
    ids = [r["messageID"] for r in read_ndjson_files(LOCAL, str(out), second.files)]
    assert sorted(ids) == [f"PK{i:08d}" for i in range(5, 8)]


async def test_sms_records_keep_their_shape(db: Database, out: Path) -> None:
    sms = sms_record(
        pkey="PKSMS0001",
        event_id="EVTotp",
        version=1,
        sent_at=DAY_B,
        to_number="+33612345678",
        from_numbers=["+15005550006", "+15005550007"],
        message="Your code is 123456",
        profile_id="profile-42",
    )
    await _load(db, [sms, _email(1, DAY_B)])
    for fmt, folder in (("parquet", out / "p"), ("json", out / "j")):
        await _flow(db, folder, name=fmt, fmt=fmt)
        run = await Exporter(db, RETENTION).run(fmt)
        assert run.records == 2
        if fmt == "parquet":
            rows = read_parquet_files(LOCAL, str(folder), run.files).to_pylist()
            assert rows[0]["recipient"] == {"email": None, "name": None, "number": "+33612345678"}
            assert rows[0]["sender"]["numbers"] == ["+15005550006", "+15005550007"]
            assert rows[0]["content"]["message"] == "Your code is 123456"
            assert rows[0]["profileID"] == "profile-42"
            assert rows[1]["sender"]["numbers"] is None and rows[1]["profileID"] is None
        else:
            rows = read_ndjson_files(LOCAL, str(folder), run.files)
            assert rows[0]["recipient"] == {"number": "+33612345678"}
            assert rows[0]["sender"] == {"numbers": ["+15005550006", "+15005550007"]}
            assert rows[0]["content"] == {"message": "Your code is 123456"}
            assert rows[0]["profileID"] == "profile-42" and "profileID" not in rows[1]
        assert rows[0]["channel"] == "sms" and rows[0]["messagePublicationID"] == "EVTotp/1"
        assert rows[0]["eventType"] == "message.sent" and rows[0]["isTestExecution"] is False


async def test_a_record_is_written_iff_the_sent_status_is(db: Database) -> None:
    """The funnel's cycle writes the record with the outcome, only while the lease holds."""
    now = utcnow()
    new = [
        queued_event("EVTcart", f"u{i}@example.org", pkey=f"PKGUARD{i}", now=now) for i in range(3)
    ]
    _, _, leased, *_ = await db.write(
        write_cycle, CycleRequest(new=new, free=3, lease=timedelta(minutes=1))
    )
    assert len(leased) == 3
    sent = utcnow()

    def outcome(event: Any, token: str, status: EventStatus) -> Outcome:
        record = replace(_email(0, sent), message_id=event.pkey)
        return Outcome(event.id, token, status, message_version=2, sent_at=sent, export=record)

    outcomes = [
        outcome(leased[0], leased[0].lease_token, EventStatus.PROCESSED),
        outcome(leased[1], "not-the-lease", EventStatus.PROCESSED),  # lease lost
        outcome(leased[2], leased[2].lease_token, EventStatus.PROCESSED),
    ]
    await db.write(write_cycle, CycleRequest(outcomes=outcomes))
    records = await db.read(message_export.list_records, 0, 10)
    assert [r.message_id for r in records] == ["PKGUARD0", "PKGUARD2"]
    statuses = [(await db.read(get_event, "EVTcart", f"PKGUARD{i}")).status for i in range(3)]
    assert statuses == ["processed", "processing", "processed"]
    # and a replay of the same outcomes (lease now cleared) adds nothing
    await db.write(write_cycle, CycleRequest(outcomes=outcomes))
    assert len(await db.read(message_export.list_records, 0, 10)) == 2


async def test_cli_runs_a_flow(db: Database, database_url: str, out: Path) -> None:
    await _load(db, [_email(i, DAY_B) for i in range(3)])
    await _flow(db, out)
    env = {**os.environ, "TXMSG_DATABASE_URL": database_url}
    cli = [sys.executable, "-m", "txmsg.cli", "export", "run"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=60)

    done = await asyncio.to_thread(run, "lake")
    assert done.returncode == 0, done.stderr
    assert '"status":"succeeded"' in done.stdout and '"records":3' in done.stdout
    assert untagged(_visible(out)) == ["date=2026-11-22/part-1-0.parquet"]
    missing = await asyncio.to_thread(run, "nope")
    assert missing.returncode == 1 and "no export flow 'nope'" in missing.stderr


async def test_a_run_whose_lock_was_taken_over_stops(db: Database, out: Path) -> None:
    await _load(db, [_email(i, DAY_B) for i in range(100)])
    await _flow(db, out)
    now = utcnow()
    exporter = Exporter(db, RETENTION, batch_rows=30, lock_lease=timedelta(seconds=10))
    exporter.clock = lambda: now

    def take_over(conn: Any) -> None:
        conn.execute(sa.update(export_flows).values(lock_token="other-process"))

    async def stalled(batch: int) -> None:
        if batch == 1:  # this process stalled past its lease; another one took the flow
            await db.write(take_over)
            exporter.clock = lambda: now + timedelta(seconds=11)

    exporter.after_batch = stalled
    run = await exporter.run("lake")
    # the other process owns the run now: this one stops and leaves the run to it
    assert run.status == "running" and run.error is None
    flow = await db.read(flow_store.get, "lake")
    assert (flow.watermark, flow.lock_token) == (0, "other-process")
    assert _visible(out) == []  # it stopped at its next renewal: no file completed
