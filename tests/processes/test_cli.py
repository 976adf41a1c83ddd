"""The `txmsg` command's administration side: version, keys, check, the database guard, logs.

Most commands run in this process (`main(argv)` in a thread, as the installed script runs it);
log output runs as real subprocesses, since the command configures its process's logging.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import free_port
from process_support import SRC
from txmsg.cli import main
from txmsg.commands import logs
from txmsg.commands.logs import JSONFormatter
from txmsg.core.channel_config import parse_create
from txmsg.store import channel_configs
from txmsg.store.db import Database
from txmsg.store.keys import KeyResolver, hash_key, principal_for
from txmsg.testing import FakeSMTPServer, FakeTwilio


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """`main` sets the root logger up for its process: give pytest's back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("alembic", "mail.log")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


async def txmsg(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def command(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "txmsg.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_keys_are_created_listed_and_revoked(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TXMSG_DATABASE_URL", database_url)
    assert await txmsg("keys", "create", "--role", "trigger", "--label", "Website") == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines()[:4])
    secret, key_id = printed["key"], printed["id"]
    principal = await db.read(principal_for, hash_key(secret))
    assert principal is not None and (principal.key_id, principal.role) == (key_id, "trigger")

    assert await txmsg("keys", "list") == 0
    [header, row] = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "role", "created_at", "label"]
    assert row.split()[:2] == [key_id, "trigger"] and row.endswith("Website")
    assert secret not in row  # secrets are shown once, at creation

    assert await txmsg("keys", "revoke", key_id) == 0
    assert await db.read(principal_for, hash_key(secret)) is None
    assert await txmsg("keys", "revoke", key_id) == 1
    assert "unknown or already revoked" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the role must be one of the roles
        await txmsg("keys", "create", "--role", "root", "--label", "x")


def test_help_shows_no_default_for_a_required_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "what the key may do --label" in shown and shown.endswith("(shown in lists)")
    assert "(default: None)" not in shown
    assert "(default: info)" in shown  # an optional one's default is still said


def test_the_fakes_log_level_help_says_nothing_of_migrations(
    capsys: pytest.CaptureFixture,
) -> None:
    for argv in (["fake", "smtp", "--help"], ["fake", "twilio", "--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        shown = " ".join(capsys.readouterr().out.split())
        assert ("Alembic" in shown) == (argv[0] == "serve"), shown


def test_revoke_help_says_how_soon_running_processes_refuse_the_key(
    capsys: pytest.CaptureFixture,
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "revoke", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    ttl = inspect.signature(KeyResolver).parameters["ttl"].default
    assert f"within {ttl:g} s by running ones" in shown and "at once by new processes" in shown


def test_commands_other_than_serve_and_migrate_create_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TXMSG_DATABASE_URL", raising=False)
    monkeypatch.delenv("TXMSG_DATA_DIR", raising=False)
    expected = tmp_path / "txmsg-data" / "txmsg.db"
    commands = (("export", "run", "lake"), ("keys", "list"), ("keys", "revoke", "x"), ("worker",))
    # Every command exits 3 without its database, as a process that cannot start.
    for argv in commands:
        assert main(list(argv)) == 3, argv
        err = capsys.readouterr().err
        assert f"no database at {expected}" in err and "TXMSG_DATA_DIR" in err, err
    assert main(["check"]) == 3
    assert f"FAIL  database: no database at {expected}" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing created, not even the folder

    assert main(["migrate"]) == 0
    assert expected.is_file()
    assert main(["keys", "list"]) == 0


def test_keys_list_and_check_exit_3_without_a_database(tmp_path: Path) -> None:
    """As the installed command: a supervisor or script tells "no database" by its status."""
    env = {"TXMSG_DATA_DIR": str(tmp_path / "nowhere"), "TXMSG_DATABASE_URL": ""}
    listed = command("keys", "list", cwd=tmp_path, **env)
    assert listed.returncode == 3, listed.stderr
    assert "no database at" in listed.stderr and listed.stdout == ""
    checked = command("check", cwd=tmp_path, **env)
    assert checked.returncode == 3, (checked.stdout, checked.stderr)
    assert "FAIL  database: no database at" in checked.stdout
    assert list(tmp_path.iterdir()) == []  # nothing created


async def test_check_says_what_is_reachable_line_by_line(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("TXMSG_DATABASE_URL", database_url)
    # The key that seals the channel configurations' secrets: the `db` fixture's.
    monkeypatch.setenv("TXMSG_DATA_DIR", str(data_dir))
    assert await txmsg("check") == 0
    assert "ok    channel configurations: none yet" in capsys.readouterr().out
    closed = free_port()
    for name, port in (("mail", smtp.port), ("down", closed)):
        spec = parse_create(
            {
                "name": name,
                "channel": "email",
                "from_email": "shop@example.com",
                "smtp": {"host": "127.0.0.1", "port": port, "tls": "none"},
            }
        )
        await db.write(channel_configs.create, spec)
    sms = {
        "name": "sms",
        "channel": "sms",
        "twilio": {
            "account_sid": "AC" + "0" * 32,
            "auth_token": "secret-token-value",
            "from_number": "+14155550100",
            "api_base_url": f"http://127.0.0.1:{closed}",
        },
    }
    await db.write(channel_configs.create, parse_create(sms))
    assert await txmsg("check") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "ok    settings: valid",
        "ok    database: reachable, schema at the latest revision",
    ]
    assert out[2].startswith(
        f"FAIL  channel configuration 'down' (email): 127.0.0.1:{closed}: connect failed (connect)"
    )
    assert (
        out[3]
        == f"ok    channel configuration 'mail' (email): 127.0.0.1:{smtp.port}: EHLO accepted"
    )
    assert out[4].startswith(
        f"FAIL  channel configuration 'sms' (sms): Twilio account AC{'0' * 32} at 127.0.0.1:"
        f"{closed}: failed (connect): Twilio connection failed"
    )
    assert "secret-token-value" not in "\n".join(out)
    assert smtp.messages == []

    monkeypatch.setenv("TXMSG_MAX_IN_FLIGHT", "0")
    assert await txmsg("check") == 1
    assert capsys.readouterr().out.startswith("FAIL  settings: TXMSG_MAX_IN_FLIGHT")


async def _create(db: Database, body: dict[str, object]) -> None:
    """Store a channel configuration (an email one unless `body` says otherwise)."""
    if "channel" not in body:
        body = {"channel": "email", "from_email": "shop@example.com", **body}
    await db.write(channel_configs.create, parse_create(body))


def _refusing_port() -> socket.socket:
    """A socket bound to a port nobody listens on (connections to it are refused) while open."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_check_logs_in_to_every_relay_and_account_fallbacks_too(
    db: Database,
    database_url: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Each relay and Twilio account, fallbacks included, is checked with its credentials:
    a reachable relay refusing its password, or an account its token, fails the check."""
    monkeypatch.setenv("TXMSG_DATABASE_URL", database_url)
    monkeypatch.setenv("TXMSG_DATA_DIR", str(data_dir))

    def relay(server: FakeSMTPServer | int, password: str = "right-pass") -> dict[str, object]:
        port = server if isinstance(server, int) else server.port
        return {
            "host": "127.0.0.1",
            "port": port,
            "tls": "none",
            "username": "mailer",
            "password": password,
        }

    def account(twilio: FakeTwilio, token: str, sender: str) -> dict[str, object]:
        return {
            "account_sid": twilio.account_sid,
            "auth_token": token,
            "from_number": sender,
            "api_base_url": twilio.base_url,
        }

    async with (
        FakeSMTPServer(auth=("mailer", "right-pass")) as a,
        FakeSMTPServer(auth=("mailer", "right-pass")) as b,
        FakeTwilio() as twilio,
    ):
        good = [
            {"name": "mail", "smtp": relay(a), "fallbacks": [relay(b)]},
            {
                "name": "sms",
                "channel": "sms",
                "twilio": account(twilio, twilio.auth_token, "+14155550100"),
                "fallbacks": [account(twilio, twilio.auth_token, "+14155550101")],
            },
        ]
        for body in good:
            await _create(db, body)
        assert await txmsg("check") == 0
        out = capsys.readouterr().out.splitlines()
        sid = twilio.account_sid
        assert out[2:] == [
            f"ok    channel configuration 'mail' (email): 127.0.0.1:{a.port}: EHLO, AUTH accepted",
            f"ok    channel configuration 'mail' (email): 127.0.0.1:{b.port} (fallback 1):"
            " EHLO, AUTH accepted",
            f"ok    channel configuration 'sms' (sms): Twilio account {sid} at 127.0.0.1:"
            f"{twilio.port}: account active",
            f"ok    channel configuration 'sms' (sms): Twilio account {sid} at 127.0.0.1:"
            f"{twilio.port} (fallback 1): account active",
        ]

        with _refusing_port() as down:
            bad = [
                {"name": "rotated", "smtp": relay(a, "wr0ng-pass"), "fallbacks": []},
                {
                    "name": "spare",
                    "smtp": relay(b),
                    "fallbacks": [relay(down.getsockname()[1])],
                },
                {
                    "name": "text",
                    "channel": "sms",
                    "twilio": account(twilio, twilio.auth_token, "+14155550100"),
                    "fallbacks": [account(twilio, "wr0ng-t0ken-value", "+14155550101")],
                },
            ]
            for body in bad:
                await _create(db, body)
            start = asyncio.get_running_loop().time()
            assert await txmsg("check") == 1
            took = asyncio.get_running_loop().time() - start
        out = capsys.readouterr().out
        lines = dict(line.split(": ", 1) for line in out.splitlines()[2:])  # by where
        mail = "channel configuration 'rotated' (email)"
        assert lines[f"FAIL  {mail}"].startswith(f"127.0.0.1:{a.port}: AUTH failed (auth): 535 "), (
            out
        )
        spare = "channel configuration 'spare' (email)"
        assert any(
            line.startswith(f"FAIL  {spare}: 127.0.0.1:") and "(fallback 1): connect failed" in line
            for line in out.splitlines()
        ), out
        assert f"ok    {spare}: 127.0.0.1:{b.port}: EHLO, AUTH accepted" in out
        text = "channel configuration 'text' (sms)"
        assert (
            f"FAIL  {text}: Twilio account {sid} at 127.0.0.1:{twilio.port} (fallback 1):"
            " failed (auth): Twilio error 20003 (HTTP 401): Authenticate"
        ) in out
        assert out.count("FAIL") == 3 and out.count("ok  ") == 2 + 4 + 2
        for secret in ("right-pass", "wr0ng-pass", "wr0ng-t0ken-value", twilio.auth_token):
            assert secret not in out
        assert a.messages == b.messages == [] and twilio.messages == []  # nothing sent
        assert took < 10  # the probes ran side by side, none waited for another


def test_version_help_and_quiet_migrations(tmp_path: Path) -> None:
    # Each command starts an interpreter (a second or so): the independent ones side by side.
    with ThreadPoolExecutor(3) as pool:
        version, helped, quiet = pool.map(
            lambda argv: command(*argv, cwd=tmp_path),
            [["--version"], ["serve", "--help"], ["migrate"]],
        )
    assert version.returncode == 0
    assert version.stdout == f"txmsg {importlib.metadata.version('txmsg')}\n"  # as installed
    assert "(default: 8025)" in helped.stdout and "(default: text)" in helped.stdout
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # Alembic's INFO lines only at --log-level debug
    assert quiet.stdout.startswith("created the database schema at revision")  # what it did
    again = command("migrate", cwd=tmp_path)
    assert again.stdout.startswith("database is at the latest schema, revision"), again.stdout
    assert "nothing to do" in again.stdout
    fresh = tmp_path / "fresh"  # a new database: Alembic runs (a current one needs no Alembic)
    fresh.mkdir()
    chatty = command("migrate", "--log-level", "debug", "--log-format", "json", cwd=fresh)
    lines = [json.loads(line) for line in chatty.stderr.splitlines()]
    assert any(line["logger"].startswith("alembic") for line in lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_the_parser_alone_imports_no_engine() -> None:
    # What `txmsg --help` and `--version` run. The engine, SQLAlchemy, Alembic, uvicorn and
    # even asyncio are imported by the command that needs them: they took 1.5 s before.
    listed = "import sys, txmsg.cli; txmsg.cli.parser(); print(*sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", listed],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = {"asyncio", "sqlalchemy", "alembic", "uvicorn", "starlette", "multiprocessing"}
    heavy |= {f"txmsg.{layer}" for layer in ("app", "api", "engine", "store", "testing")}
    assert not heavy & set(loaded)


def test_json_lines_carry_the_event_fields_and_nothing_else() -> None:
    record = logging.LogRecord(
        "txmsg.x", logging.ERROR, __file__, 1, "event %s failed", ("P1",), None
    )
    record.pkey, record.event_id, record.ctx = "P1", "EVTcart", {"secret": "message content"}
    line = json.loads(JSONFormatter().format(record))
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "error",
        "logger": "txmsg.x",
        "message": "event P1 failed",
        "PKey": "P1",
        "eventId": "EVTcart",
    }


async def test_migrate_says_what_it_cannot_reach_and_bad_urls_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()  # nothing listens there
    url = f"postgresql://postgres@127.0.0.1:{closed}/nowhere"
    os.environ["TXMSG_DATABASE_URL"] = url
    try:
        assert await txmsg("migrate") == 3  # as serve and worker exit when they cannot start
        err = capsys.readouterr().err
        assert err.startswith(f"txmsg: the database at 127.0.0.1:{closed}/nowhere cannot be")
        assert "Traceback" not in err
        os.environ["TXMSG_DATABASE_URL"] = "mysql://root@127.0.0.1/shop"
        with pytest.raises(SystemExit) as exited:
            await txmsg("migrate")
        assert exited.value.code == 2
        assert "TXMSG_DATABASE_URL must be a sqlite:/// or postgresql://" in capsys.readouterr().err
    finally:
        del os.environ["TXMSG_DATABASE_URL"]


def test_libraries_chatter_only_at_debug() -> None:
    """Alembic's steps and aiosmtpd's SMTP commands (the bounce listener, `txmsg fake smtp`)."""
    logs.configure("info")
    assert logging.getLogger("mail.log").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.WARNING
    logs.configure("debug")
    assert logging.getLogger("mail.log").getEffectiveLevel() == logging.DEBUG


def test_request_urls_are_not_logged_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs each request's URL: a webhook receiver's may hold a token."""
    for level in ("info", "debug"):
        logs.configure(level)
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("httpx").info(
                'HTTP Request: POST https://hooks.example/x?token=s3cret "HTTP/1.1 200 OK"'
            )
        assert "s3cret" not in caplog.text, level
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
