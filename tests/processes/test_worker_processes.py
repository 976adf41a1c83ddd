"""`txmsg worker --processes 2`: two worker processes under one supervisor, each with its own
health port; one that dies is started again, SIGTERM stops them all gracefully, and workers
that cannot start end the command with a failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from helpers import free_port, free_ports, live_event, wait_until
from process_support import (
    SRC,
    Txmsg,
    all_running,
    body,
    kill_one_spawned,
    ops_ports_answering,
    sends_counted,
    sent_once_each,
    spawned,
)
from txmsg.testing import FakeSMTPServer


async def test_two_worker_processes_send_once_and_one_that_dies_is_replaced(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    api = Txmsg(
        ["serve", "--role", "api", "--port", "{port}"], database_url, data_dir, tmp_path / "api.log"
    )
    ops = free_ports(2)
    workers = Txmsg(
        ["worker", "--processes", "2", "--health-port", str(ops)],
        database_url,
        data_dir,
        tmp_path / "workers.log",
    )
    workers.port = ops  # `running` waits for the first process's health port
    async with all_running(api, workers) as [admin, _]:
        assert workers.proc is not None
        parent = workers.proc.pid
        assert await ops_ports_answering(ops, 2) == {ops, ops + 1}
        first = spawned(parent)
        assert len(first) == 2, workers.log.read_text()
        event_id = await live_event(admin, smtp)
        await _sent(admin, event_id, smtp, range(30))
        # Each process counts its own sends, on its own port: together, each send once.
        assert await sends_counted((ops, ops + 1), 30) == 30

        await kill_one_spawned(parent)
        # The replacement took the health port the killed process held.
        assert await ops_ports_answering(ops, 2) == {ops, ops + 1}
        await _sent(admin, event_id, smtp, range(30, 50))
        await sent_once_each(smtp, 50)

        # SIGHUP: each is stopped gracefully and replaced in turn (new code, new settings),
        # the next once the replacement runs; the supervisor stays.
        before = spawned(parent)
        os.kill(parent, signal.SIGHUP)
        await wait_until(
            lambda: len(now := spawned(parent)) == 2 and not now & before,
            timeout=30,
            what="both processes replaced",
        )
        assert await ops_ports_answering(ops, 2) == {ops, ops + 1}
        await _sent(admin, event_id, smtp, range(50, 70))
        await sent_once_each(smtp, 70)
        assert await workers.terminate() == 0
    assert not spawned(parent)
    log = workers.log.read_text()
    assert "ended (exit status -9); starting another" in log
    assert "SIGHUP: restarting the processes one at a time" in log


async def _sent(
    admin: httpx.AsyncClient, event_id: str, smtp: FakeSMTPServer, numbers: range
) -> None:
    """Trigger the recipients `numbers` and wait until the SMTP server has had them all."""
    for i in numbers:
        r = await admin.post(f"/rest/mc/{event_id}", json=body(i))
        assert r.status_code == 201, r.text
    await smtp.wait_for(numbers.stop, timeout=20)


def test_workers_that_cannot_start_end_the_command_with_a_failure(tmp_path: Path) -> None:
    """A database nobody answers: the processes fail at start; the command says so and exits
    3 (one worker alone, as several), rather than starting them again and again."""
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/txmsg"
    for processes in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "txmsg.cli", "worker", "--processes", processes],
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": SRC,
                "TXMSG_DATABASE_URL": unreachable,
                "TXMSG_DATA_DIR": str(tmp_path),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 3, done.stderr
        assert "the worker could not start" in done.stderr
        if processes == "2":
            assert "could not start; stopping the others" in done.stderr
