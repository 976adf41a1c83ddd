"""Message export: 1,000,000 dataset records through an export flow to Parquet, beside raw
pyarrow writing the same rows to Parquet in the same run.

Each side runs in a fresh process (spawned), so its peak memory (ru_maxrss) is its own:
- flow: `Exporter.run` of a Parquet flow to a local folder, reading the dataset from the
  database (SQLite by default) in batches and writing day-partitioned files;
- raw pyarrow: the same rows, generated in memory a batch at a time, built into Arrow arrays
  of the same schema and written with `pyarrow.parquet.ParquetWriter` (same compression, same
  row groups); only the pyarrow part is timed.

Usage: python bench/export.py [--records 1000000] [--database-url URL] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from txmsg.engine.exporter import BATCH_ROWS as BATCH  # the flow's batches and row groups

START = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=2)  # the records spread over two days: two partitions


def records(first: int, count: int, total: int) -> list[Any]:
    """Deterministic email records, as the dispatcher builds them."""
    from txmsg.core.export_record import email_record

    step = SPAN / total
    out = []
    for i in range(first, first + count):
        name = f"Customer{i % 9973}"
        out.append(
            email_record(
                pkey=f"06H0M{i:021d}",
                event_id="EVTcartAbandonment",
                version=3,
                sent_at=START + step * i,
                to_email=f"customer{i}@example.org",
                to_name=None,
                from_email="shop@example.com",
                from_name="Example Shop",
                reply_to="help@example.com",
                subject=f"{name}, your cart is waiting ({i % 7 + 1} items)",
                html=(
                    f"<html><body><h1>Hello {name}</h1><p>You left {i % 7 + 1} items in your "
                    f"cart, worth {(i % 500) + 0.99:.2f} EUR.</p><p><a href='https://shop."
                    f"example.com/cart/{i}'>Back to your cart</a></p><p>Reference 06H0M{i:021d}"
                    "</p><footer>Example Shop, 1 Main Street</footer></body></html>"
                ),
                text=(
                    f"Hello {name}\nYou left {i % 7 + 1} items in your cart, worth "
                    f"{(i % 500) + 0.99:.2f} EUR.\nhttps://shop.example.com/cart/{i}\n"
                    f"Reference 06H0M{i:021d}"
                ),
            )
        )
    return out


async def load(url: str, total: int) -> None:
    from txmsg.core.export_record import to_micros
    from txmsg.store import message_export
    from txmsg.store.db import Database

    db = Database(url, sqlite_synchronous="OFF")
    await db.migrate()
    try:
        for first in range(0, total, BATCH):
            chunk = records(first, min(BATCH, total - first), total)
            await db.write(message_export.insert_in, chunk, to_micros(datetime.now(UTC)))
    finally:
        await db.dispose()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flow_side(url: str, out: str, run_no: int, queue: Any) -> None:
    """A fresh process: run a Parquet flow over every record."""
    from txmsg.core.export_flow import parse_create
    from txmsg.core.timeutil import utcnow
    from txmsg.engine.exporter import Exporter
    from txmsg.store import export_flows
    from txmsg.store.db import Database

    async def main() -> tuple[float, int, int]:
        db = Database(url)
        try:
            name = f"bench{run_no}"
            body = {
                "name": name,
                "format": "parquet",
                "destination": {"type": "local", "path": out},
            }
            spec = parse_create(body, timedelta(days=7))
            await db.write(export_flows.create, spec, utcnow())
            exporter = Exporter(db, timedelta(days=7))
            started = time.perf_counter()
            run = await exporter.run(name)
            elapsed = time.perf_counter() - started
            assert run.status == "succeeded", run.error
            return elapsed, run.records, len(run.files)
        finally:
            await db.dispose()

    elapsed, count, files = asyncio.run(main())
    # The run's reader is a child process: its peak counts too (the two run side by side).
    reader_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put((elapsed, count, files, _peak_mb() + reader_mb, _peak_mb(), reader_mb))


def raw_side(total: int, out: str, queue: Any) -> None:
    """A fresh process: raw pyarrow writes the same rows (generation not timed)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from txmsg.core.export_record import to_micros
    from txmsg.destinations.arrow import CONTENT, RECIPIENT, SCHEMA, SENDER

    ts = pa.timestamp("us", tz="UTC")
    ingestion = to_micros(datetime.now(UTC))
    writers: dict[str, Any] = {}
    spent = 0.0
    for first in range(0, total, BATCH):
        chunk = records(first, min(BATCH, total - first), total)
        started = time.perf_counter()
        n = len(chunk)

        def strings(values: list[Any]) -> pa.Array:
            return pa.array(values, pa.string())

        batch = pa.RecordBatch.from_arrays(
            [
                pa.array([to_micros(r.timestamp) for r in chunk], pa.int64()).cast(ts),
                pa.array([ingestion] * n, pa.int64()).cast(ts),
                pa.repeat(pa.scalar("message.sent", pa.string()), n),
                strings([r.channel for r in chunk]),
                strings([r.message_id for r in chunk]),
                strings([r.event_id for r in chunk]),
                strings([r.publication_id for r in chunk]),
                pa.array([r.is_test for r in chunk], pa.bool_()),
                pa.StructArray.from_arrays(
                    [
                        strings([r.recipient_email for r in chunk]),
                        strings([r.recipient_name for r in chunk]),
                        strings([r.recipient_number for r in chunk]),
                    ],
                    fields=list(RECIPIENT),
                ),
                pa.StructArray.from_arrays(
                    [
                        strings([r.sender_email for r in chunk]),
                        strings([r.sender_name for r in chunk]),
                        strings([r.sender_reply_to for r in chunk]),
                        pa.nulls(n, pa.list_(pa.string())),
                    ],
                    fields=list(SENDER),
                ),
                pa.StructArray.from_arrays(
                    [
                        strings([r.subject for r in chunk]),
                        strings([r.html for r in chunk]),
                        strings([r.text for r in chunk]),
                        strings([r.message for r in chunk]),
                    ],
                    fields=list(CONTENT),
                ),
                strings([r.profile_id for r in chunk]),
            ],
            schema=SCHEMA,
        )
        # the same day partitions as the flow
        days = [to_micros(r.timestamp) // 86_400_000_000 for r in (chunk[0], chunk[-1])]
        for day in range(days[0], days[1] + 1):
            micros = batch.column(0).cast(pa.int64())
            part = batch.filter(pc.equal(pc.divide(micros, 86_400_000_000), day))
            if not len(part):
                continue
            writer = writers.get(str(day))
            if writer is None:
                folder = Path(out) / f"day={day}"
                folder.mkdir(parents=True, exist_ok=True)
                writer = writers[str(day)] = pq.ParquetWriter(
                    str(folder / "part-0.parquet"), SCHEMA, compression="snappy"
                )
            writer.write_batch(part)
        spent += time.perf_counter() - started
    started = time.perf_counter()
    for writer in writers.values():
        writer.close()
    spent += time.perf_counter() - started
    queue.put((spent, total, len(writers), _peak_mb(), _peak_mb(), 0.0))


def _in_child(target: Any, *args: Any) -> tuple[Any, ...]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        sys.exit(f"{target.__name__} failed")
    return tuple(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="txmsg-export-bench-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    try:
        started = time.perf_counter()
        asyncio.run(load(url, args.records))
        print(f"loaded {args.records:,} dataset records in {time.perf_counter() - started:.1f}s")
        flows, raws = [], []
        for n in range(args.rounds):  # alternate the sides: the machine is shared and noisy
            raw_out, flow_out = work / f"raw{n}", work / f"flow{n}"
            raws.append(_in_child(raw_side, args.records, str(raw_out)))
            flows.append(_in_child(flow_side, url, str(flow_out), n))
            shutil.rmtree(raw_out)
            shutil.rmtree(flow_out)
            f, r = flows[-1], raws[-1]
            # f[3]: the run's process and its reader process together
            print(
                f"round {n + 1}: flow {f[1] / f[0]:,.0f} records/s ({f[0]:.2f}s, {f[2]} files, "
                f"peak {f[3]:.0f} MB = run {f[4]:.0f} + reader {f[5]:.0f}); "
                f"raw pyarrow {r[1] / r[0]:,.0f} records/s ({r[0]:.2f}s, peak {r[3]:.0f} MB)"
            )
            assert f[1] == args.records, f"the flow exported {f[1]} records"
        best_flow = min(f[0] for f in flows)
        best_raw = min(r[0] for r in raws)
        peak = max(f[3] for f in flows)
        print(
            f"\nflow to Parquet: {args.records / best_flow:,.0f} records/s, peak memory "
            f"{peak:.0f} MB with its reader process (target < 300 MB)"
        )
        print(f"raw pyarrow:     {args.records / best_raw:,.0f} records/s")
        print(f"ratio: {best_raw / best_flow:.2f}x raw pyarrow (target >= 0.8x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
