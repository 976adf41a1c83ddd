"""The `txmsg` command as real subprocesses on a shared database, for the tests that start,
stop, kill and restart it (restarts, crashes, process roles)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from conftest import ADMIN_KEY, PG_DSN
from helpers import free_port, trigger
from txmsg.commands.database import sqlite_path
from txmsg.testing import FakeSMTPServer

SRC = str(Path(__file__).resolve().parents[1] / "src")


def body(i: int) -> dict[str, object]:
    return {"email": f"user{i}@example.org", "ctx": {"firstName": f"U{i}"}}


def pkeys_of(mails: list) -> list[str]:
    return [m.message["Message-ID"][1:].split("@")[0] for m in mails]


def spawned(parent: int) -> set[int]:
    """The processes uvicorn's supervisor spawned from `parent` (not its resource tracker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(entry))
    return found


async def ops_ports_answering(first: int, count: int) -> set[int]:
    """The ports from `first` whose /health answers, once all do (or after 30 s: a process
    started again, imports and all, takes a few seconds on a loaded machine)."""
    answering: set[int] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for port in range(first, first + count):
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                    if (await probe.get("/health")).status_code == 200:
                        answering.add(port)
            except httpx.TransportError:
                answering.discard(port)
        if len(answering) == count:
            break
        await asyncio.sleep(0.05)
    return answering


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
        async with all_running(self) as [client]:
            yield client

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "txmsg.cli", *self.args),
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )

    async def database_made(self) -> None:
        """Once a new SQLite database's file exists (the process makes it as it starts): a
        worker started with this one needs it, as it never makes one of its own."""
        path = sqlite_path(self.env["TXMSG_DATABASE_URL"])
        assert self.proc is not None
        for _ in range(600):
            if path is None or path.exists() or self.proc.returncode is not None:
                return  # an exit is reported while waiting for its health
            await asyncio.sleep(0.02)
        raise AssertionError(f"the process made no database: {self.log.read_text()}")

    async def wait_healthy(self, client: httpx.AsyncClient) -> None:
        """Until `/health` answers 200 through `client`; fails if the process exits first."""
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


def apis_and_workers(
    database_url: str, data_dir: Path, logs: Path, apis: int, workers: int, **worker_env: str
) -> tuple[list[Txmsg], list[Txmsg]]:
    """`apis` processes of `serve --role api` and `workers` of `worker` (each with its health
    port) on one database, each logging to a file of its own in `logs`."""
    api_args = ["serve", "--role", "api", "--port", "{port}", "--log-level", "warning"]
    return (
        [Txmsg(api_args, database_url, data_dir, logs / f"api{i}.log") for i in range(1, apis + 1)],
        [
            Txmsg(
                ["worker", "--health-port", "{port}"],
                database_url,
                data_dir,
                logs / f"worker{i}.log",
                **worker_env,
            )
            for i in range(1, workers + 1)
        ],
    )


@asynccontextmanager
async def all_running(*processes: Txmsg) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The processes, started together and each healthy; their admin clients. Each spends a
    second or so importing and starting: side by side, not one after the other. SIGTERM to
    all of them together at the end."""
    async with AsyncExitStack() as stack:
        stack.push_async_callback(_terminate_all, processes)
        clients = [await stack.enter_async_context(p.client()) for p in processes]
        for process in processes:
            await process.start()
            await process.database_made()
        waits = [
            asyncio.ensure_future(p.wait_healthy(c))
            for p, c in zip(processes, clients, strict=True)
        ]
        try:
            await asyncio.gather(*waits)  # the first failure, as one process alone would fail
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        yield clients


async def _terminate_all(processes: Iterable[Txmsg]) -> None:
    codes = await asyncio.gather(*(p.terminate() for p in processes), return_exceptions=True)
    for code in codes:
        if isinstance(code, BaseException):
            raise code


async def kill_one_spawned(parent: int, meanwhile: Awaitable[None] | None = None) -> int:
    """SIGKILL the first process `parent` spawned, await `meanwhile` (the others serve), and
    wait until the supervisor has started another (it looks every half second); the pid."""
    first = spawned(parent)
    killed = min(first)
    os.kill(killed, signal.SIGKILL)
    if meanwhile is not None:
        await meanwhile
    for _ in range(200):
        now = spawned(parent)
        if len(now) == len(first) and killed not in now:
            return killed
        await asyncio.sleep(0.05)
    raise AssertionError(f"{killed} was not replaced: {now}")


async def sends_counted(ports: Iterable[int], expected: float, timeout: float = 10.0) -> float:
    """The processed email sends counted by the processes whose ops ports are `ports` (no key),
    once they add up to `expected` or after `timeout`: a send is counted after its outcome is
    recorded, a moment after the SMTP server has the message."""
    sample = 'txmsg_sends_total{channel="email",outcome="processed"} '
    deadline = time.monotonic() + timeout
    while True:
        total = 0.0
        for port in ports:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
                text = (await probe.get("/metrics")).text
            lines = [line for line in text.splitlines() if line.startswith(sample)]
            total += float(lines[0].removeprefix(sample)) if lines else 0.0
        if total == expected or time.monotonic() > deadline:
            return total
        await asyncio.sleep(0.05)


async def latencies_to_smtp(
    admin: httpx.AsyncClient, event_id: str, smtp: FakeSMTPServer, count: int, timeout: float
) -> list[float]:
    """Seconds from each of `count` triggers, one at a time and the engine idle between, to
    its message at the SMTP server."""
    latencies = []
    for i in range(count):
        started = time.monotonic()
        await trigger(admin, event_id, body(i))
        await smtp.wait_for(i + 1, timeout=timeout)
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.1)  # idle again
    return latencies


async def sent_once_each(smtp: FakeSMTPServer, count: int) -> list[str]:
    """The PKeys of the messages `smtp` has, once a duplicate would have arrived too: `count`
    of them, none twice."""
    await asyncio.sleep(0.3)
    pkeys = pkeys_of(smtp.messages)
    assert len(pkeys) == len(set(pkeys)), "an event sent twice"
    assert len(pkeys) == count, (len(pkeys), count)
    return pkeys


async def pg_value(database_url: str, sql: str, *args: object) -> Any:
    """One value `sql` reads from the PostgreSQL database the processes share."""
    database = make_url(database_url).database
    conn = await asyncpg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{database}")
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def leased_at_once(database_url: str, count: int) -> None:
    """Until `count` events are leased (`processing`) at once: with as many workers full,
    each holds leases a SIGKILL or SIGSTOP leaves behind."""
    sql = "SELECT count(*) FROM events WHERE status = 'processing'"
    for _ in range(200):
        if await pg_value(database_url, sql) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} events were never processing at once")
