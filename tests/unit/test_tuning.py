"""The interpreter set-up of the `txmsg` commands' processes (engine/tuning.py).

Each test hands the collector back as it found it: a frozen heap in the test process would
keep every later test's garbage cycles for good.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from txmsg.engine import tuning


@pytest.fixture
def untuned(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tuning, "_tuned", False)
    interval = sys.getswitchinterval()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


class _Cycle:
    """Garbage only the collector frees: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("untuned")
def test_a_tuned_process_freezes_what_it_loaded_and_what_its_engine_built() -> None:
    tuning.tune_process()
    assert sys.getswitchinterval() == pytest.approx(tuning.GIL_SWITCH_INTERVAL)
    loaded = gc.get_freeze_count()
    assert loaded > 1000  # the modules loaded so far, left out of every collection's walk
    built = [object() for _ in range(10)], {"x": [1, 2]}
    tuning.engine_loaded()
    assert gc.get_freeze_count() > loaded
    assert built  # alive: frozen with the rest


@pytest.mark.usefixtures("untuned")
def test_an_engine_start_collects_before_it_freezes() -> None:
    tuning.tune_process()
    garbage = weakref.ref(_Cycle())  # unreachable at once, not freed by reference counting
    assert garbage() is not None
    tuning.engine_loaded()
    assert garbage() is None  # collected, not frozen


@pytest.mark.usefixtures("untuned")
def test_an_embedding_process_keeps_its_collector_as_it_was() -> None:
    """`create_app` in a test suite or another server: the engine's start leaves the collector
    alone."""
    tuning.engine_loaded()
    assert gc.get_freeze_count() == 0
