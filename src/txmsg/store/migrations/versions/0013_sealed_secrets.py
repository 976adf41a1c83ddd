"""Secrets sealed at rest: channel configurations' and export flows' `secrets` and webhooks'
`secret` become Fernet tokens (store/sealing.py), keyed from TXMSG_SECRET_KEY or the data
directory's `secret.key`.

The `secrets` columns keep their type (JSON; JSONB on PostgreSQL): a sealed value is a JSON
string. A webhook's `secret` becomes TEXT (a token is longer than the secret). Existing values
are sealed here with the keyring of the migrating process; `{}` stays.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from txmsg.store.sealing import Keyring, keyring_of

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (table, primary key column) of every `secrets` column at this revision.
TABLES = (("channel_configs", "name"), ("export_flows", "name"))


def _table(name: str, key: str, dialect: Any) -> sa.TableClause:
    json = postgresql.JSONB() if dialect.name == "postgresql" else sa.JSON()
    return sa.table(name, sa.column(key, sa.String()), sa.column("secrets", json))


def _convert(seal: bool) -> None:
    conn = op.get_bind()
    keyring: Keyring | None = None
    for name, key in TABLES:
        table = _table(name, key, conn.dialect)
        for row_key, value in conn.execute(sa.select(table.c[key], table.c.secrets)).all():
            if seal and isinstance(value, dict) and value:
                keyring = keyring or keyring_of(conn.dialect)
                new: Any = keyring.seal(value)
            elif not seal and isinstance(value, str):
                keyring = keyring or keyring_of(conn.dialect)
                new = keyring.open(value)
            else:
                continue
            conn.execute(sa.update(table).where(table.c[key] == row_key).values(secrets=new))


def _convert_webhooks(seal: bool) -> None:
    conn = op.get_bind()
    table = sa.table("event_webhooks", sa.column("event_id", sa.String()), sa.column("secret"))
    rows = conn.execute(sa.select(table.c.event_id, table.c.secret)).all()
    if not rows:
        return
    keyring = keyring_of(conn.dialect)
    for event_id, secret in rows:
        new = keyring.seal_text(secret) if seal else keyring.open_text(secret)
        conn.execute(sa.update(table).where(table.c.event_id == event_id).values(secret=new))


def upgrade() -> None:
    _convert(seal=True)
    with op.batch_alter_table("event_webhooks") as batch:
        batch.alter_column(
            "secret", type_=sa.Text(), existing_type=sa.String(200), existing_nullable=False
        )
    _convert_webhooks(seal=True)


def downgrade() -> None:
    _convert(seal=False)
    _convert_webhooks(seal=False)
    with op.batch_alter_table("event_webhooks") as batch:
        batch.alter_column(
            "secret", type_=sa.String(200), existing_type=sa.Text(), existing_nullable=False
        )
