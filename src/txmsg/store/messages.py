"""Transactional messages: one draft per event, immutable published versions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from txmsg.core.errors import not_found
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.event_configs import release_paused
from txmsg.store.tables import message_versions, messages


async def get(db: Database, event_id: str) -> tuple[Any, Any | None]:
    """The message row and its published version row (or None); 404 when there is none."""
    async with db.read() as conn:
        row = (
            await conn.execute(sa.select(messages).where(messages.c.event_id == event_id))
        ).first()
        if row is None:
            raise not_found(
                f"event '{event_id}' has no transactional message: publish the event first"
            )
        published = None
        if row.published_version is not None:
            published = (
                await conn.execute(
                    sa.select(message_versions).where(
                        message_versions.c.event_id == event_id,
                        message_versions.c.version == row.published_version,
                    )
                )
            ).first()
        return row, published


async def list_versions(db: Database, event_id: str) -> list[Any]:
    async with db.read() as conn:
        return list(
            await conn.execute(
                sa.select(message_versions.c.version, message_versions.c.created_at)
                .where(message_versions.c.event_id == event_id)
                .order_by(message_versions.c.version)
            )
        )


async def save_draft(
    db: Database, event_id: str, draft: dict[str, str], sample_ctx: dict[str, Any] | None
) -> None:
    async with db.write() as conn:
        values: dict[str, Any] = {"draft": draft, "updated_at": utcnow()}
        if sample_ctx is not None:
            values["sample_ctx"] = sample_ctx
        result = await conn.execute(
            sa.update(messages).where(messages.c.event_id == event_id).values(**values)
        )
        if result.rowcount == 0:
            raise not_found(
                f"event '{event_id}' has no transactional message: publish the event first"
            )


async def publish(db: Database, event_id: str, content: dict[str, str]) -> int:
    """Store `content` as the next version, make it the published one; returns its number."""
    now = utcnow()
    async with db.write() as conn:
        current = (
            await conn.execute(
                sa.select(sa.func.max(message_versions.c.version)).where(
                    message_versions.c.event_id == event_id
                )
            )
        ).scalar()
        version = (current or 0) + 1
        await conn.execute(
            sa.insert(message_versions).values(
                event_id=event_id, version=version, content=content, created_at=now
            )
        )
        await conn.execute(
            sa.update(messages)
            .where(messages.c.event_id == event_id)
            .values(published_version=version, updated_at=now)
        )
        await release_paused(conn, event_id)
    return version
