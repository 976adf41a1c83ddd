"""Stored secrets are sealed (Fernet): the migration seals existing rows, the keyring comes from
TXMSG_SECRET_KEY or a key file made on first start, and keys rotate (MultiFernet + reseal)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from txmsg.cli import main
from txmsg.config import Settings
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config
from txmsg.store.sealing import KEY_FILE, Keyring, SealError, reseal_all, sealed_columns
from txmsg.store.tables import (
    UTCDateTime,
    channel_configs,
    event_webhooks,
    export_flows,
    metadata,
)

PASSWORD = "hunter2-smtp-password-0123456789"
TOKEN = "f" * 32
S3_SECRET = "s3-secret-access-key-abcdefghij"
WEBHOOK_SECRET = "webhook-signing-secret-0123"


def _raw(conn: Connection, table: str) -> dict[str, Any]:
    """name -> the secrets column as stored (JSON, not opened)."""
    json = postgresql.JSONB() if conn.dialect.name == "postgresql" else sa.JSON()
    t = sa.table(table, sa.column("name", sa.String()), sa.column("secrets", json))
    return {name: value for name, value in conn.execute(sa.select(t.c.name, t.c.secrets))}


def _insert_plain(conn: Connection) -> None:
    now = utcnow()
    rows = [("mail", "email", {"password": PASSWORD}), ("sms", "sms", {"auth_token": TOKEN})]
    rows.append(("bare", "email", {}))
    for name, channel, secrets in rows:
        conn.execute(
            sa.text(
                "INSERT INTO channel_configs (name, channel, settings, secrets, message_export,"
                " revision, created_at, updated_at) VALUES (:n, :c, :s, :x, false, 1, :t, :t)"
            ).bindparams(
                sa.bindparam("s", type_=sa.JSON()),
                sa.bindparam("x", type_=sa.JSON()),
                sa.bindparam("t", type_=UTCDateTime()),
            ),
            {"n": name, "c": channel, "s": {}, "x": secrets, "t": now},
        )
    conn.execute(
        sa.text(
            "INSERT INTO event_configs (event_id, label, channel, channel_config, target, fields,"
            " template, state, revision, created_at, updated_at)"
            " VALUES ('EVTx', 'x', 'email', 'mail', 'event', :f, 'blank', 'draft', 1, :t, :t)"
        ).bindparams(sa.bindparam("f", type_=sa.JSON()), sa.bindparam("t", type_=UTCDateTime())),
        {"f": [], "t": now},
    )
    conn.execute(
        sa.text(
            "INSERT INTO event_webhooks (event_id, url, secret) VALUES ('EVTx', 'http://h/', :s)"
        ),
        {"s": WEBHOOK_SECRET},
    )


def _webhook_secret(conn: Connection) -> Any:
    return conn.execute(sa.text("SELECT secret FROM event_webhooks")).scalar_one()


def _to_revision(conn: Connection, revision: str, down: bool = False) -> None:
    cfg = alembic_config(conn)
    (command.downgrade if down else command.upgrade)(cfg, revision)


async def test_the_migration_seals_existing_secrets_and_downgrade_opens_them(
    db: Database,
) -> None:
    def before_sealing(conn: Connection) -> None:
        _to_revision(conn, "0013", down=True)
        _to_revision(conn, "-1", down=True)
        _insert_plain(conn)

    await db.write(before_sealing)
    assert (await db.read(_raw, "channel_configs"))["mail"] == {"password": PASSWORD}

    await db.write(_to_revision, "0013")
    raw = await db.read(_raw, "channel_configs")
    assert isinstance(raw["mail"], str) and PASSWORD not in raw["mail"]
    assert isinstance(raw["sms"], str) and TOKEN not in raw["sms"]
    assert raw["bare"] == {}  # nothing to hide
    stored = await db.read(_webhook_secret)
    assert WEBHOOK_SECRET not in stored
    assert await db.read(lambda c: c.execute(sa.select(event_webhooks.c.secret)).scalar_one()) == (
        WEBHOOK_SECRET
    )
    opened = await db.read(
        lambda conn: {r.name: r.secrets for r in conn.execute(sa.select(channel_configs))}
    )
    assert opened == {"mail": {"password": PASSWORD}, "sms": {"auth_token": TOKEN}, "bare": {}}

    await db.write(_to_revision, "-1", True)
    assert (await db.read(_raw, "channel_configs"))["sms"] == {"auth_token": TOKEN}
    assert await db.read(_webhook_secret) == WEBHOOK_SECRET
    await db.migrate()  # back to head for the fixture's other users


async def test_a_copy_of_the_database_reveals_no_secret(database_url: str, tmp_path: Path) -> None:
    keys = Keyring.load(None, tmp_path / "a")
    database = Database(database_url, keyring=keys)
    await database.migrate()
    try:
        await database.write(_insert_flow)

        def dump(conn: Connection) -> str:
            return repr(_raw(conn, "export_flows")) + repr(_raw(conn, "channel_configs"))

        assert S3_SECRET not in await database.read(dump)
        assert (await database.read(_flow_secrets)) == {"secret_access_key": S3_SECRET}
    finally:
        await database.dispose()
    # Another installation's keys (or none) open nothing.
    for other in (Keyring.load(None, tmp_path / "b"), None):
        thief = Database(database_url, keyring=other)
        try:
            with pytest.raises(SealError):
                await thief.read(_flow_secrets)
        finally:
            await thief.dispose()


def _insert_flow(conn: Connection) -> None:
    conn.execute(
        sa.insert(export_flows).values(
            name="s3",
            format="json",
            destination={"type": "s3", "bucket": "b"},
            secrets={"secret_access_key": S3_SECRET},
            schedule="hourly",
            compression="none",
            watermark=0,
            next_run_at=utcnow(),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
    )


def _flow_secrets(conn: Connection) -> Any:
    return conn.execute(sa.select(export_flows.c.secrets)).scalar_one()


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sealed = Keyring.load(None, data).seal({"password": PASSWORD})
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.load(None, data).open(sealed) == {"password": PASSWORD}
    assert [p.name for p in data.iterdir()] == [KEY_FILE]  # no draft left behind
    # TXMSG_SECRET_KEY wins over the file.
    key = Fernet.generate_key().decode()
    assert Settings.from_env({"TXMSG_SECRET_KEY": key}).secret_key == key
    assert key not in repr(Settings.from_env({"TXMSG_SECRET_KEY": key}))
    with pytest.raises(SealError):
        Keyring.load(key, data).open(sealed)
    with pytest.raises(ValueError, match="Fernet key"):
        Keyring.load("not-a-key", data)


async def test_keys_rotate(database_url: str) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    first = Database(database_url, keyring=Keyring.load(old, Path()))
    await first.migrate()
    await first.write(_insert_flow)
    await first.dispose()

    # The new key first, the old one after it: both open, the new one seals.
    both = Database(database_url, keyring=Keyring.load(f"{new},{old}", Path()))
    try:
        assert await both.read(_flow_secrets) == {"secret_access_key": S3_SECRET}
        assert await both.write(reseal_all, metadata) == 1
    finally:
        await both.dispose()
    only_new = Database(database_url, keyring=Keyring.load(new, Path()))
    try:
        assert await only_new.read(_flow_secrets) == {"secret_access_key": S3_SECRET}
    finally:
        await only_new.dispose()


def test_every_secrets_column_is_sealed() -> None:
    sealed = {f"{c.table.name}.{c.name}" for c in sealed_columns(metadata)}
    plain = {
        f"{t.name}.{c.name}"
        for t in metadata.sorted_tables
        for c in t.columns
        if "secret" in c.name and f"{t.name}.{c.name}" not in sealed
    }
    assert {"channel_configs.secrets", "export_flows.secrets", "event_webhooks.secret"} <= sealed
    assert not plain, plain


def test_txmsg_reseal_seals_every_secret_with_the_first_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'txmsg.db'}"

    async def seed() -> None:
        db = Database(url, keyring=Keyring.load(old, tmp_path))
        await db.migrate()
        await db.write(_insert_flow)
        await db.dispose()

    async def secrets_with(key: str) -> Any:
        db = Database(url, keyring=Keyring.load(key, tmp_path))
        try:
            return await db.read(_flow_secrets)
        finally:
            await db.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("TXMSG_DATABASE_URL", url)
    monkeypatch.setenv("TXMSG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TXMSG_SECRET_KEY", f"{new},{old}")
    assert main(["reseal"]) == 0
    assert "1 stored secret(s) sealed" in capsys.readouterr().out
    assert asyncio.run(secrets_with(new)) == {"secret_access_key": S3_SECRET}
    with pytest.raises(SealError):
        asyncio.run(secrets_with(old))
