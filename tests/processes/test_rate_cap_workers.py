"""A channel send-rate cap holds across two `txmsg worker` processes on one database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from helpers import live_event
from process_support import Txmsg, body, pkeys_of
from rate_support import watch_cap
from txmsg.testing import FakeSMTPServer


async def test_the_cap_holds_across_two_workers(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    per_second, count = 5, 22
    workers = [
        Txmsg(["worker", "--health-port", "{port}"], database_url, data_dir, tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    api = Txmsg(
        ["serve", "--role", "api", "--port", "{port}", "--log-level", "warning"],
        database_url,
        data_dir,
        tmp_path / "api.log",
    )
    async with api.running() as admin, workers[0].running(), workers[1].running():
        event_id = await live_event(admin, smtp)
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"rate_limit": {"per_second": per_second}}
        )
        assert r.status_code == 200, r.text
        await asyncio.sleep(1.2)  # each worker reads the caps again within a second
        start = time.time()
        r = await admin.post(
            f"/rest/mc/{event_id}/batch", json={"events": [body(i) for i in range(count)]}
        )
        assert r.status_code == 201, r.text
        arrived = await watch_cap(smtp, count, per_second, start, timeout=20)
        # Not slower than the cap: 5 windows for 22 at 5/s, with room for a loaded machine.
        assert arrived[-1] - start < 5 + 4, arrived[-1] - start
        await asyncio.sleep(0.3)  # a duplicate would arrive now
    pkeys = pkeys_of(smtp.messages)
    assert len(pkeys) == count == len(set(pkeys)), "an event sent twice"
