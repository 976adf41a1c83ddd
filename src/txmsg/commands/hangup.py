"""SIGHUP to a lone `txmsg serve` or `txmsg worker`: a warm restart, or a graceful stop when
its terminal hung up.

`serve --processes N` (uvicorn's supervisor) and `worker --processes N` restart their
processes on SIGHUP (uvicorn's starts each new one before it stops the old: with
`--metrics-port` the new one finds every port taken, and none is restarted). A lone process
does the same in place: it stops gracefully (requests answered, sends under way finished and
recorded), then runs its own command line again in the same process (exec: the same PID, as
systemd's `ExecReload=/bin/kill -HUP $MAINPID` expects; the code and files now on disk,
the environment as it was).

A closing terminal sends SIGHUP too. With a terminal on its standard error, the process only
stops, gracefully, as for SIGTERM: SIGHUP's default action ended it at once, abandoning the
sends under way (sent again after their lease: possibly twice). Started with SIGHUP ignored
(`nohup`), it keeps ignoring it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger("txmsg.hangup")

# Set across a restart: SIGHUP is ignored until the new process listens for it (its default
# action would end it), and this says it was this process that ignored it, not nohup.
RESTARTING_ENV = "TXMSG_HANGUP_RESTARTING"


class Hangup:
    """Whether SIGHUP came; `stop` is what stops the process gracefully."""

    def __init__(self) -> None:
        self.received = False
        # Ignored at start (nohup): the hang-up is not ours to act on; unless this process
        # ignored it itself, across its restart.
        restarted = os.environ.pop(RESTARTING_ENV, None) is not None
        self.listening = restarted or signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN

    def on_signal(self, stop: Callable[[], None]) -> Callable[[], None]:
        """The action for SIGHUP: note it, then `stop`."""

        def hung_up() -> None:
            self.received = True
            stop()

        return hung_up

    def install(self, stop: Callable[[], None]) -> None:
        """Act on SIGHUP with a plain signal handler (uvicorn's server: no loop yet)."""
        if self.listening:
            action = self.on_signal(stop)
            signal.signal(signal.SIGHUP, lambda _signum, _frame: action())

    def after_stop(self) -> None:
        """Once stopped gracefully: run again when SIGHUP came and no terminal hung up."""
        if not self.received:
            return
        if _on_terminal():
            log.info("SIGHUP with a terminal: stopped (the terminal hung up)")
            return
        restart()


def _on_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no stderr, or not a file
        return False


def restart() -> NoReturn:
    """Run this process's command line again in this process."""
    log.info("SIGHUP: stopped gracefully, starting again")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # another, before the new process listens
    os.environ[RESTARTING_ENV] = "1"
    os.execv(sys.executable, sys.orig_argv)
