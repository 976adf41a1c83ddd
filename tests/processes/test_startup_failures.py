"""A command that cannot start says why in one line naming what to fix (the database, the
secret key, the data directory, a port, a setting), exits non-zero, and prints no traceback:
what an operator sees in a terminal or a service's journal. Real processes, real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import PG_DSN
from helpers import free_port
from process_support import SRC

SERVER = make_url(PG_DSN)  # the test PostgreSQL server


def txmsg(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TXMSG_")}
    return subprocess.run(
        [sys.executable, "-m", "txmsg.cli", *argv],
        cwd=cwd,
        env={**clean, "PYTHONPATH": SRC, "TXMSG_ADMIN_KEY": "admin-key", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def told(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exited `code`, no traceback, and the output holds `words`."""
    out = done.stdout + done.stderr
    assert done.returncode == code, out
    assert "Traceback" not in out, out
    for word in words:
        assert word in out, out


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory where `txmsg migrate` ran once: a fresh install's data directory
    (`txmsg-data`: the database at the latest schema, the secret key made for it). Tests copy
    it (`installed`) rather than each running the command again."""
    folder = tmp_path_factory.mktemp("fresh-install")
    told(txmsg("migrate", cwd=folder), 0, "latest schema")
    assert (folder / "txmsg-data" / "secret.key").is_file()
    return folder


def installed(fresh_install: Path, folder: Path, data: str = "txmsg-data") -> Path:
    """A copy of the fresh install's data directory at `folder / data`."""
    return Path(shutil.copytree(fresh_install / "txmsg-data", folder / data))


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process's socket holds."""
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        yield port


@pytest.mark.parametrize("command", [["migrate"], ["serve", "--port", "{port}"], ["worker"]])
def test_a_database_that_does_not_exist(tmp_path: Path, command: list[str]) -> None:
    argv = [a.replace("{port}", str(free_port())) for a in command]
    url = SERVER.set(database="txmsg_no_such_database").render_as_string(hide_password=False)
    done = txmsg(*argv, cwd=tmp_path, TXMSG_DATABASE_URL=url)
    told(done, 3, "/txmsg_no_such_database does not exist")


def test_an_unknown_role_and_an_unknown_host(tmp_path: Path) -> None:
    url = SERVER.set(username="txmsg_no_such_role").render_as_string(hide_password=False)
    told(txmsg("migrate", cwd=tmp_path, TXMSG_DATABASE_URL=url), 3, "refused the connection")
    url = SERVER.set(host="no-such-host.invalid").render_as_string(hide_password=False)
    told(txmsg("migrate", cwd=tmp_path, TXMSG_DATABASE_URL=url), 3, "cannot be resolved")


def test_libpq_parameters_of_a_hosted_database_url_work(tmp_path: Path, database_url: str) -> None:
    """Hosting platforms hand out postgres:// URLs with sslmode and connect_timeout."""
    url = database_url.replace("postgresql+asyncpg://", "postgres://")
    url += "?sslmode=prefer&connect_timeout=5&application_name=shop"
    told(txmsg("migrate", cwd=tmp_path, TXMSG_DATABASE_URL=url), 0, "latest schema")
    told(txmsg("keys", "list", cwd=tmp_path, TXMSG_DATABASE_URL=url), 0)
    bad = url + "&no_such_parameter=1"
    told(txmsg("migrate", cwd=tmp_path, TXMSG_DATABASE_URL=bad), 3, '"no_such_parameter"')


test_libpq_parameters_of_a_hosted_database_url_work.postgresql_only = True  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [["migrate"], ["serve", "--port", "{port}"]])
def test_a_secret_key_that_is_not_one(tmp_path: Path, command: list[str]) -> None:
    argv = [a.replace("{port}", str(free_port())) for a in command]
    done = txmsg(*argv, cwd=tmp_path, TXMSG_SECRET_KEY="not-a-key")
    told(done, 3, "TXMSG_SECRET_KEY: a secret key must be a Fernet key")


def test_a_data_directory_that_cannot_be_one(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    done = txmsg("serve", "--port", str(free_port()), cwd=tmp_path, TXMSG_DATA_DIR="a-file")
    told(done, 3, "Not a directory", "TXMSG_DATA_DIR")


def test_ports_another_process_holds(tmp_path: Path, held_port: int) -> None:
    serve = ["serve", "--port", str(free_port()), "--metrics-port", str(held_port)]
    told(txmsg(*serve, cwd=tmp_path), 3, f"ops port 127.0.0.1:{held_port}", "in use")
    worker = ["worker", "--health-port", str(held_port)]
    told(txmsg("migrate", cwd=tmp_path), 0)
    told(txmsg(*worker, cwd=tmp_path), 3, f"ops port 127.0.0.1:{held_port}", "in use")
    bounce = {"TXMSG_BOUNCE_LISTEN": f"127.0.0.1:{held_port}"}
    done = txmsg("serve", "--port", str(free_port()), cwd=tmp_path, **bounce)
    told(done, 3, f"TXMSG_BOUNCE_LISTEN 127.0.0.1:{held_port}", "in use")


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_public_port_another_process_holds(
    tmp_path: Path, held_port: int, processes: str
) -> None:
    """Told in one line naming the port, before a database is made or migrated."""
    done = txmsg("serve", "--port", str(held_port), "--processes", processes, cwd=tmp_path)
    told(done, 3, f"txmsg: cannot listen: --port 127.0.0.1:{held_port}: Address already in use")
    assert len((done.stdout + done.stderr).splitlines()) == 1, done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    """Told as the host it is (not as the database's), before anything is made."""
    done = txmsg("serve", "--host", "a..b", "--port", "8025", cwd=tmp_path)
    told(done, 3, "txmsg: cannot listen: --host a..b: Name or service not known")
    assert "database" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "99999"],
        ["serve", "--metrics-port", "0"],
        ["worker", "--health-port", "70000"],
        ["fake", "smtp", "--port", "84761"],
    ],
)
def test_a_port_that_does_not_exist_is_refused(tmp_path: Path, argv: list[str]) -> None:
    told(txmsg(*argv, cwd=tmp_path), 2, "a port is 1 to 65535")


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("TXMSG_LEASE_SECONDS", "inf", "TXMSG_LEASE_SECONDS must be a number up to"),
        ("TXMSG_LEASE_SECONDS", "1e12", "TXMSG_LEASE_SECONDS must be a number up to"),
        ("TXMSG_POLL_INTERVAL", "nan", "TXMSG_POLL_INTERVAL must be a number up to"),
        ("TXMSG_LEASE_SECONDS", "abc", "TXMSG_LEASE_SECONDS must be a number"),
        ("TXMSG_RETRY_BASE_SECONDS", "-5", "TXMSG_RETRY_BASE_SECONDS must be greater than 0"),
        ("TXMSG_CONFIG_CACHE_SECONDS", "-1", "TXMSG_CONFIG_CACHE_SECONDS must not be negative"),
    ],
)
def test_a_setting_no_engine_can_run_with(tmp_path: Path, name: str, raw: str, says: str) -> None:
    told(txmsg("migrate", cwd=tmp_path, **{name: raw}), 2, "bad configuration", says)
    done = txmsg("check", cwd=tmp_path, **{name: raw})
    told(done, 1, "FAIL  settings:", says)


def test_a_url_port_that_is_not_a_number(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:notaport/postgres"
    done = txmsg("migrate", cwd=tmp_path, TXMSG_DATABASE_URL=url)
    told(done, 2, "TXMSG_DATABASE_URL has a port that is not a number")


def test_a_schema_a_newer_release_migrated(tmp_path: Path, fresh_install: Path) -> None:
    """A release rolled back: its schema is ahead, which `txmsg migrate` cannot mend."""
    database = installed(fresh_install, tmp_path) / "txmsg.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    told(txmsg("migrate", cwd=tmp_path), 3, "migrated by a newer release", "restore")
    told(txmsg("keys", "list", cwd=tmp_path), 3, "of a newer release of txmsg", "restore")
    told(txmsg("serve", "--port", str(free_port()), cwd=tmp_path), 3, "a newer release")


SQLITE_COMMANDS = [["migrate"], ["serve", "--port", "{port}"], ["worker"], ["check"]]


def _told_in_one_line(done: subprocess.CompletedProcess[str], command: str, *words: str) -> None:
    """`check` says it on its database line, the others in one line; all exit 3, as when the
    database cannot be reached. A traceback was printed (or, for `check`, a second line
    pointing at SQLAlchemy's pages)."""
    told(done, 3, *words)
    out = done.stdout + done.stderr
    assert "sqlalche.me" not in out, out
    assert len([line for line in out.splitlines() if words[0] in line]) == 1, out


@pytest.mark.parametrize("command", SQLITE_COMMANDS)
def test_a_sqlite_file_that_is_not_a_database(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "txmsg.db").write_bytes(os.urandom(8192))
    argv = [a.replace("{port}", str(free_port())) for a in command]
    done = txmsg(*argv, cwd=tmp_path, TXMSG_DATA_DIR=str(data))
    _told_in_one_line(done, command[0], f"{data / 'txmsg.db'}: not a SQLite database")


@pytest.mark.parametrize("command", SQLITE_COMMANDS)
def test_a_sqlite_database_in_a_directory_it_may_not_write(
    tmp_path: Path, fresh_install: Path, command: list[str]
) -> None:
    """WAL needs the -wal and -shm files beside the database. Root writes whatever the mode
    bits say: the directory is made immutable (`chattr +i`) instead."""
    data = installed(fresh_install, tmp_path, "data")
    for name in ("txmsg.db-wal", "txmsg.db-shm"):
        (data / name).unlink(missing_ok=True)
    if subprocess.run(["chattr", "+i", str(data)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        argv = [a.replace("{port}", str(free_port())) for a in command]
        done = txmsg(*argv, cwd=tmp_path, TXMSG_DATA_DIR=str(data))
    finally:
        subprocess.run(["chattr", "-i", str(data)], check=True)
    _told_in_one_line(done, command[0], f"{data / 'txmsg.db'}: cannot be opened for writing")


def _seal_a_secret(data: Path) -> None:
    """What any installation soon holds: a secret sealed with its data directory's key."""
    import asyncio

    from txmsg.store import secrets
    from txmsg.store.db import Database
    from txmsg.store.sealing import Keyring

    async def seal() -> None:
        db = Database(f"sqlite:///{data / 'txmsg.db'}", keyring=Keyring.load(None, data))
        try:
            await db.write(secrets.get_or_create, "unsubscribe")
        finally:
            await db.dispose()

    asyncio.run(seal())


COMMANDS = [["keys", "list"], ["check"], ["migrate"], ["reseal"], ["serve", "--port", "{port}"]]


@pytest.fixture(scope="module")
def sealed_install(fresh_install: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh install (its key made, as before) that has sealed a secret with its key."""
    folder = tmp_path_factory.mktemp("sealed-install")
    _seal_a_secret(installed(fresh_install, folder))
    return folder


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_restored_without_its_secret_key_is_refused(
    tmp_path: Path, sealed_install: Path, command: list[str]
) -> None:
    """No new key is made for a database sealed with another: with one, every command started,
    `serve` said it was ready, and what was sealed could never be opened again."""
    data = installed(sealed_install, tmp_path)
    key = data / "secret.key"
    kept = key.read_text()
    key.unlink()  # the database restored, its key not

    argv = [a.replace("{port}", str(free_port())) for a in command]
    told(txmsg(*argv, cwd=tmp_path), 3, "no secret key", str(key), "TXMSG_SECRET_KEY", "restore")
    assert not key.exists()  # no new key written

    other = "Hr4pRcWv3B1dS-8y6Tmo6bWZ5l9Kc7vPq1Vh5m0lJ2Q="
    done = txmsg(*argv, cwd=tmp_path, TXMSG_SECRET_KEY=other)
    told(done, 3, "the secret key of TXMSG_SECRET_KEY does not open 1 of the database's 1")
    key.write_text(kept)  # a key file that is not the database's is refused the same way
    told(txmsg("keys", "list", cwd=tmp_path), 0)


def test_a_fresh_data_directory_gets_its_key_from_any_command(
    tmp_path: Path, fresh_install: Path
) -> None:
    (installed(fresh_install, tmp_path) / "secret.key").unlink()  # nothing sealed: fresh
    told(txmsg("keys", "list", cwd=tmp_path), 0)
    assert (tmp_path / "txmsg-data" / "secret.key").is_file()


def test_a_mistyped_variable_is_warned_of_by_every_command(tmp_path: Path) -> None:
    """TXMSG_DATABSE_URL made serve use SQLite without a word, and check say "valid"."""
    typo = {"TXMSG_DATABSE_URL": "postgresql://txmsg@db.internal/txmsg", "TXMSG_OLD_THING": "1"}
    done = txmsg("migrate", cwd=tmp_path, **typo)
    told(done, 0, "TXMSG_DATABSE_URL is not a txmsg setting (did you mean TXMSG_DATABASE_URL?)")
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, done.stderr  # one line each, the leftover without a guess
    assert any("TXMSG_OLD_THING is not a txmsg setting: it is ignored" in w for w in warnings)
    checked = txmsg("check", cwd=tmp_path, **typo)
    told(checked, 0, "warn  settings: TXMSG_DATABSE_URL is not a txmsg setting (did you mean")
    told(txmsg("keys", "list", cwd=tmp_path, **typo), 0, "did you mean TXMSG_DATABASE_URL?")
