"""Profiles are found by email whatever the case of its local part: the lookup index is of
the lower-cased address (it replaces the index of the address as written, which only the
lookup used).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_profiles_email", "profiles")
    op.create_index("ix_profiles_email_lower", "profiles", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_profiles_email_lower", "profiles")
    op.create_index("ix_profiles_email", "profiles", ["email"])
