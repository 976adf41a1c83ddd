"""`txmsg worker --processes N`: N worker processes under this one.

As uvicorn's supervisor does for `serve --processes N`: each process is spawned (a fresh
interpreter: no loop, no threads inherited); one that dies is started again; SIGTERM or SIGINT
stops them all gracefully (each finishes its sends under way), and one still running after
GRACE_SECONDS is killed. SIGHUP restarts them one at a time (new code, new settings): each
stops gracefully, its replacement starts, and the next waits until the replacement runs, so
the others keep sending meanwhile.

A process that could not start (exit status STARTUP_FAILURE: the database unreachable, its
health port taken, settings refused):
- one started with the command: the others would fail the same way, so it stops them all and
  the command exits with that status (a supervisor such as systemd sees it);
- one started later (a replacement) is started again after a wait (RETRY_FIRST_SECONDS,
  doubling up to RETRY_LONGEST_SECONDS), and the others keep sending meanwhile: a replacement
  that meets a database outage, or a SIGHUP's that refuses new settings (the restart stops
  there, the processes not yet restarted keep the old ones), does not take the others down.
  A later SIGHUP starts a waiting one at once. A replacement that ends before it runs with
  any other status (a crash) waits the same way, rather than being started again at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

# The status of a process that could not start.
from txmsg.commands.database import STARTUP_FAILURE as STARTUP_FAILURE

log = logging.getLogger("txmsg.supervisor")

WATCH_INTERVAL = 0.5  # seconds: the longest a signal waits to be seen
GRACE_SECONDS = 60.0  # for the processes' sends under way when stopped (systemd's unit: 90)
READY_SECONDS = 60.0  # for a process restarted by SIGHUP to run, before the next one stops
STOPS = (signal.SIGTERM, signal.SIGINT)
RETRY_FIRST_SECONDS = 1.0  # before a process that could not start is started again...
RETRY_LONGEST_SECONDS = 30.0  # ... doubling after each failure in a row, up to this

# The target runs in the process; it sets the event once it runs (what fails before could not
# start).
Target = Callable[[dict[str, Any], Event], None]


@dataclass(frozen=True, slots=True)
class Child:
    """A process and the event it sets once it runs (held as long as the process: the child
    opens the event's semaphore by name when it starts)."""

    process: BaseProcess
    ready: Event
    # Started with the command, before any of its processes ran: if it cannot start, the
    # others will not either, and the command ends (STARTUP_FAILURE).
    first: bool = False


@dataclass
class Retries:
    """The places of processes that could not start: when each is started again, and how
    many times in a row its process could not start."""

    due: dict[int, float] = field(default_factory=dict)  # place -> time.monotonic()
    failures: dict[int, int] = field(default_factory=dict)

    def later(self, index: int) -> float:
        """Start place `index` again after a wait that doubles with each failure; the wait."""
        count = self.failures[index] = self.failures.get(index, 0) + 1
        delay = min(RETRY_LONGEST_SECONDS, RETRY_FIRST_SECONDS * 2 ** (count - 1))
        self.due[index] = time.monotonic() + delay
        return delay

    def timeout(self) -> float:
        """How long the watch may wait: until the next retry is due, WATCH_INTERVAL at most."""
        if not self.due:
            return WATCH_INTERVAL
        return max(0.0, min(WATCH_INTERVAL, min(self.due.values()) - time.monotonic()))


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

    def start(first: bool = False) -> Child:
        ready = context.Event()
        process = context.Process(target=target, args=(options, ready), name="txmsg-worker")
        process.start()
        return Child(process, ready, first)

    def stopping() -> bool:
        return any(s in STOPS for s in signalled)

    children: list[Child] = []
    retries = Retries()
    failed = False
    hangups = 0  # SIGHUPs acted on (the list is only appended to: a signal is never lost)
    try:
        children.extend(start(first=True) for _ in range(count))
        while not stopping() and not failed:
            # One ended, or time (a process waiting to start again has no sentinel to watch).
            waiting = [c.process.sentinel for i, c in enumerate(children) if i not in retries.due]
            wait(waiting, retries.timeout())
            if signalled.count(signal.SIGHUP) > hangups and not stopping():
                hangups = signalled.count(signal.SIGHUP)  # those meanwhile: one restart
                log.info("SIGHUP: restarting the processes one at a time")
                _restart_each(children, start, stopping, retries)
            failed = _replace_ended(children, start, stopping, retries)
        if stopping():
            first = next(s for s in signalled if s in STOPS)
            log.info("%s: stopping the processes", signal.Signals(first).name)
    finally:
        _stop([c.process for c in children])
    return STARTUP_FAILURE if failed else 0


def _restart_each(
    children: list[Child],
    start: Callable[[], Child],
    stopping: Callable[[], bool],
    retries: Retries,
) -> None:
    """Stop each process gracefully in turn and start its replacement, waiting until it runs
    before the next. A replacement that could not start ends the restart there: the watch
    loop starts it again later (the others not yet restarted keep running as they were)."""
    for index, child in enumerate(children):
        if stopping():
            return
        if index in retries.due:
            # Waiting to start again: it starts now, on what this SIGHUP brings (a fix, maybe).
            retries.due[index] = time.monotonic()
            retries.failures.pop(index, None)
            continue
        _stop([child.process])
        replacement = children[index] = start()
        deadline = time.monotonic() + READY_SECONDS
        while not replacement.ready.wait(WATCH_INTERVAL):
            alive = replacement.process.is_alive()
            if stopping() or not alive or time.monotonic() > deadline:
                break
        if not replacement.ready.is_set():
            if replacement.process.exitcode == STARTUP_FAILURE:
                log.error(
                    "process %s could not start; the restart stops here, the others keep running",
                    replacement.process.pid,
                )
            return  # stopping, or it ended: the watch loop sees to it


def _replace_ended(
    children: list[Child],
    start: Callable[[], Child],
    stopping: Callable[[], bool],
    retries: Retries,
) -> bool:
    """Start a process again for each that ended: at once if it had run, else when its retry
    is due; True when one started with the command could not start (then all stop)."""
    for index, child in enumerate(children):
        process = child.process
        if process.is_alive():
            if child.ready.is_set():
                retries.failures.pop(index, None)  # it runs: the next failure waits 1 s again
            continue
        if stopping():
            return False
        due = retries.due.get(index)
        if due is not None:
            if time.monotonic() >= due:
                del retries.due[index]
                children[index] = start()
            continue
        if child.ready.is_set():  # it ran, then ended: its place is taken at once
            log.warning(
                "process %s ended (exit status %s); starting another",
                process.pid,
                process.exitcode,
            )
            children[index] = start()
            continue
        if process.exitcode == STARTUP_FAILURE:
            if child.first:
                log.error("process %s could not start; stopping the others", process.pid)
                return True
            reason = "could not start"
        else:  # it ended before it ran (a crash): not again at once, over and over
            reason = f"ended before it ran (exit status {process.exitcode})"
        delay = retries.later(index)
        log.error(
            "process %s %s; starting another in %.0f s (%d in a row)",
            process.pid,
            reason,
            delay,
            retries.failures[index],
        )
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
