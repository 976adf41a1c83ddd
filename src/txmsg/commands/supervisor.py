"""`txmsg worker --processes N`: N worker processes under this one.

As uvicorn's supervisor does for `serve --processes N`: each process is spawned (a fresh
interpreter: no loop, no threads inherited); one that dies is started again; SIGTERM or SIGINT
stops them all gracefully (each finishes its sends under way), and one still running after
GRACE_SECONDS is killed; one that could not start (exit status STARTUP_FAILURE) would fail the
same way again, so it stops them all and the command exits with that status. SIGHUP restarts
them one at a time (new code, new settings): each stops gracefully, its replacement starts,
and the next waits until the replacement runs, so the others keep sending meanwhile.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

log = logging.getLogger("txmsg.supervisor")

STARTUP_FAILURE = 3  # a process that could not start (uvicorn's status, for serve's processes)
WATCH_INTERVAL = 0.5  # seconds: the longest a signal waits to be seen
GRACE_SECONDS = 60.0  # for the processes' sends under way when stopped (systemd's unit: 90)
READY_SECONDS = 60.0  # for a process restarted by SIGHUP to run, before the next one stops
STOPS = (signal.SIGTERM, signal.SIGINT)

# The target runs in the process; it sets the event once it runs (what fails before could not
# start).
Target = Callable[[dict[str, Any], Event], None]


@dataclass(frozen=True, slots=True)
class Child:
    """A process and the event it sets once it runs (held as long as the process: the child
    opens the event's semaphore by name when it starts)."""

    process: BaseProcess
    ready: Event


def supervise(target: Target, options: dict[str, Any], count: int) -> int:
    """`target(options, ready)` in `count` processes until a signal stops them; STARTUP_FAILURE
    when one could not start, else 0. `target` is a module-level function (it is pickled)."""
    context = multiprocessing.get_context("spawn")
    # The handler only appends: one taking a lock (Event.set) could wait for the lock its own
    # thread holds in the wait it interrupted, for ever.
    signalled: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signalled.append(signum)

    for signum in (*STOPS, signal.SIGHUP):
        signal.signal(signum, on_signal)

    def start() -> Child:
        ready = context.Event()
        process = context.Process(target=target, args=(options, ready), name="txmsg-worker")
        process.start()
        return Child(process, ready)

    def stopping() -> bool:
        return any(s in STOPS for s in signalled)

    children: list[Child] = []
    failed = False
    hangups = 0  # SIGHUPs acted on (the list is only appended to: a signal is never lost)
    try:
        children.extend(start() for _ in range(count))
        while not stopping() and not failed:
            wait([c.process.sentinel for c in children], WATCH_INTERVAL)  # one ended, or time
            if signalled.count(signal.SIGHUP) > hangups and not stopping():
                hangups = signalled.count(signal.SIGHUP)  # those meanwhile: one restart
                log.info("SIGHUP: restarting the processes one at a time")
                failed = _restart_each(children, start, stopping)
            failed = failed or _replace_ended(children, start, stopping)
        if stopping():
            first = next(s for s in signalled if s in STOPS)
            log.info("%s: stopping the processes", signal.Signals(first).name)
    finally:
        _stop([c.process for c in children])
    return STARTUP_FAILURE if failed else 0


def _restart_each(
    children: list[Child], start: Callable[[], Child], stopping: Callable[[], bool]
) -> bool:
    """Stop each process gracefully in turn and start its replacement, waiting until it runs
    before the next; True when a replacement could not start (then none is restarted more)."""
    for index, child in enumerate(children):
        if stopping():
            return False
        _stop([child.process])
        replacement = children[index] = start()
        deadline = time.monotonic() + READY_SECONDS
        while not replacement.ready.wait(WATCH_INTERVAL):
            alive = replacement.process.is_alive()
            if stopping() or not alive or time.monotonic() > deadline:
                break
        if replacement.process.exitcode == STARTUP_FAILURE:
            log.error("process %s could not start; stopping the others", replacement.process.pid)
            return True
        if not replacement.ready.is_set():
            return False  # stopping, or it ended: the watch loop sees to it
    return False


def _replace_ended(
    children: list[Child], start: Callable[[], Child], stopping: Callable[[], bool]
) -> bool:
    """Start a process again for each that ended; True when one could not start (then none
    is started again, nor once a signal came: they are all being stopped)."""
    for index, child in enumerate(children):
        process = child.process
        if process.is_alive():
            continue
        if process.exitcode == STARTUP_FAILURE:
            log.error("process %s could not start; stopping the others", process.pid)
            return True
        if stopping():
            return False
        log.warning(
            "process %s ended (exit status %s); starting another", process.pid, process.exitcode
        )
        children[index] = start()
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
