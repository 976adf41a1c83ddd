"""Server secrets sealed at rest, like every other secret (revision 0013): the secrets that
sign console sessions, unsubscribe links, VERP bounce addresses and tracking links were kept in
clear, so a read-only copy of the database could mint an admin's console session (with the
API keys' hashes beside them) or forge any of those links.

The column becomes TEXT (a Fernet token is longer than the secret); existing values are sealed
with the keyring of the migrating process. Downgrading opens them again.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from txmsg.store.sealing import keyring_of

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

server_secrets = sa.table(
    "server_secrets", sa.column("name", sa.String()), sa.column("value", sa.String())
)


def _convert(seal: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(server_secrets.c.name, server_secrets.c.value)).all()
    if not rows:
        return
    keyring = keyring_of(conn.dialect)
    for name, value in rows:
        new = keyring.seal_text(value) if seal else keyring.open_text(value)
        conn.execute(
            sa.update(server_secrets).where(server_secrets.c.name == name).values(value=new)
        )


def upgrade() -> None:
    with op.batch_alter_table("server_secrets") as batch:
        batch.alter_column(
            "value", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False
        )
    _convert(seal=True)


def downgrade() -> None:
    _convert(seal=False)
    with op.batch_alter_table("server_secrets") as batch:
        batch.alter_column(
            "value", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=False
        )
