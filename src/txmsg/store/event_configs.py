"""Event configuration rows and the queue changes their lifecycle implies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from txmsg.core.errors import conflict, invalid, not_found
from txmsg.core.event_config import PayloadField
from txmsg.core.statuses import ConfigState, EventStatus, transition
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.store.db import Database
from txmsg.store.tables import channel_configs, event_configs, events, messages


def fields_of(row: Any) -> list[PayloadField]:
    return [PayloadField(f["name"], f["type"], bool(f["required"])) for f in row.fields]


async def get(db: Database, event_id: str) -> Any | None:
    async with db.read() as conn:
        return (
            await conn.execute(sa.select(event_configs).where(event_configs.c.event_id == event_id))
        ).first()


async def require(db: Database, event_id: str) -> Any:
    row = await get(db, event_id)
    if row is None:
        raise not_found(f"no event configuration '{event_id}'")
    return row


async def list_all(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list(await conn.execute(sa.select(event_configs).order_by(event_configs.c.event_id)))


async def _check_channel_config(conn: Any, name: str, channel: str) -> None:
    row = (
        await conn.execute(
            sa.select(channel_configs.c.channel).where(channel_configs.c.name == name)
        )
    ).first()
    if row is None:
        raise invalid("channel_config", f"no channel configuration named '{name}'")
    if row.channel != channel:
        raise invalid("channel_config", f"'{name}' is a {row.channel} configuration, not {channel}")


async def create(db: Database, values: dict[str, Any]) -> Any:
    now = utcnow()
    try:
        async with db.write() as conn:
            await _check_channel_config(conn, values["channel_config"], values["channel"])
            await conn.execute(
                sa.insert(event_configs).values(
                    **values,
                    state=ConfigState.DRAFT.value,
                    revision=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise conflict(f"an event configuration '{values['event_id']}' already exists") from None
    return await require(db, values["event_id"])


async def update(db: Database, event_id: str, values: dict[str, Any]) -> Any:
    async with db.write() as conn:
        row = (
            await conn.execute(sa.select(event_configs).where(event_configs.c.event_id == event_id))
        ).first()
        if row is None:
            raise not_found(f"no event configuration '{event_id}'")
        if "channel_config" in values:
            await _check_channel_config(conn, values["channel_config"], row.channel)
        if ("fields" in values or "channel_config" in values) and row.state in (
            ConfigState.PUBLISHED,
            ConfigState.PAUSED,
        ):
            raise conflict(
                "fields and channel_config of a live event cannot change: unpublish it first"
            )
        await conn.execute(
            sa.update(event_configs)
            .where(event_configs.c.event_id == event_id)
            .values(**values, revision=event_configs.c.revision + 1, updated_at=utcnow())
        )
    return await require(db, event_id)


async def delete(db: Database, event_id: str) -> None:
    async with db.write() as conn:
        row = (
            await conn.execute(
                sa.select(event_configs.c.state).where(event_configs.c.event_id == event_id)
            )
        ).first()
        if row is None:
            raise not_found(f"no event configuration '{event_id}'")
        if row.state != ConfigState.DRAFT:
            raise conflict(
                f"only draft event configurations can be deleted (this one is {row.state})"
            )
        await conn.execute(sa.delete(messages).where(messages.c.event_id == event_id))
        await conn.execute(sa.delete(event_configs).where(event_configs.c.event_id == event_id))


async def change_state(
    db: Database, event_id: str, action: str, default_draft: dict[str, Any] | None
) -> Any:
    """Apply a lifecycle action and what it means for queued events, in one transaction.

    publish: creates the transactional message (draft from `default_draft`) when missing.
    pause: queued events wait as `paused`. resume: they go back to `pending` when the
    message is published. unpublish: queued events will never be sent: `ignored`.
    """
    now = utcnow()
    async with db.write() as conn:
        row = (
            await conn.execute(sa.select(event_configs).where(event_configs.c.event_id == event_id))
        ).first()
        if row is None:
            raise not_found(f"no event configuration '{event_id}'")
        target = transition(ConfigState(row.state), action)
        values: dict[str, Any] = {
            "state": target.value,
            "updated_at": now,
            "revision": event_configs.c.revision + 1,
        }
        if action == "publish":
            values["published_at"] = now
            exists = (
                await conn.execute(
                    sa.select(messages.c.event_id).where(messages.c.event_id == event_id)
                )
            ).first()
            if exists is None:
                assert default_draft is not None
                await conn.execute(
                    sa.insert(messages).values(
                        event_id=event_id,
                        draft={k: default_draft[k] for k in ("subject", "html", "text")},
                        sample_ctx=default_draft.get("sample_ctx") or None,
                        created_at=now,
                        updated_at=now,
                    )
                )
        await conn.execute(
            sa.update(event_configs).where(event_configs.c.event_id == event_id).values(**values)
        )
        queued = sa.update(events).where(events.c.event_id == event_id)
        if action == "pause":
            await conn.execute(
                queued.where(events.c.status == EventStatus.PENDING).values(
                    status=EventStatus.PAUSED.value, updated_at=now
                )
            )
        elif action in ("resume", "publish"):
            await release_paused(conn, event_id)
        elif action == "unpublish":
            await conn.execute(
                queued.where(
                    events.c.status.in_([EventStatus.PENDING.value, EventStatus.PAUSED.value])
                ).values(
                    status=EventStatus.IGNORED.value,
                    reason="event configuration unpublished before the event was sent",
                    updated_at=now,
                )
            )
    return await require(db, event_id)


async def release_paused(conn: Any, event_id: str) -> int:
    """Paused events go back to the queue if their event is live and its message published."""
    live = (
        await conn.execute(
            sa.select(event_configs.c.state, messages.c.published_version)
            .select_from(event_configs.outerjoin(messages))
            .where(event_configs.c.event_id == event_id)
        )
    ).first()
    if live is None or live.state != ConfigState.PUBLISHED or live.published_version is None:
        return 0
    result = await conn.execute(
        sa.update(events)
        .where(events.c.event_id == event_id, events.c.status == EventStatus.PAUSED)
        .values(status=EventStatus.PENDING.value, updated_at=utcnow())
    )
    return result.rowcount


@dataclass(frozen=True, slots=True)
class TriggerTarget:
    """What the trigger endpoint needs to know about an event, cached briefly."""

    event_id: str
    state: ConfigState
    channel: str
    target: str
    message_published: bool
    validator: CtxValidator


class TriggerTargets:
    """Per-event trigger facts without a query per trigger.

    Entries live `ttl` seconds; changes made through this process invalidate them at once
    (`forget`), changes made by another process are seen within `ttl`.
    """

    def __init__(self, db: Database, ttl: float = 1.0) -> None:
        self._db = db
        self._ttl = ttl
        self._cache: dict[str, tuple[float, int, TriggerTarget | None]] = {}
        self._validators: dict[tuple[str, int], CtxValidator] = {}

    async def get(self, event_id: str) -> TriggerTarget | None:
        now = time.monotonic()
        cached = self._cache.get(event_id)
        if cached is not None and cached[0] > now:
            return cached[2]
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        event_configs.c.event_id,
                        event_configs.c.state,
                        event_configs.c.channel,
                        event_configs.c.target,
                        event_configs.c.fields,
                        event_configs.c.revision,
                        messages.c.published_version,
                    )
                    .select_from(event_configs.outerjoin(messages))
                    .where(event_configs.c.event_id == event_id)
                )
            ).first()
        if row is None:
            self._cache[event_id] = (now + self._ttl, 0, None)
            return None
        key = (event_id, row.revision)
        validator = self._validators.get(key)
        if validator is None:
            validator = CtxValidator(fields_of(row))
            self._validators[key] = validator
        target = TriggerTarget(
            event_id=row.event_id,
            state=ConfigState(row.state),
            channel=row.channel,
            target=row.target,
            message_published=row.published_version is not None,
            validator=validator,
        )
        self._cache[event_id] = (now + self._ttl, row.revision, target)
        return target

    def forget(self, event_id: str) -> None:
        self._cache.pop(event_id, None)
