"""Who recorded a profile's opt-out (`profiles.email_opt_out_by`, `sms_opt_out_by`): an
import's or a PUT's `false` clears an admin's opt-out, but not one the person recorded
themself (the unsubscribe link, an SMS STOP) unless the write says `resubscribe=true`.

Opt-outs already stored were recorded by someone this schema did not name: they are taken as
the person's, the safe reading (an admin clears one with `resubscribe=true`).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

profiles = sa.table(
    "profiles",
    sa.column("email_opt_out", sa.Boolean()),
    sa.column("sms_opt_out", sa.Boolean()),
    sa.column("email_opt_out_by", sa.String()),
    sa.column("sms_opt_out_by", sa.String()),
)


def upgrade() -> None:
    # Plain ADD/DROP COLUMN: a batch (SQLite's table copy) would lose the expression index
    # ix_profiles_email_lower, which SQLAlchemy cannot reflect.
    op.add_column("profiles", sa.Column("email_opt_out_by", sa.String(16), nullable=True))
    op.add_column("profiles", sa.Column("sms_opt_out_by", sa.String(16), nullable=True))
    bind = op.get_bind()
    for flag, by in (
        (profiles.c.email_opt_out, "email_opt_out_by"),
        (profiles.c.sms_opt_out, "sms_opt_out_by"),
    ):
        bind.execute(sa.update(profiles).where(flag.is_(True)).values({by: "person"}))


def downgrade() -> None:
    op.drop_column("profiles", "sms_opt_out_by")
    op.drop_column("profiles", "email_opt_out_by")
