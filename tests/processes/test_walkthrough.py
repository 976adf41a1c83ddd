"""The README's walk-through (examples/walkthrough.sh) works as written.

As a newcomer runs it: `txmsg fake smtp`, `txmsg fake twilio` and `txmsg serve` as real
processes on the default embedded database (found through TXMSG_DATA_DIR), then the script's
curl and `txmsg keys` commands from the repository's folder. The README mirrors the script: each
of its command lines is in the README's walk-through, word for word.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from helpers import free_port
from process_support import SRC

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "walkthrough.sh"


@asynccontextmanager
async def started(
    commands: list[tuple[list[str], Path, int]], env: dict[str, str]
) -> AsyncIterator[None]:
    """`txmsg argv...` for each (argv, log, port), started together (each spends a second or
    so importing) and each listening on its port; SIGTERM to them all at the end."""
    procs: list[asyncio.subprocess.Process] = []
    waits: list[asyncio.Future[None]] = []
    try:
        for argv, log, _ in commands:
            with log.open("wb") as out:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "txmsg.cli", *argv, env=env, stdout=out, stderr=out
                    )
                )
        waits = [
            asyncio.ensure_future(_listening(proc, argv, log, port))
            for proc, (argv, log, port) in zip(procs, commands, strict=True)
        ]
        await asyncio.gather(*waits)
        yield
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(proc.wait() for proc in procs)), 30)


async def _listening(
    proc: asyncio.subprocess.Process, argv: list[str], log: Path, port: int
) -> None:
    for _ in range(400):
        if proc.returncode is not None:
            raise AssertionError(f"txmsg {argv[:2]} exited: {_read(log)}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"txmsg {argv[:2]} did not listen: {_read(log)}")


def _read(path: Path) -> str:
    return path.read_text()


def _command_lines(text: str) -> list[str]:
    """The script's lines from its first section on (its header runs it, the README does not)."""
    steps = text[text.index("\n# --- ") :]
    return [line.strip() for line in steps.splitlines() if line.strip() and line[0] != "#"]


async def _run(env: dict[str, str]) -> tuple[int | None, str, str]:
    """The script's exit status, output and error output."""
    script = await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), cwd=ROOT, env=env, stdout=-1, stderr=-1
    )
    out, err = await asyncio.wait_for(script.communicate(), 60)
    return script.returncode, out.decode(), err.decode()


async def test_the_walkthrough_without_a_server_says_so() -> None:
    api = f"http://127.0.0.1:{free_port()}"
    code, output, told = await _run({**os.environ, "API": api})
    assert (code, output) == (1, ""), told
    assert told == f"walkthrough.sh: no txmsg serve answers at {api}: start it first\n"


def test_the_readme_mirrors_the_script() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [line for line in _command_lines(SCRIPT.read_text()) if line not in readme]
    assert not missing, "lines of examples/walkthrough.sh not in the README:\n" + "\n".join(missing)


async def test_the_walkthrough_works_as_written(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # `txmsg` on the PATH, as after activating the venv
    bin_dir.mkdir()
    (bin_dir / "txmsg").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m txmsg.cli "$@"\n')
    (bin_dir / "txmsg").chmod(0o755)
    api, smtp, mailbox, twilio = free_port(), free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TXMSG_")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": SRC,
        "TXMSG_DATA_DIR": str(tmp_path / "data"),
        "TXMSG_ADMIN_KEY": "change-me",
        "API": f"http://127.0.0.1:{api}",
        "SMTP_PORT": str(smtp),
        "TWILIO_URL": f"http://127.0.0.1:{twilio}",
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("smtp", "twilio", "serve")}
    commands = [
        (["fake", "smtp", "--port", str(smtp), "--http-port", str(mailbox)], logs["smtp"], smtp),
        (["fake", "twilio", "--port", str(twilio)], logs["twilio"], twilio),
        (["serve", "--port", str(api)], logs["serve"], api),
    ]
    async with started(commands, env):
        code, output, err = await _run(env)
        assert code == 0, f"{output}\n{err}\n{logs['serve'].read_text()}"
        async with httpx.AsyncClient() as client:
            mails = (await client.get(f"http://127.0.0.1:{mailbox}/messages")).json()
        # A second run on the same database stops before its first step, and says why.
        code, again, told = await _run(env)
        assert (code, again) == (1, ""), told
        assert "'mail' exists: the walk-through already ran on this database" in told
        assert "move its data directory aside" in told
    subjects = sorted(m["subject"] for m in mails)
    assert subjects == [
        "Ada, your cart is waiting",
        "Ada, your cart is waiting",
        "Grace, your cart is waiting",
        "Welcome, Grace",
    ]
    assert "did you mean 'EVTcartAbandonment'?" in output
    assert "the event's message has no published version yet" in output
    assert '"created":3' in output and '"status":"ready"' in output
    assert 'txmsg_sends_total{channel="email",outcome="processed"} 4.0' in output
    assert '"MessageStatus":"delivered"' in output  # the fake Twilio's receipt, recorded
    printed = logs["smtp"].read_text()
    assert "Subject: Welcome, Grace" in printed and "Hi Grace" in printed
    sms = logs["twilio"].read_text()
    assert "to +14155552671\nYour code is 482913" in sms
    assert "status callback delivered" in sms and "HTTP 204" in sms
