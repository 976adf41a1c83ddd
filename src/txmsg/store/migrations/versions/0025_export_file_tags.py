"""Export runs draw a random `file_tag`, kept by their retries and written into their file
names: a retry overwrites only files of its own run, never the files another flow (or a flow
deleted and created again) left at the same destination under the same run number.

Runs begun before this revision have none and keep their names (`part-<run>-<n>`): the retry
of one that had not succeeded at the upgrade rewrites those names as it did before.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_runs") as batch:
        batch.add_column(sa.Column("file_tag", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_runs") as batch:
        batch.drop_column("file_tag")
