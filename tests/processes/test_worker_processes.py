"""`txmsg worker --processes 2`: two worker processes under one supervisor, each with its own
health port; one that dies is started again (later, while it cannot start), SIGTERM stops
them all gracefully, and workers that cannot start at all end the command with a failure."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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


def _api_and_two_workers(
    database_url: str, data_dir: Path, tmp_path: Path
) -> tuple[Txmsg, Txmsg, int]:
    """An API process and `worker --processes 2`, not started; the first health port (the
    second is the next)."""
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
    return api, workers, ops


async def test_two_worker_processes_send_once_and_one_that_dies_is_replaced(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    api, workers, ops = _api_and_two_workers(database_url, data_dir, tmp_path)
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


async def _take_freed_port(ports: tuple[int, ...]) -> socket.socket:
    """A listening socket on whichever of `ports` no process holds any more (a killed
    process's sockets close a moment after it is gone from the process list)."""
    for _ in range(200):
        for port in ports:
            taken = socket.socket()
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            try:
                taken.bind(("127.0.0.1", port))
            except OSError:
                taken.close()
                continue
            taken.listen()
            return taken
        await asyncio.sleep(0.005)
    raise AssertionError(f"none of {ports} was freed")


async def test_a_replacement_that_cannot_start_is_tried_again_while_the_other_sends(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """A process dies and its replacement cannot start (here its health port is taken; a
    database outage is the same): the other keeps sending, and the replacement is started
    again, later, until it runs. The command does not stop."""
    api, workers, ops = _api_and_two_workers(database_url, data_dir, tmp_path)
    async with all_running(api, workers) as [admin, _]:
        assert workers.proc is not None
        parent = workers.proc.pid
        assert await ops_ports_answering(ops, 2) == {ops, ops + 1}
        event_id = await live_event(admin, smtp)
        os.kill(min(spawned(parent)), signal.SIGKILL)
        # Its port, taken before its replacement (a new interpreter) gets there.
        with await _take_freed_port((ops, ops + 1)):
            await wait_until(
                lambda: "could not start; starting another in 1 s" in workers.log.read_text(),
                timeout=20,
                what="the replacement's failure",
            )
            await _sent(admin, event_id, smtp, range(20))  # the other one sends meanwhile
            assert workers.proc.returncode is None
        # Started again once its port is free: 2 s after the first retry failed, at most 4 s.
        assert await _answering_within(ops, 15) == {ops, ops + 1}
        await _sent(admin, event_id, smtp, range(20, 40))

        # SIGHUP, and the first replacement cannot start (as with settings it refuses): the
        # restart stops there; the process not yet restarted keeps sending, as it was.
        before = spawned(parent)
        os.kill(parent, signal.SIGHUP)
        with await _take_freed_port((ops, ops + 1)):  # the first one stopped gracefully
            await wait_until(
                lambda: "the restart stops here" in workers.log.read_text(),
                timeout=20,
                what="the restart's failure",
            )
            await _sent(admin, event_id, smtp, range(40, 60))
            assert workers.proc.returncode is None
            assert len(spawned(parent) & before) == 1  # the other was left as it was
        assert await _answering_within(ops, 15) == {ops, ops + 1}
        await _sent(admin, event_id, smtp, range(60, 80))
        await sent_once_each(smtp, 80)
        assert await workers.terminate() == 0
    assert "stopping the others" not in workers.log.read_text()


async def _answering_within(first: int, seconds: float) -> set[int]:
    """The two health ports from `first` that answer, once both do or after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        answering = await ops_ports_answering(first, 2)
        if len(answering) == 2 or asyncio.get_running_loop().time() > deadline:
            return answering


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


def _running(pid: int) -> bool:
    """Whether process `pid` runs (not ended, nor a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_processes_stop_when_their_supervisor_is_killed(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """`serve --processes 2` and `worker --processes 2` whose supervisor is killed (SIGKILL, an
    OOM kill): its processes stop gracefully rather than serve and send on unsupervised
    (they held their ports, and the command started again failed: "address already in
    use"), and the command starts again on the same ports."""
    api, ops = free_port(), free_ports(2)
    commands = [
        (["serve", "--processes", "2", "--port", str(api)], api),
        (["worker", "--processes", "2", "--health-port", str(ops)], ops),
    ]
    for number, (args, port) in enumerate(commands):
        command = Txmsg(args, database_url, data_dir, tmp_path / f"{number}.log")
        command.port = port  # the API's, or the first process's health port
        async with command.running():
            assert command.proc is not None
            children = spawned(command.proc.pid)
            assert len(children) == 2, command.log.read_text()
            command.proc.send_signal(signal.SIGKILL)
            await command.proc.wait()
            try:
                await wait_until(
                    lambda children=children: not any(_running(pid) for pid in children),
                    timeout=30,
                    what="the supervisor's processes stopped",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {command.log.read_text()}") from None
        again = Txmsg(args, database_url, data_dir, tmp_path / f"{number}-again.log")
        again.port = port
        async with again.running():  # the same ports: free
            assert again.proc is not None and again.proc.returncode is None


test_processes_stop_when_their_supervisor_is_killed.sqlite_only = True  # type: ignore[attr-defined]
