"""Denylist entries put there by spam complaints before revision 0012 get the source `spam`.

Revision 0012 gave every existing entry the source `admin`, so the suppression list answers
`denylist` for addresses that complained. Such an entry can be told from the stored rows when:
- its reason is `spam complaint`: the text every ARF complaint and every complaint posted to
  /api/v1/feedback without a reason recorded; or
- the delivery log holds a `spam` entry, with the entry's reason, for a message sent to that
  channel and address (a complaint posted with a reason of its own).
An admin's entry (added through the API, which also replaces a complaint's) keeps `admin`
unless its reason is one of those texts. Downgrading leaves the sources as they are.

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None

SPAM_REASON = "spam complaint"  # core.feedback's SPAM_REASON when this was written
MAX_REASON = 500  # the denylist keeps the first 500 characters of a complaint's reason

denylist = sa.table(
    "denylist",
    sa.column("channel", sa.String()),
    sa.column("address", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("source", sa.String()),
)
delivery_log = sa.table(
    "delivery_log",
    sa.column("pkey", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("detail", sa.JSON()),
)
events = sa.table(
    "events",
    sa.column("pkey", sa.String()),
    sa.column("event_id", sa.String()),
    sa.column("email", sa.String()),
    sa.column("mobile_phone", sa.String()),
    sa.column("profile_id", sa.String()),
)
event_configs = sa.table(
    "event_configs",
    sa.column("event_id", sa.String()),
    sa.column("channel", sa.String()),
    sa.column("target", sa.String()),
)
profiles = sa.table(
    "profiles",
    sa.column("profile_id", sa.String()),
    sa.column("email", sa.String()),
    sa.column("mobile_phone", sa.String()),
)


def _complaints(conn: sa.Connection) -> set[tuple[str, str, str]]:
    """(channel, address, reason) of the complaints in the delivery log (one query)."""
    rows = conn.execute(
        sa.select(
            event_configs.c.channel,
            event_configs.c.target,
            events.c.email,
            events.c.mobile_phone,
            profiles.c.email.label("profile_email"),
            profiles.c.mobile_phone.label("profile_mobile_phone"),
            delivery_log.c.detail,
        )
        .select_from(
            delivery_log.join(events, events.c.pkey == delivery_log.c.pkey)
            .join(event_configs, event_configs.c.event_id == events.c.event_id)
            .outerjoin(profiles, profiles.c.profile_id == events.c.profile_id)
        )
        .where(delivery_log.c.kind == "spam")
    )
    found: set[tuple[str, str, str]] = set()
    for r in rows:
        reason = r.detail.get("reason") if isinstance(r.detail, dict) else None
        email, phone = (
            (r.profile_email, r.profile_mobile_phone)
            if r.target == "profile"
            else (r.email, r.mobile_phone)
        )
        address = email if r.channel == "email" else phone
        if isinstance(reason, str) and address:
            found.add((r.channel, address, reason[:MAX_REASON]))
    return found


def upgrade() -> None:
    conn = op.get_bind()
    op.execute(
        sa.update(denylist)
        .where(denylist.c.source == "admin", denylist.c.reason == SPAM_REASON)
        .values(source="spam")
    )
    complaints = _complaints(conn)
    if complaints:
        conn.execute(
            sa.update(denylist)
            .where(
                denylist.c.source == "admin",
                denylist.c.channel == sa.bindparam("b_channel"),
                denylist.c.address == sa.bindparam("b_address"),
                denylist.c.reason == sa.bindparam("b_reason"),
            )
            .values(source="spam"),
            [{"b_channel": c, "b_address": a, "b_reason": r} for c, a, r in sorted(complaints)],
        )


def downgrade() -> None:
    pass  # a source set here is as true before this revision as after it
