"""Accepted events survive a restart and a crash: the database is the queue's source of truth."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from conftest import ADMIN_KEY, RunningServer, settings_for
from helpers import (
    SilentSMTPServer,
    create_channel,
    create_event,
    free_port,
    live_event,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.testing import FakeSMTPServer

SRC = str(Path(__file__).resolve().parents[2] / "src")


def body(i: int) -> dict[str, object]:
    return {"email": f"user{i}@example.org", "ctx": {"firstName": f"U{i}"}}


def pkeys_of(mails: list) -> list[str]:
    return [m.message["Message-ID"][1:].split("@")[0] for m in mails]


async def test_queued_events_are_sent_after_a_restart(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    settings = settings_for(database_url, data_dir)
    async with RunningServer(settings) as first:
        # The SMTP server is down: nothing can be sent, everything stays queued.
        await create_channel(first.admin, smtp)
        await set_smtp(first.admin, "127.0.0.1", free_port())
        created = await create_event(first.admin)
        event_id = created["eventId"]
        r = await first.admin.post(f"/api/v1/event-configs/{event_id}/publish")
        assert r.status_code == 200, r.text
        await publish_message(first.admin, event_id)
        accepted = [await trigger(first.admin, event_id, body(i)) for i in range(5)]
        await asyncio.sleep(0.2)  # a few failed attempts
        for a in accepted:
            r = await first.admin.get(a["href"])
            assert r.json()["status"] in ("pending", "processing"), r.json()
    assert smtp.messages == []

    async with RunningServer(settings_for(database_url, data_dir)) as second:
        for a in accepted:  # still queued (this server's dispatcher may have claimed them)
            r = await second.admin.get(a["href"])
            assert r.status_code == 200, r.text
            assert r.json()["status"] in ("pending", "processing"), r.json()
        await set_smtp(second.admin, smtp.host, smtp.port)
        for a in accepted:
            await wait_status(second.admin, a["href"], "processed")
    mails = await smtp.wait_for(5)
    assert sorted(pkeys_of(mails)) == sorted(a["PKey"] for a in accepted)


class Process:
    """`python -m txmsg.cli serve` in a subprocess, on a database shared across restarts."""

    def __init__(self, database_url: str, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "TXMSG_DATABASE_URL": database_url,
            "TXMSG_DATA_DIR": str(data_dir),
            "TXMSG_ADMIN_KEY": ADMIN_KEY,
            "TXMSG_LEASE_SECONDS": "1",
            "TXMSG_POLL_INTERVAL": "0.05",
            "TXMSG_SWEEP_INTERVAL": "0.2",
            "TXMSG_RETRY_BASE_SECONDS": "0.05",
            "TXMSG_RETRY_MAX_SECONDS": "0.2",
            "TXMSG_CONFIG_CACHE_SECONDS": "0",
        }
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[httpx.AsyncClient]:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "txmsg.cli", "serve", "--port", str(self.port)),
                *("--log-level", "warning"),
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                timeout=10,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ) as admin:
                await self._wait_healthy(admin)
                yield admin
        finally:
            await self.kill()

    async def _wait_healthy(self, admin: httpx.AsyncClient) -> None:
        assert self.proc is not None
        for _ in range(300):
            if self.proc.returncode is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()}")
            try:
                if (await admin.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"the server did not start: {self.log.read_text()}")

    async def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, in-flight sends and leases are abandoned."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None


async def test_a_crash_loses_no_accepted_event(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """SIGKILL with events waiting to be retried (pending) and events mid-send (leased)."""
    server = Process(database_url, data_dir, tmp_path / "server.log")
    smtp.fail_always(451, "4.3.0 Try again later")
    async with SilentSMTPServer() as silent, server.running() as admin:
        event_id = await live_event(admin, smtp)
        # A second event whose SMTP server never answers: its sends hang, `processing`.
        await create_channel(admin, silent, name="hang")  # type: ignore[arg-type]
        hanging = await create_event(admin, "hanging", channel_config="hang")
        r = await admin.post("/api/v1/event-configs/EVThanging/publish")
        assert r.status_code == 200, r.text
        await publish_message(admin, hanging["eventId"])

        retrying = [await trigger(admin, event_id, body(i)) for i in range(6)]
        in_flight = [await trigger(admin, "EVThanging", body(i)) for i in range(6, 10)]
        # Each was tried at least once, and failed.
        await wait_until(lambda: smtp.rejected >= len(retrying), what="a first attempt each")
        for a in in_flight:
            await wait_status(admin, a["href"], "processing")
        await server.kill()  # no shutdown: leases held, in-flight sends abandoned
    assert smtp.messages == []

    smtp.reset_failures()
    async with server.running() as admin:
        await set_smtp(admin, smtp.host, smtp.port, name="hang")
        # The leased ones wait for their 1 s lease to run out, then the sweep requeues them.
        for a in retrying + in_flight:
            await wait_status(admin, a["href"], "processed", timeout=10)
    accepted = retrying + in_flight
    mails = await smtp.wait_for(len(accepted))
    # Each accepted event delivered (at least once), none lost.
    assert set(pkeys_of(mails)) == {a["PKey"] for a in accepted}
