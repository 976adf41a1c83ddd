"""The `txmsg` command as real subprocesses on a shared database, for the tests that start,
stop, kill and restart it (restarts, crashes, process roles)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from conftest import ADMIN_KEY
from helpers import free_port

SRC = str(Path(__file__).resolve().parents[1] / "src")


def body(i: int) -> dict[str, object]:
    return {"email": f"user{i}@example.org", "ctx": {"firstName": f"U{i}"}}


def pkeys_of(mails: list) -> list[str]:
    return [m.message["Message-ID"][1:].split("@")[0] for m in mails]


class Txmsg:
    """One `python -m txmsg.cli ...` subprocess on a shared database; `/health` says ready."""

    def __init__(
        self, args: list[str], database_url: str, data_dir: Path, log: Path, **env: str
    ) -> None:
        self.port = free_port()
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "TXMSG_DATABASE_URL": database_url,
            "TXMSG_DATA_DIR": str(data_dir),
            "TXMSG_ADMIN_KEY": ADMIN_KEY,
            "TXMSG_LEASE_SECONDS": "2",
            "TXMSG_POLL_INTERVAL": "0.05",
            "TXMSG_SWEEP_INTERVAL": "0.2",
            "TXMSG_RETRY_BASE_SECONDS": "0.05",
            "TXMSG_RETRY_MAX_SECONDS": "0.2",
            "TXMSG_CONFIG_CACHE_SECONDS": "0",
            **env,
        }
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[httpx.AsyncClient]:
        """The process, started and healthy; an admin client on its port (API or health)."""
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "txmsg.cli", *self.args),
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{self.port}",
                timeout=10,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ) as client:
                await self._wait_healthy(client)
                yield client
        finally:
            await self.terminate()

    async def _wait_healthy(self, client: httpx.AsyncClient) -> None:
        assert self.proc is not None
        for _ in range(300):
            if self.proc.returncode is not None:
                raise AssertionError(f"the process exited: {self.log.read_text()}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"the process did not start: {self.log.read_text()}")

    async def terminate(self) -> int | None:
        """SIGTERM, as a supervisor stops it; its exit status (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        self.proc = None
        return code

    async def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, in-flight sends and leases are abandoned."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None
