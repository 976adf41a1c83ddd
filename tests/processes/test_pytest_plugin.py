"""The pytest plugin as a test author's suite meets it: a pytest run of its own, in a folder of
its own (the plugin loaded by its entry point, as installed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from process_support import SRC
from txmsg.testing import pytest_plugin

SUITE = """
import pytest

def test_a_sync_test(fake_smtp):
    pass

@pytest.mark.asyncio
async def test_an_async_test(fake_smtp, fake_twilio):
    assert fake_smtp.port and fake_twilio.base_url.startswith("http://127.0.0.1:")
"""


def _pytest(folder: Path, suite: str) -> str:
    (folder / "test_suite.py").write_text(suite)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.stdout


def test_the_fixtures_serve_async_tests_and_say_so_to_a_sync_one(tmp_path: Path) -> None:
    out = _pytest(tmp_path, SUITE)
    assert "1 passed, 1 error" in out, out
    assert "the fake_smtp fixture serves async tests only: make test_a_sync_test async" in out


# The plugin's own example (its docstring's first), and a test on a wider loop than its fixtures'.
EXAMPLE = textwrap.dedent((pytest_plugin.__doc__ or "").split("::")[1].split("``fake_twilio``")[0])
LOOPS = f"""
import aiosmtplib
import pytest
{EXAMPLE}

@pytest.mark.asyncio(loop_scope="module")
async def test_on_the_modules_loop(fake_smtp):
    mail = b"Subject: x\\r\\n\\r\\nx\\r\\n"
    await aiosmtplib.send(mail, sender="a@example.com", recipients=["b@example.com"],
                          hostname=fake_smtp.host, port=fake_smtp.port, timeout=5)
"""


def test_a_test_on_another_loop_than_its_fixtures_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    out = _pytest(tmp_path, LOOPS)
    assert "1 passed, 1 error" in out, out  # the example passes
    assert (
        "the fake_smtp fixture runs on the function-scoped event loop, test_on_the_modules_loop "
        "on the module-scoped one" in out
    ), out
    assert "asyncio_default_fixture_loop_scope = module" in out
