"""`txmsg worker --processes N`: N worker processes under this one.

As uvicorn's supervisor does for `serve --processes N`: each process is spawned (a fresh
interpreter: no loop, no threads inherited); one that dies is started again; SIGTERM or SIGINT
stops them all gracefully (each finishes its sends under way), and one still running after
GRACE_SECONDS is killed; one that could not start (exit status STARTUP_FAILURE) would fail the
same way again, so it stops them all and the command exits with that status.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("txmsg.supervisor")

STARTUP_FAILURE = 3  # a process that could not start (uvicorn's status, for serve's processes)
WATCH_INTERVAL = 0.5  # seconds: the longest a signal waits to be seen
GRACE_SECONDS = 60.0  # for the processes' sends under way when stopped (systemd's unit: 90)

Target = Callable[[dict[str, Any]], None]


def supervise(target: Target, options: dict[str, Any], count: int) -> int:
    """`target(options)` in `count` processes until a signal stops them; STARTUP_FAILURE when
    one could not start, else 0. `target` is a module-level function (it is pickled)."""
    context = multiprocessing.get_context("spawn")
    # The handler only appends: one taking a lock (Event.set) could wait for the lock its own
    # thread holds in the wait it interrupted, for ever.
    signalled: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signalled.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    processes: list[BaseProcess] = []
    failed = False
    try:
        processes.extend(_start(context, target, options) for _ in range(count))
        while not signalled and not failed:
            wait([p.sentinel for p in processes], WATCH_INTERVAL)  # a process ended, or time
            failed = _replace_ended(processes, lambda: _start(context, target, options), signalled)
        if signalled:
            log.info("%s: stopping the processes", signal.Signals(signalled[0]).name)
    finally:
        _stop(processes)
    return STARTUP_FAILURE if failed else 0


def _start(context: SpawnContext, target: Target, options: dict[str, Any]) -> BaseProcess:
    process = context.Process(target=target, args=(options,), name="txmsg-worker")
    process.start()
    return process


def _replace_ended(
    processes: list[BaseProcess], start: Callable[[], BaseProcess], signalled: list[int]
) -> bool:
    """Start a process again for each that ended; True when one could not start (then none
    is started again, nor once a signal came: they are all being stopped)."""
    for index, process in enumerate(processes):
        if process.is_alive():
            continue
        if process.exitcode == STARTUP_FAILURE:
            log.error("process %s could not start; stopping the others", process.pid)
            return True
        if signalled:
            return False
        log.warning(
            "process %s ended (exit status %s); starting another", process.pid, process.exitcode
        )
        processes[index] = start()
    return False


def _stop(processes: list[BaseProcess]) -> None:
    """SIGTERM to each (a graceful stop), then SIGKILL to any still running after the grace."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("process %s still running after %s s; killed", process.pid, GRACE_SECONDS)
            process.kill()
            process.join()
