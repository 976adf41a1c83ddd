"""Test harness: the real app under uvicorn on loopback, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import sqlite3
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from export_support import s3  # noqa: F401 - the S3 server fixture of the export tests
from txmsg.app import create_app
from txmsg.config import Settings
from txmsg.engine.providers import Providers
from txmsg.store.db import Database
from txmsg.store.sealing import Keyring
from txmsg.testing import FakeSMTPServer
from txmsg.testing.http import LoopServer
from webhook_support import receiver  # noqa: F401 - the webhook receiver fixture

ADMIN_KEY = "test-admin-key-" + "x" * 20

# The processes the tests start hear SIGHUP as a service's do (tests/processes/test_hangup.py),
# also when the suite itself was started under nohup (which they would inherit).
signal.signal(signal.SIGHUP, signal.SIG_DFL)
PG_DSN = os.environ.get("TXMSG_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _engines() -> list[str]:
    chosen = os.environ.get("TXMSG_TEST_DATABASES", "sqlite,postgresql")
    return [e.strip() for e in chosen.split(",") if e.strip()]


# Fixtures that migrate the database they get: a copy of one database migrated once per session
# (and per xdist worker) does for them, in a tenth of the time of running every migration again.
# Tests that ask for `database_url` alone get an empty database (their processes migrate it).
MIGRATING_FIXTURES = {"server", "db"}


class PostgresqlCopies:
    """CREATE and DROP DATABASE on a thread of their own: the next test's database is made
    while this one runs, and this one's is dropped after it (each takes 0.05-0.15 s)."""

    AHEAD = 2  # databases made ahead of the tests that take them, for each template

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="postgresql-copies")
        self._spares: dict[str | None, deque[Future[str]]] = defaultdict(deque)

    async def take(self, template: str | None) -> str:
        """A new database, a copy of `template` (None: an empty one); the next ones made."""
        spares = self._spares[template]
        while len(spares) <= self.AHEAD:
            spares.append(self._thread.submit(self._create, template))
        return await asyncio.wrap_future(spares.popleft())

    def drop(self, name: str) -> None:
        self._thread.submit(lambda: asyncio.run(_drop_database(name)))

    def close(self) -> None:
        """Drops the spares; returns once every database made is dropped."""
        for spare in itertools.chain(*self._spares.values()):
            with contextlib.suppress(Exception):  # one not made is not there to drop
                self.drop(spare.result())
        self._thread.shutdown(wait=True)

    @staticmethod
    def _create(template: str | None) -> str:
        name = "txmsg_test_" + secrets.token_hex(6)
        asyncio.run(_create_database(name, template))
        return name


@dataclass
class Templates:
    """Databases at the migrations' head, made on first use, copied for each test."""

    folder: Path
    sqlite: Path | None = None
    postgresql: str | None = None
    copies: PostgresqlCopies = field(default_factory=PostgresqlCopies)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    made = Templates(tmp_path_factory.mktemp("template"))
    yield made
    made.copies.close()  # none is being copied from the template any more
    if made.postgresql is not None:
        asyncio.run(_drop_database(made.postgresql))


async def _drop_database(name: str) -> None:
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _pg_url(name: str) -> str:
    base = PG_DSN.rsplit("/", 1)[0]
    return f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"


async def _migrated(url: str) -> None:
    database = Database(url)
    try:
        await database.migrate()
    finally:
        await database.dispose()  # a template must have no connection left when copied


async def _sqlite_template(made: Templates) -> Path:
    if made.sqlite is None:
        path = made.folder / "template.db"
        await _migrated(f"sqlite:///{path}")
        made.sqlite = path
    return made.sqlite


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy, whatever is still in the source's WAL (a few ms)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


async def _pg_template(made: Templates) -> str:
    if made.postgresql is None:
        name = "txmsg_test_template_" + secrets.token_hex(6)
        await _create_database(name)
        made.postgresql = name
        await _migrated(_pg_url(name))
    return made.postgresql


async def _create_database(name: str, template: str | None = None) -> None:
    admin = await asyncpg.connect(PG_DSN)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    templates: Templates,
) -> AsyncIterator[str]:
    kind = getattr(request, "param", "sqlite")
    migrated = not MIGRATING_FIXTURES.isdisjoint(request.fixturenames)
    if kind == "sqlite":
        path = tmp_path / "txmsg.db"
        if migrated:
            _copy_sqlite(await _sqlite_template(templates), path)
        yield f"sqlite:///{path}"
        return
    name = await templates.copies.take(await _pg_template(templates) if migrated else None)
    try:
        yield _pg_url(name)
    finally:
        templates.copies.drop(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that reaches the database runs on both engines (same code, same tests).
    if "database_url" in metafunc.fixturenames and not hasattr(metafunc.function, "sqlite_only"):
        engines = _engines()
        if hasattr(metafunc.function, "postgresql_only"):  # scale-out across processes
            engines = [e for e in engines if e == "postgresql"]
        metafunc.parametrize("database_url", engines, indirect=True)


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_key=ADMIN_KEY,
        poll_interval=0.05,
        sweep_interval=0.1,
        lease=timedelta(seconds=2),
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        config_cache_seconds=0.0,
    )
    return replace(base, **overrides)


@dataclass
class Server:
    base_url: str
    settings: Settings
    app: Any
    admin: httpx.AsyncClient

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)


class RunningServer:
    """uvicorn serving the app in this event loop, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        # Idle connections kept longer than any test's pause: at uvicorn's 5 s, a test's
        # client could send on a kept connection just as the server closed it (ReadError).
        self.server = LoopServer(
            self.app, lifespan="on", name="test server", timeout_keep_alive=120
        )

    async def __aenter__(self) -> Server:
        await self.server.start()
        base = f"http://127.0.0.1:{self.server.port}"
        self.admin = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
        )
        return Server(base, self.settings, self.app, self.admin)

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.aclose()
        await self.server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest_asyncio.fixture
async def server(
    request: pytest.FixtureRequest, database_url: str, data_dir: Path
) -> AsyncIterator[Server]:
    """The server; `@pytest.mark.server_settings(name=value, ...)` overrides its settings
    (e.g. `bounce_listen="127.0.0.1:0"` starts the bounce listener on a free port)."""
    marker = request.node.get_closest_marker("server_settings")
    overrides = marker.kwargs if marker is not None else {}
    async with RunningServer(settings_for(database_url, data_dir, **overrides)) as running:
        yield running


@pytest_asyncio.fixture
async def db(database_url: str, data_dir: Path) -> AsyncIterator[Database]:
    """A migrated database, without a server."""
    database = Database(database_url, keyring=Keyring.load(None, data_dir))
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def other_db(db: Database) -> AsyncIterator[Database]:
    """Another process's connections to `db`'s database (its own pool, or writer thread)."""
    database = Database(db.url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def store(server: Server) -> AsyncIterator[Database]:
    """A second connection to the server's database, for what has no HTTP producer yet."""
    database = Database(
        server.settings.database_url, keyring=Keyring.load(None, server.settings.data_dir)
    )
    try:
        yield database
    finally:
        await database.dispose()


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[FakeSMTPServer]:
    async with FakeSMTPServer() as fake:
        yield fake


@pytest_asyncio.fixture
async def providers() -> AsyncIterator[Providers]:
    """The dispatcher legs' providers (pooled SMTP connections, Twilio senders), closed after."""
    providers = Providers()
    try:
        yield providers
    finally:
        await providers.close()
