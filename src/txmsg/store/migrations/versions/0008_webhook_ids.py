"""Webhook call ids are never reused: the SQLite outbox table gets AUTOINCREMENT.

A call's `id` (the outbox row's) is how receivers drop duplicates. On SQLite a plain INTEGER
PRIMARY KEY takes the highest id left plus one, so once the outbox emptied the next call
reused the id of one already delivered. PostgreSQL's sequence never goes back: unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is copied whole (its undelivered calls keep their ids).
    with op.batch_alter_table(
        "webhook_outbox", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
