"""A profile-based message is excluded by a fatigue rule once: a unique index on
`fatigue_exclusions.pkey` (an event claimed again after its lease lapsed keeps its first
decision, and the rule's report counts it once). Duplicates recorded before are dropped,
keeping the first.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    exclusions = sa.table("fatigue_exclusions", sa.column("id"), sa.column("pkey"))
    first = sa.select(sa.func.min(exclusions.c.id)).group_by(exclusions.c.pkey)
    op.execute(sa.delete(exclusions).where(exclusions.c.id.not_in(first)))
    op.create_index("ux_fatigue_exclusions_pkey", "fatigue_exclusions", ["pkey"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_fatigue_exclusions_pkey", table_name="fatigue_exclusions")
