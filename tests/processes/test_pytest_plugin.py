"""The pytest plugin as a test author's suite meets it: a pytest run of its own, in a folder of
its own (the plugin loaded by its entry point, as installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from process_support import SRC

SUITE = """
import pytest

def test_a_sync_test(fake_smtp):
    pass

@pytest.mark.asyncio
async def test_an_async_test(fake_smtp, fake_twilio):
    assert fake_smtp.port and fake_twilio.base_url.startswith("http://127.0.0.1:")
"""


def test_the_fixtures_serve_async_tests_and_say_so_to_a_sync_one(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    assert "1 passed, 1 error" in out, out
    assert "the fake_smtp fixture serves async tests only: make test_a_sync_test async" in out
