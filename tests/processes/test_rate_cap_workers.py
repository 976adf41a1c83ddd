"""A channel send-rate cap holds across two `txmsg worker` processes on one database."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from helpers import create_event, live_event, publish_message
from process_support import all_running, apis_and_workers, body, sends_counted, sent_once_each
from rate_support import watch_cap
from txmsg.testing import FakeSMTPServer


async def test_the_cap_holds_across_two_workers(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    per_second, count = 5, 22
    [api], workers = apis_and_workers(database_url, data_dir, tmp_path, 1, 2)
    async with all_running(api, *workers) as [admin, _, _]:
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
        await sent_once_each(smtp, count)

        # A per-day quota's bulk share holds across both workers too: bulk spends its half,
        # transactional sends the other half, then both wait.
        newsletter = await create_event(admin, "newsletter", priority="bulk")
        r = await admin.post(f"/api/v1/event-configs/{newsletter['eventId']}/publish")
        assert r.status_code == 200, r.text
        await publish_message(admin, newsletter["eventId"])
        cap = {"per_day": 10, "bulk_share": 50}
        r = await admin.patch("/api/v1/channel-configs/mail", json={"rate_limit": cap})
        assert r.status_code == 200, r.text
        await asyncio.sleep(1.2)
        bulk = {"events": [body(100 + i) for i in range(8)]}
        r = await admin.post(f"/rest/mc/{newsletter['eventId']}/batch", json=bulk)
        assert r.status_code == 201, r.text
        await smtp.wait_for(count + 5, timeout=10)
        r = await admin.post(
            f"/rest/mc/{event_id}/batch", json={"events": [body(200 + i) for i in range(8)]}
        )
        assert r.status_code == 201, r.text
        await smtp.wait_for(count + 10, timeout=10)
        await asyncio.sleep(0.5)  # one more, or a duplicate, would arrive now
    late = [m.rcpt_tos[0] for m in smtp.messages[count:]]
    assert sorted(late) == sorted(
        [f"user{100 + i}@example.org" for i in range(5)]
        + [f"user{200 + i}@example.org" for i in range(5)]
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_idle_workers_on_a_capped_channel_leave_each_other_idle(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """A claim that finds nothing writes nothing: it used to take the cap's tokens and give
    them all back, a commit, which woke the other worker (SQLite: a commit not its own) to
    claim in turn, and that one's commit woke the first: two idle workers kept each other
    busy, a fifth of a core each, as long as a channel had a cap."""
    # The workers poll and sweep at their defaults (the tests' other processes, far faster).
    idle = {"TXMSG_POLL_INTERVAL": "1", "TXMSG_SWEEP_INTERVAL": "5"}
    [api], workers = apis_and_workers(database_url, data_dir, tmp_path, 1, 2, **idle)
    async with all_running(api, *workers) as [admin, _, _]:
        event_id = await live_event(admin, smtp)
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"rate_limit": {"per_second": 50}}
        )
        assert r.status_code == 200, r.text
        await asyncio.sleep(1.2)  # each worker reads the caps again within a second
        r = await admin.post(
            f"/rest/mc/{event_id}/batch", json={"events": [body(i) for i in range(5)]}
        )
        assert r.status_code == 201, r.text
        await smtp.wait_for(5, timeout=15)
        await sent_once_each(smtp, 5)
        # Idle from here: each send is counted once its outcome is recorded (a wait of 3 s
        # did for this before), then a moment for what the last commit woke.
        assert await sends_counted([w.port for w in workers], 5) == 5
        await asyncio.sleep(0.5)
        pids = [w.proc.pid for w in workers if w.proc is not None]
        before = [_cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(3.0)
        used = [(_cpu_seconds(pid) - b) / 3.0 for pid, b in zip(pids, before, strict=True)]
    assert max(used) < 0.08, f"idle workers' CPU share: {used}"
