"""A supervised process (one of `serve --processes N` or `worker --processes N`) stops when its
supervisor dies, however it died: killed with SIGKILL, or by the kernel's OOM killer, the
supervisor cannot stop its processes, which would go on serving and sending with none to
replace them, and hold their ports against the command started again.

On Linux the kernel sends the process SIGTERM (its graceful stop) when its parent ends
(`PR_SET_PDEATHSIG`); elsewhere nothing is watched.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with(supervisor_pid: int) -> None:
    """SIGTERM to this process when its parent, the supervisor `supervisor_pid`, ends; at once
    when it has ended already (before this process asked)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    signum = ctypes.c_ulong(signal.SIGTERM)  # prctl's arguments are unsigned longs
    if libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor_pid:  # the supervisor ended before the request
        os.kill(os.getpid(), signal.SIGTERM)
