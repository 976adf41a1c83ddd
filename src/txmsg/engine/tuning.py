"""The interpreter of a process the `txmsg` commands run the engine in, set up for it.

Not the app factory's business: both settings below are the whole process's, and a process
embedding the app (a test suite, another server) keeps its own.

- The GIL's switch interval (`GIL_SWITCH_INTERVAL`).
- The collector's view of the heap. A full collection walks every object the collector tracks:
  the modules, classes and functions loaded at start (about 160,000 objects in `serve`) were
  most of them, and `serve` paused 90-110 ms for each while batch triggers loaded, about once a
  second (a transactional trigger arriving then waited for it). Frozen at start and once the
  engine has loaded (`gc.freeze`), they are left out: 3-12 ms.
"""

from __future__ import annotations

import gc
import sys

# The interpreter's switch interval in the `txmsg` commands' processes (5 ms by default): how
# long a thread waiting for the GIL waits before it asks for it. The SQLite writer thread takes
# the GIL back after each statement, while the event loop is busy with bulk sends; at 5 ms a
# short write cycle took 10-30 ms, and a transactional trigger waits for the cycle under way.
# 1 ms: SQLite's p99 under a 100,000 bulk backlog 9.8-18.9 ms in sixteen runs against
# 10.0-35.5 ms in twelve, acceptance and end to end unchanged (bench/README.md); 0.2 ms was
# worse again (more switching).
GIL_SWITCH_INTERVAL = 0.001

_tuned = False  # this process was set up by tune_process


def tune_process() -> None:
    """Set up this process for the engine, before the engine is built: the switch interval,
    and what is loaded so far frozen out of the collector's walks."""
    global _tuned
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    gc.freeze()
    _tuned = True


def engine_loaded() -> None:
    """In a tuned process, once its engine has done its start's loading (the migrations'
    modules, the database's connections) and before it takes any work: that frozen too, after
    a collection so that no garbage is kept for good. (The engine of such a process is never
    started twice: a SIGHUP restart runs a new interpreter.)"""
    if _tuned:
        gc.collect()
        gc.freeze()
