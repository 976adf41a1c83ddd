"""Transactional messages: one draft per event, immutable published versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.entity_tags import content_tag, if_match_holds
from txmsg.core.errors import not_found, precondition_failed
from txmsg.core.timeutil import utcnow
from txmsg.store.event_configs import release_paused
from txmsg.store.tables import message_versions, messages


def _missing(event_id: str) -> Exception:
    return not_found(f"event '{event_id}' has no transactional message: publish the event first")


def get(conn: Connection, event_id: str) -> tuple[Any, Any | None, list[Any]]:
    """The message row, its published version row (or None) and all versions' numbers."""
    row = conn.execute(sa.select(messages).where(messages.c.event_id == event_id)).first()
    if row is None:
        raise _missing(event_id)
    published = None
    if row.published_version is not None:
        published = conn.execute(
            sa.select(message_versions).where(
                message_versions.c.event_id == event_id,
                message_versions.c.version == row.published_version,
            )
        ).first()
    versions = list(
        conn.execute(
            sa.select(message_versions.c.version, message_versions.c.created_at)
            .where(message_versions.c.event_id == event_id)
            .order_by(message_versions.c.version)
        )
    )
    return row, published, versions


def draft_tag(row: Any) -> str:
    """The strong entity tag of a message row's draft: of its parts, variants and sample."""
    return content_tag([row.draft, row.sample_ctx])


def save_draft(
    conn: Connection,
    event_id: str,
    draft: dict[str, Any],
    sample_ctx: dict[str, Any] | None,
    if_match: str | None = None,
) -> tuple[Any, Any | None, list[Any]]:
    """Replace the draft (and the sample, when given); answers the message as `get` does.

    `if_match`: the request's If-Match; a draft whose tag it does not admit is left as it is
    (412). The row is locked before it is compared, so two saves made from one tag cannot
    both pass (SQLite: the one writer does that already)."""
    if if_match is not None:
        row = conn.execute(
            sa.select(messages.c.draft, messages.c.sample_ctx)
            .where(messages.c.event_id == event_id)
            .with_for_update()
        ).first()
        if row is None:
            raise _missing(event_id)
        if not if_match_holds(if_match, draft_tag(row)):
            raise precondition_failed(
                f"the draft of '{event_id}' changed since it was read (its ETag is not the "
                "If-Match given): read the message again for the current draft and its ETag"
            )
    values: dict[str, Any] = {"draft": draft, "updated_at": utcnow()}
    if sample_ctx is not None:
        values["sample_ctx"] = sample_ctx
    result = conn.execute(
        sa.update(messages).where(messages.c.event_id == event_id).values(**values)
    )
    if result.rowcount == 0:
        raise _missing(event_id)
    return get(conn, event_id)


def publish(
    conn: Connection, event_id: str, content: dict[str, str], now: datetime | None = None
) -> int:
    """Store `content` as the next version, make it the published one; returns its number.
    `now`: the database's time (paused events it releases, and their webhook calls)."""
    now = now or utcnow()
    current = conn.execute(
        sa.select(sa.func.max(message_versions.c.version)).where(
            message_versions.c.event_id == event_id
        )
    ).scalar()
    version = (current or 0) + 1
    conn.execute(
        sa.insert(message_versions).values(
            event_id=event_id, version=version, content=content, created_at=now
        )
    )
    conn.execute(
        sa.update(messages)
        .where(messages.c.event_id == event_id)
        .values(published_version=version, updated_at=now)
    )
    release_paused(conn, event_id, now)
    return version


def get_version(conn: Connection, event_id: str, version: int) -> Any:
    """One published version's row; 404 when the event has no such version."""
    row = conn.execute(
        sa.select(message_versions).where(
            message_versions.c.event_id == event_id, message_versions.c.version == version
        )
    ).first()
    if row is None:
        raise not_found(f"event '{event_id}' has no message version {version}")
    return row
