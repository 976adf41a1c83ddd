"""Process roles as real processes: `txmsg serve --role api` accepts, `txmsg worker` sends.

Each test starts the `txmsg` command in subprocesses sharing one database (the SQLite file, or
one PostgreSQL database), as an installation runs them, and watches the mail a FakeSMTPServer
receives.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from helpers import live_event, metrics_showing, trigger, wait_status, wait_until
from process_support import Txmsg, all_running, body, latencies_to_smtp, pkeys_of
from txmsg.testing import FakeSMTPServer

SLOW_POLL = 5.0  # seconds: a worker's poll interval and sweep, far above any latency asserted
PUBLIC_URL = "https://mail.example.com"
NO_PUBLIC_URL = "TXMSG_PUBLIC_URL is not set"


def api(database_url: str, data_dir: Path, tmp_path: Path) -> Txmsg:
    args = ["serve", "--role", "api", "--port", "{port}", "--log-level", "warning"]
    return Txmsg(args, database_url, data_dir, tmp_path / "api.log")


def worker(database_url: str, data_dir: Path, tmp_path: Path, **env: str) -> Txmsg:
    args = ["worker", "--health-port", "{port}"]
    return Txmsg(args, database_url, data_dir, tmp_path / "worker.log", **env)


async def test_the_worker_sends_what_the_api_accepts_once_and_at_once(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """The worker polls every 5 s, yet each trigger is sent well within that: a commit in the
    API process wakes it (SQLite: data_version; PostgreSQL: NOTIFY)."""
    slow = {"TXMSG_POLL_INTERVAL": str(SLOW_POLL), "TXMSG_SWEEP_INTERVAL": str(SLOW_POLL)}
    sender = worker(database_url, data_dir, tmp_path, TXMSG_PUBLIC_URL=PUBLIC_URL, **slow)
    async with all_running(api(database_url, data_dir, tmp_path), sender) as [admin, health]:
        assert (await health.get("/health")).json() == {"status": "ok"}
        ready = (await health.get("/ready")).json()  # the worker's ops port: no key needed
        assert ready["checks"] == {"database": "ok", "schema": "ok", "dispatcher": "ok"}
        assert (await health.get("/rest/mc/x")).status_code == 404  # no API on a worker
        event_id = await live_event(admin, smtp)
        await asyncio.sleep(0.3)  # the worker idle, in its (5 s) wait
        latencies = await latencies_to_smtp(admin, event_id, smtp, 5, SLOW_POLL)
        print(f"trigger -> SMTP via the worker: {[round(s * 1000) for s in latencies]} ms")
        # Well within the 5 s poll (without a wake-up each took 4.7-4.9 s); bounds with room for
        # a machine loaded by the rest of the suite.
        assert max(latencies) < SLOW_POLL / 2, latencies
        assert statistics.median(latencies) < 1.0, latencies

        # A burst through the API: each sent once, nothing twice.
        accepted = await asyncio.gather(*(trigger(admin, event_id, body(i)) for i in range(5, 45)))
        mails = await smtp.wait_for(45, timeout=SLOW_POLL)
        for a in accepted:
            await wait_status(admin, a["href"], "processed")
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        # Each process counts what it does: the worker sent all 45, the API process none.
        sent = 'txmsg_sends_total{channel="email",outcome="processed"} 45.0'
        await metrics_showing(health, sent)
        assert "txmsg_sends_total{" not in (await admin.get("/metrics")).text
    pkeys = pkeys_of(smtp.messages)
    assert len(pkeys) == 45 == len(set(pkeys)), "an event sent twice"
    assert NO_PUBLIC_URL not in sender.log.read_text()
    assert {a["PKey"] for a in accepted} <= set(pkeys_of(mails))


async def test_the_api_role_sends_nothing_on_its_own(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    async with api(database_url, data_dir, tmp_path).running() as admin:
        event_id = await live_event(admin, smtp)
        accepted = [await trigger(admin, event_id, body(i)) for i in range(3)]
        await asyncio.sleep(0.5)  # ten of a worker's poll intervals
        for a in accepted:
            r = await admin.get(a["href"])
            assert r.json()["status"] == "pending", r.json()
        assert smtp.messages == []

        # A worker started later takes the backlog.
        later = worker(database_url, data_dir, tmp_path)
        async with later.running():
            for a in accepted:
                await wait_status(admin, a["href"], "processed")
    # It has no address of its own to build links with: it says so.
    assert NO_PUBLIC_URL in later.log.read_text()
    assert sorted(pkeys_of(smtp.messages)) == sorted(a["PKey"] for a in accepted)


async def test_sigterm_on_a_worker_mid_backlog_loses_nothing(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """Stopped mid-backlog, a worker finishes the sends under way and records them; the rest
    stays queued for the next worker, and every event is sent once."""
    slow_sends = {"TXMSG_MAX_IN_FLIGHT": "4"}
    async with api(database_url, data_dir, tmp_path).running() as admin:
        event_id = await live_event(admin, smtp)
        accepted = await asyncio.gather(*(trigger(admin, event_id, body(i)) for i in range(30)))
        smtp.delay = 0.05  # each send takes a while: some are under way at the SIGTERM
        first = worker(database_url, data_dir, tmp_path, **slow_sends)
        async with first.running():
            await wait_until(lambda: len(smtp.messages) >= 4, what="a few sends")
            assert await first.terminate() == 0
        sent_before = len(smtp.messages)
        assert sent_before < len(accepted), "the backlog was drained before the SIGTERM"
        statuses = [(await admin.get(a["href"])).json()["status"] for a in accepted]
        # Nothing left leased: each send under way finished and its outcome was recorded.
        assert "processing" not in statuses, statuses
        assert statuses.count("processed") == sent_before, statuses

        smtp.delay = 0.0
        async with worker(database_url, data_dir, tmp_path).running():
            for a in accepted:
                await wait_status(admin, a["href"], "processed")
    pkeys = pkeys_of(smtp.messages)
    assert sorted(pkeys) == sorted(a["PKey"] for a in accepted), "lost or sent twice"
