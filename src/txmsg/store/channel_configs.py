"""Channel configuration rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from txmsg.core.channel_config import ChannelConfigSpec
from txmsg.core.errors import conflict
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.tables import channel_configs


async def create(db: Database, spec: ChannelConfigSpec) -> Any:
    now = utcnow()
    try:
        async with db.write() as conn:
            await conn.execute(
                sa.insert(channel_configs).values(
                    name=spec.name,
                    channel=spec.channel,
                    settings=spec.settings,
                    secrets=spec.secrets,
                    message_export=spec.message_export,
                    revision=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise conflict(f"a channel configuration named '{spec.name}' already exists") from None
    return await get(db, spec.name)


async def get(db: Database, name: str) -> Any | None:
    async with db.read() as conn:
        return (
            await conn.execute(sa.select(channel_configs).where(channel_configs.c.name == name))
        ).first()


async def list_all(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(sa.select(channel_configs).order_by(channel_configs.c.name)))


async def update(
    db: Database, name: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> Any:
    async with db.write() as conn:
        await conn.execute(
            sa.update(channel_configs)
            .where(channel_configs.c.name == name)
            .values(
                settings=settings,
                secrets=secrets,
                message_export=export,
                revision=channel_configs.c.revision + 1,
                updated_at=utcnow(),
            )
        )
    return await get(db, name)
