"""`txmsg serve --processes 2`: two processes serve one port, each a whole API on the shared
database; the supervisor starts a process again when one dies (the other serves meanwhile),
and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import statistics
import sys
from pathlib import Path

import httpx
import pytest

from conftest import ADMIN_KEY
from helpers import free_port, free_ports, live_event
from process_support import (
    SRC,
    Txmsg,
    all_running,
    body,
    kill_one_spawned,
    latencies_to_smtp,
    ops_ports_answering,
    pkeys_of,
    sends_counted,
    sent_once_each,
    spawned,
)
from txmsg.cli import PROCESS_OPTIONS_ENV, app_of_environment, main
from txmsg.engine import tuning
from txmsg.engine.tuning import GIL_SWITCH_INTERVAL
from txmsg.testing import FakeSMTPServer


async def trigger_all(port: int, event_id: str, numbers: range) -> None:
    """Each trigger on a connection of its own: the port hands them to either process."""

    async def one(i: int) -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        ) as client:
            r = await client.post(f"/rest/mc/{event_id}", json=body(i))
            assert r.status_code == 201, r.text

    await asyncio.gather(*(one(i) for i in numbers))


async def test_two_processes_serve_one_port_and_one_that_dies_is_replaced(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    ops = free_ports(2)
    api = Txmsg(
        [
            "serve",
            "--role",
            "api",
            "--processes",
            "2",
            "--port",
            "{port}",
            "--metrics-port",
            f"{ops}",
        ],
        database_url,
        data_dir,
        tmp_path / "api.log",
    )
    worker = Txmsg(
        ["worker", "--health-port", "{port}"], database_url, data_dir, tmp_path / "w.log"
    )
    async with all_running(api, worker) as [admin, _]:
        assert api.proc is not None
        parent = api.proc.pid
        first = spawned(parent)
        assert len(first) == 2, api.log.read_text()
        event_id = await live_event(admin, smtp)
        await trigger_all(api.port, event_id, range(30))

        # The other process answers while the supervisor starts another.
        await kill_one_spawned(parent, trigger_all(api.port, event_id, range(30, 50)))
        # The replacement took the ops port the killed process held.
        assert await ops_ports_answering(ops, 2) == {ops, ops + 1}
        await trigger_all(api.port, event_id, range(50, 70))

        await smtp.wait_for(70, timeout=20)
        await sent_once_each(smtp, 70)
        assert await api.terminate() == 0
    assert not spawned(parent)


@pytest.mark.parametrize("processes", [1, 2])
async def test_serve_is_woken_by_other_processes_commits(
    processes: int, database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """`serve` (role all), alone or as `--processes 2`, polls every 5 s, yet what another
    process leaves queued (an API-only process here) is sent well within that: each `serve`
    process watches for other processes' commits (SQLite: data_version; PostgreSQL: LISTEN)."""
    slow_poll = 5.0
    slow = {"TXMSG_POLL_INTERVAL": str(slow_poll), "TXMSG_SWEEP_INTERVAL": str(slow_poll)}
    ops = free_ports(processes)
    several = ["--processes", str(processes)] if processes > 1 else []  # 1: a lone `serve`
    serve = Txmsg(
        ["serve", *several, "--port", "{port}", "--metrics-port", str(ops)],
        database_url,
        data_dir,
        tmp_path / "serve.log",
        **slow,
    )
    api = Txmsg(
        ["serve", "--role", "api", "--port", "{port}"], database_url, data_dir, tmp_path / "api.log"
    )
    async with all_running(serve, api) as [_, admin]:
        event_id = await live_event(admin, smtp)
        await asyncio.sleep(0.3)  # the serve processes idle, in their (5 s) wait
        latencies = await latencies_to_smtp(admin, event_id, smtp, 5, slow_poll * 2)
        # Without the wake-up each waited for the poll (4.6-4.9 s on SQLite); room left for a
        # machine loaded by the rest of the suite.
        assert max(latencies) < slow_poll / 2, latencies
        assert statistics.median(latencies) < 1.0, latencies
        pkeys = pkeys_of(smtp.messages)
        assert len(pkeys) == len(set(pkeys)) == 5

        # `--metrics-port`: each process serves its own figures on a port of its own, the
        # first free of them; together they count the five sends once each.
        ports = tuple(range(ops, ops + processes))
        for port in ports:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                assert (await probe.get("/ready")).status_code == 200
        assert await sends_counted(ports, 5) == 5


def test_a_port_only_one_process_can_hold_refuses_several(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One ops port for each process: they must all exist.
    assert main(["serve", "--processes", "2", "--metrics-port", "65535"]) == 2
    assert "--metrics-port 65535 with 2 processes: ports up to 65536" in capsys.readouterr().err
    assert main(["worker", "--processes", "3", "--health-port", "65534"]) == 2
    assert "--health-port 65534 with 3 processes: ports up to 65536" in capsys.readouterr().err
    monkeypatch.setenv("TXMSG_BOUNCE_LISTEN", "127.0.0.1:2525")
    assert main(["serve", "--processes", "2"]) == 2
    assert "bounce listener's port serves one process" in capsys.readouterr().err


def test_processes_are_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--processes", "0"])
    assert exited.value.code == 2
    assert "--processes: must be at least 1, not 0" in capsys.readouterr().err


def test_a_process_started_without_the_command_says_how_to_start_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(PROCESS_OPTIONS_ENV, raising=False)
    with pytest.raises(RuntimeError, match="start them with txmsg serve"):
        app_of_environment()


def test_a_process_of_serve_runs_with_the_engines_switch_interval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The spawned processes set the interpreter up as `serve` does (see GIL_SWITCH_INTERVAL)."""
    options = {"role": "all", "log_level": "warning", "log_format": "text", "metrics": None}
    monkeypatch.setenv(PROCESS_OPTIONS_ENV, json.dumps({**options, "public_url": "http://x"}))
    monkeypatch.setenv("TXMSG_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tuning, "_tuned", False)  # set again below, for this test only
    root = logging.getLogger()
    handlers, level, interval = list(root.handlers), root.level, sys.getswitchinterval()
    try:
        app_of_environment()
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process's heap, frozen by the call above
        sys.setswitchinterval(interval)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert interval > GIL_SWITCH_INTERVAL  # shorter than the interpreter's default


async def test_processes_that_cannot_start_end_the_command_with_a_failure(tmp_path: Path) -> None:
    """As one `serve` exits 3 when its app cannot start, so does `serve --processes 2`: a
    supervisor (systemd's Restart=on-failure, a script) must not take it for a clean stop."""
    closed = free_port()  # nothing listens there
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "txmsg.cli",
        "serve",
        "--processes",
        "2",
        "--port",
        str(free_port()),
        env={
            **os.environ,
            "PYTHONPATH": SRC,
            "TXMSG_DATA_DIR": str(tmp_path / "data"),
            "TXMSG_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed}/txmsg",
            "TXMSG_DATABASE_TIMEOUT_SECONDS": "1",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3, out.decode()
