"""`commands/supervisor.supervise` (`txmsg worker --processes N`) over stand-in processes that
start, fail to start or run as the test says (tests/supervisor_stand_in.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from process_support import SRC

TESTS = str(Path(__file__).resolve().parents[1])


@contextmanager
def supervising(folder: Path, count: int, retry: float) -> Iterator[subprocess.Popen[str]]:
    """The supervisor of `count` stand-ins in `folder`; its log is `folder/supervisor.log`."""
    (folder / "running").mkdir(parents=True, exist_ok=True)
    with (folder / "supervisor.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor_stand_in", str(folder), str(count), str(retry)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, SRC])},
            stderr=log,
            text=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def logged(folder: Path) -> str:
    """What the supervisor logged so far."""
    return (folder / "supervisor.log").read_text()


def running(folder: Path) -> set[int]:
    return {int(p.name) for p in (folder / "running").iterdir()}


def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def test_one_of_the_first_processes_that_cannot_start_stops_them_all(tmp_path: Path) -> None:
    """Even when another of them already runs: they were started alike, so the command ends
    with the failure instead of trying it again and again (say, a health port held by some
    other program)."""
    tmp_path.joinpath("one").touch()
    with supervising(tmp_path, 2, retry=1.0) as proc:
        assert proc.wait(30) == 3
        assert "could not start; stopping the others" in logged(tmp_path)


def test_a_sighup_starts_a_waiting_replacement_at_once_and_restarts_the_others(
    tmp_path: Path,
) -> None:
    """A replacement that could not start waits for its retry; the operator fixes what it
    needed and sends SIGHUP: it starts at once, and the restart goes on to the others."""
    with supervising(tmp_path, 3, retry=20.0) as proc:
        until(lambda: len(running(tmp_path)) == 3, "three running")
        first = running(tmp_path)
        tmp_path.joinpath("fail").touch()
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        (tmp_path / "running" / str(killed)).unlink()  # it could not clean up after itself
        until(  # its replacement failed, and waits 20 s
            lambda: "could not start; starting another in 20 s" in logged(tmp_path),
            "the replacement's failure",
        )
        assert running(tmp_path) == first - {killed}
        tmp_path.joinpath("fail").unlink()
        os.kill(proc.pid, signal.SIGHUP)
        until(
            lambda: len(now := running(tmp_path)) == 3 and not now & first,
            "all three running, none of the first",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert "could not start; starting another in 20 s" in logged(tmp_path)


def test_a_replacement_that_ends_before_it_runs_is_not_started_again_at_once(
    tmp_path: Path,
) -> None:
    """A crash at start (any status but 3) waits like a failure to start: no loop of spawns."""
    with supervising(tmp_path, 1, retry=20.0) as proc:
        until(lambda: len(running(tmp_path)) == 1, "running")
        [pid] = running(tmp_path)
        tmp_path.joinpath("crash").touch()
        os.kill(pid, signal.SIGKILL)
        (tmp_path / "running" / str(pid)).unlink()
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log = logged(tmp_path)
    assert log.count("ended before it ran (exit status 1); starting another in 20 s") == 1
