"""End-to-end email rates against raw aiosmtplib, measured in the same run.

Baseline: aiosmtplib over 8 reused connections sending prebuilt messages (bytes) to Postfix's
smtp-sink, on uvloop. Engine: `txmsg serve` (one process, SQLite, synchronous=FULL) with a
channel configuration of 8 pooled connections to the same sink. Two figures:

- delivery: events triggered over HTTP while the event is paused, then resumed; events sent
  (status `processed`) per second from the resume to the last send. This is the engine's
  whole send path (claim, render, build, send, record), like the baseline's.
- trigger -> sent: wrk triggers events over HTTP while the engine sends them; events sent per
  second from the first trigger to the last send (HTTP acceptance shares the process).

Every accepted event must end `processed`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import (
    LINE,
    engine_rates,
    free_port,
    print_rates,
    setup_event,
    smtp_sink,
)
from txmsg.core.mime import Sender, build_email


async def _raw(port: int, count: int, connections: int) -> float:
    sender = Sender.build("shop@example.com", "Example Shop", None)
    data = build_email(
        sender,
        "ada@example.org",
        "Hello Ada",
        (LINE + "\n") * 10,
        ("<p>" + LINE + "</p>\n") * 10,
        message_id="bench",
        date=datetime.now(UTC),
    )
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        for _ in range(connections)
    ]
    for client in clients:
        await client.connect()
    per = count // connections

    async def worker(client: aiosmtplib.SMTP) -> None:
        for _ in range(per):
            await client.sendmail("shop@example.com", ["ada@example.org"], data)

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - start
    for client in clients:
        await client.quit()
    return per * connections / elapsed


def raw_aiosmtplib(port: int, count: int) -> float:
    return uvloop.run(_raw(port, count, 8))


def engine(smtp_port: int, seconds: int, *, backlog: bool) -> dict[str, float]:
    return engine_rates(lambda base: setup_event(base, smtp_port), seconds, backlog=backlog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="how long wrk triggers events")
    parser.add_argument("--raw-count", type=int, default=40_000)
    args = parser.parse_args()
    smtp_port = free_port()
    with smtp_sink(smtp_port):
        base = raw_aiosmtplib(smtp_port, args.raw_count)
        delivery = engine(smtp_port, args.seconds, backlog=True)
        live = engine(smtp_port, args.seconds, backlog=False)
    print_rates("raw aiosmtplib, prebuilt bytes, 8 conns", base, "msg", delivery, live)


if __name__ == "__main__":
    main()
