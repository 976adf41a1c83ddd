"""A worker's stand-in for `commands/supervisor.supervise` (tests/processes/test_supervisor.py):
spawned processes import it by name, so it lives at the top of tests/.

Run as a script, it supervises `count` stand-ins in `folder` with a first retry wait of
`retry` seconds: `python supervisor_stand_in.py folder count retry`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from txmsg.commands import supervisor
from txmsg.commands.supervisor import STARTUP_FAILURE


def stand_in(options: dict[str, Any], ready: Event) -> None:
    """Exits STARTUP_FAILURE while `folder/fail` exists, as a worker that cannot start (1 while
    `folder/crash` does, as one that crashes); also
    when `folder/one` exists and another stand-in took the one place it allows. Else it runs:
    its pid in `folder/running/`, `ready` set, until SIGTERM."""
    folder = Path(options["folder"])
    if (folder / "fail").exists():
        sys.exit(STARTUP_FAILURE)
    if (folder / "crash").exists():
        sys.exit(1)
    if (folder / "one").exists():
        try:
            os.close(os.open(folder / "taken", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            time.sleep(0.3)  # fails once the other one runs
            sys.exit(STARTUP_FAILURE)
    mark = folder / "running" / str(os.getpid())
    mark.touch()
    stopped = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    ready.set()
    while not stopped:
        time.sleep(0.05)
    mark.unlink()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder, count, retry = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    supervisor.RETRY_FIRST_SECONDS = retry
    sys.exit(supervisor.supervise(stand_in, {"folder": folder}, count))
