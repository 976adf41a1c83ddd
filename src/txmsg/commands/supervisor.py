"""`txmsg worker --processes N`: N worker processes under this one.

As uvicorn's supervisor does for `serve --processes N`: each process is spawned (a fresh
interpreter: no loop, no threads inherited); one that dies is started again; SIGTERM or SIGINT
stops them all gracefully (each finishes its sends under way); one that could not start
(exit status STARTUP_FAILURE) would fail the same way again, so it stops them all and the
command exits with that status.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("txmsg.supervisor")

STARTUP_FAILURE = 3  # a process that could not start (uvicorn's status, for serve's processes)
WATCH_INTERVAL = 0.5  # seconds between two looks at the processes


def supervise(target: Callable[[dict[str, Any]], None], options: dict[str, Any], count: int) -> int:
    """`target(options)` in `count` processes until a signal stops them; STARTUP_FAILURE when
    one could not start, else 0. `target` is a module-level function (it is pickled)."""
    context = multiprocessing.get_context("spawn")

    def started() -> BaseProcess:
        process = context.Process(target=target, args=(options,), name="txmsg-worker")
        process.start()
        return process

    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping the processes", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    processes = [started() for _ in range(count)]
    failed = False
    while not failed and not stopping.wait(WATCH_INTERVAL):
        for index, process in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("process %s could not start; stopping the others", process.pid)
                failed = True
                break
            log.warning(
                "process %s ended (exit status %s); starting another",
                process.pid,
                process.exitcode,
            )
            processes[index] = started()
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: sends under way finish, outcomes recorded
    for process in processes:
        process.join()
    return STARTUP_FAILURE if failed else 0
