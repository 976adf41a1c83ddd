"""SIGHUP to a lone `txmsg worker` or `txmsg serve`: it stops gracefully and runs again in the
same process (the same PID), and another SIGHUP while it starts again does not end it; with a
terminal on its standard error (the terminal hung up), it only stops; started with SIGHUP
ignored (nohup), it keeps running."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys
from pathlib import Path

import httpx

from helpers import free_port, live_event, trigger, wait_until
from process_support import SRC, Txmsg, body, sent_once_each
from txmsg.store.db import Database
from txmsg.testing import FakeSMTPServer

RESTARTED = "SIGHUP: stopped gracefully, starting again"
SEND_SECONDS = 0.5  # the fake SMTP server's delay: sends are under way at the hang-up


async def _hang_up_and_wait(
    process: Txmsg, client: httpx.AsyncClient, *, again: bool = False
) -> None:
    """SIGHUP `process`, then wait until it answers again, the same process all along; with
    `again`, another SIGHUP as it starts again (before it listens for one)."""
    assert process.proc is not None
    pid = process.proc.pid
    process.proc.send_signal(signal.SIGHUP)
    await wait_until(lambda: RESTARTED in process.log.read_text(), timeout=20, what="a restart")
    if again:
        process.proc.send_signal(signal.SIGHUP)
    await process.wait_healthy(client)  # fails if it exited
    assert process.proc.pid == pid


async def test_a_worker_restarts_in_place_and_finishes_its_sends(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    api = Txmsg(
        ["serve", "--role", "api", "--port", "{port}"], database_url, data_dir, tmp_path / "api.log"
    )
    worker = Txmsg(
        ["worker", "--health-port", "{port}"], database_url, data_dir, tmp_path / "worker.log"
    )
    async with api.running() as admin, worker.running() as health:
        event_id = await live_event(admin, smtp)
        smtp.delay = SEND_SECONDS
        for i in range(6):
            await trigger(admin, event_id, body(i))
        await wait_until(lambda: smtp.connections_opened >= 1, what="sends under way")
        await _hang_up_and_wait(worker, health)
        smtp.delay = 0.0
        for i in range(6, 10):
            await trigger(admin, event_id, body(i))
        await smtp.wait_for(10, timeout=20)
        # Each send under way at the hang-up finished and was recorded: none sent again.
        await sent_once_each(smtp, 10)
        assert worker.log.read_text().count(RESTARTED) == 1


async def test_serve_restarts_in_place(
    db: Database, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    serve = Txmsg(["serve", "--port", "{port}"], db.url, data_dir, tmp_path / "serve.log")
    async with serve.running() as admin:
        event_id = await live_event(admin, smtp)
        smtp.delay = SEND_SECONDS
        for i in range(4):
            await trigger(admin, event_id, body(i))
        await wait_until(lambda: smtp.connections_opened >= 1, what="sends under way")
        await _hang_up_and_wait(serve, admin, again=True)
        smtp.delay = 0.0
        for i in range(4, 6):
            await trigger(admin, event_id, body(i))
        await smtp.wait_for(6, timeout=20)
        await sent_once_each(smtp, 6)


test_serve_restarts_in_place.sqlite_only = True  # type: ignore[attr-defined]


async def _worker(
    db: Database, data_dir: Path, log: Path, stderr: int, *, ignore_hangup: bool = False
) -> tuple[asyncio.subprocess.Process, int]:
    """A lone worker with `stderr`, once its health port answers; the process and the port."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "TXMSG_DATABASE_URL": db.url,
        "TXMSG_DATA_DIR": str(data_dir),
    }

    def ignore() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it

    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "txmsg.cli", "worker", "--health-port", str(port)),
            env=env,
            stdout=out,
            stderr=stderr,
            preexec_fn=ignore if ignore_hangup else None,
        )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(300):
            assert proc.returncode is None, "the worker exited: see its log"
            try:
                if (await client.get("/health")).status_code == 200:
                    return proc, port
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("the worker did not start")


async def test_a_worker_whose_terminal_hung_up_stops(
    db: Database, data_dir: Path, tmp_path: Path
) -> None:
    terminal, tty = pty.openpty()
    proc = None
    try:
        proc, _ = await _worker(db, data_dir, tmp_path / "worker.log", tty)
        proc.send_signal(signal.SIGHUP)
        assert await asyncio.wait_for(proc.wait(), 20) == 0  # gracefully, not killed by it
        os.set_blocking(terminal, False)  # nothing written must fail, not hang
        try:
            said = os.read(terminal, 65536).decode(errors="replace")
        except BlockingIOError:
            said = ""
        assert "the terminal hung up" in said, said
        assert RESTARTED not in said
    finally:
        if proc is not None and proc.returncode is None:  # it failed: leave no worker behind
            proc.kill()
            await proc.wait()
        os.close(terminal)
        os.close(tty)


async def test_a_worker_started_with_hangups_ignored_ignores_them(
    db: Database, data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    proc, port = await _worker(db, data_dir, log, asyncio.subprocess.STDOUT, ignore_hangup=True)
    try:
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        assert proc.returncode is None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/health")).status_code == 200
        assert "SIGHUP" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


test_a_worker_whose_terminal_hung_up_stops.sqlite_only = True  # type: ignore[attr-defined]
test_a_worker_started_with_hangups_ignored_ignores_them.sqlite_only = True  # type: ignore[attr-defined]
