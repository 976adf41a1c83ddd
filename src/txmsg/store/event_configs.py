"""Event configuration rows and the queue changes their lifecycle implies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from txmsg.core.errors import conflict, not_found, refused
from txmsg.core.event_config import PayloadField
from txmsg.core.kinds import Channel, Priority, TargetType
from txmsg.core.queue import PRIORITY_TRANSACTIONAL, priority_rank
from txmsg.core.reconciliation import Reconciliation
from txmsg.core.statuses import ConfigState, EventStatus, transition
from txmsg.core.timeutil import utcnow
from txmsg.core.trigger import CtxValidator
from txmsg.store import report_counts, webhook_outbox
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.queue.changes import update_final_status, update_status
from txmsg.store.tables import (
    channel_configs,
    event_configs,
    event_webhooks,
    events,
    messages,
    waiting,
)


def fields_of(row: Any) -> list[PayloadField]:
    return [PayloadField(f["name"], f["type"], bool(f["required"])) for f in row.fields]


def get(conn: Connection, event_id: str) -> Any | None:
    return conn.execute(
        sa.select(event_configs).where(event_configs.c.event_id == event_id)
    ).first()


def require(conn: Connection, event_id: str) -> Any:
    row = get(conn, event_id)
    if row is None:
        raise not_found(f"no event configuration '{event_id}'")
    return row


def list_all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(event_configs).order_by(event_configs.c.event_id)))


def _check_channel_config(conn: Connection, name: str, channel: str) -> None:
    query = sa.select(channel_configs.c.channel).where(channel_configs.c.name == name)
    if conn.dialect.name != "sqlite":  # kept until commit: a delete waits (or went first)
        query = query.with_for_update(read=True)
    row = conn.execute(query).first()
    if row is None:
        raise refused("channel_config", f"no channel configuration named '{name}'")
    if row.channel != channel:
        raise refused("channel_config", f"'{name}' is a {row.channel} configuration, not {channel}")


def create(conn: Connection, values: dict[str, Any]) -> Any:
    event_id = values["event_id"]
    _check_channel_config(conn, values["channel_config"], values["channel"])
    exists = conflict(f"an event configuration '{event_id}' already exists")
    if get(conn, event_id) is not None:
        raise exists
    now = utcnow()
    try:
        conn.execute(
            sa.insert(event_configs).values(
                **values,
                state=ConfigState.DRAFT.value,
                revision=1,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError:  # created concurrently by another process
        raise exists from None
    return require(conn, event_id)


def update(conn: Connection, event_id: str, values: dict[str, Any], *, touch: bool = False) -> Any:
    """Change `values`; `touch`: something kept in another table changed (tags, the
    webhook), a change of the configuration all the same (its `updated_at`)."""
    row = require(conn, event_id)
    if "channel_config" in values:
        _check_channel_config(conn, values["channel_config"], row.channel)
    live = row.state in (ConfigState.PUBLISHED, ConfigState.PAUSED)
    if live and ("fields" in values or "channel_config" in values):
        raise conflict(
            "fields and channel_config of a live event cannot change: unpublish it first"
        )
    if values or touch:
        conn.execute(
            sa.update(event_configs)
            .where(event_configs.c.event_id == event_id)
            .values(**values, revision=event_configs.c.revision + 1, updated_at=utcnow())
        )
    return require(conn, event_id)


def delete(conn: Connection, event_id: str) -> None:
    row = require(conn, event_id)
    if row.state != ConfigState.DRAFT:
        raise conflict(f"only draft event configurations can be deleted (this one is {row.state})")
    conn.execute(sa.delete(messages).where(messages.c.event_id == event_id))
    conn.execute(sa.delete(event_configs).where(event_configs.c.event_id == event_id))


def change_state(
    conn: Connection,
    event_id: str,
    action: str,
    default_draft: dict[str, Any],
    now: datetime | None = None,
) -> Any:
    """Apply a lifecycle action and what it means for queued events, in one transaction.

    publish: creates the transactional message (draft from `default_draft`) when missing.
    pause: queued events wait as `paused`. resume: they go back to `pending` when the
    message is published. unpublish: queued events will never be sent: `ignored`.
    `now`: the database's time (the queued events' changes and their webhook calls are
    compared with it by the workers).
    """
    now = now or utcnow()
    row = require(conn, event_id)
    target = transition(ConfigState(row.state), action)
    values: dict[str, Any] = {
        "state": target.value,
        "updated_at": now,
        "revision": event_configs.c.revision + 1,
    }
    if action == "publish":
        values["published_at"] = now
        exists = conn.execute(
            sa.select(messages.c.event_id).where(messages.c.event_id == event_id)
        ).first()
        if exists is None:
            conn.execute(
                sa.insert(messages).values(
                    event_id=event_id,
                    draft={k: v for k, v in default_draft.items() if k != "sample_ctx"},
                    sample_ctx=default_draft.get("sample_ctx") or None,
                    created_at=now,
                    updated_at=now,
                )
            )
    conn.execute(
        sa.update(event_configs).where(event_configs.c.event_id == event_id).values(**values)
    )
    queued = sa.update(events).where(events.c.event_id == event_id)
    if action == "pause":
        paused = update_status(
            conn,
            queued.where(waiting(EventStatus.PENDING)).values(
                status=EventStatus.PAUSED.value, updated_at=now
            ),
            EventStatus.PAUSED.value,
            now,
            hooked=webhook_outbox.has_webhook(conn, event_id),
        )
        webhook_outbox.queue_status_changes(conn, paused.announced, now)
    elif action in ("resume", "publish"):
        release_paused(conn, event_id, now)
    elif action == "unpublish":
        reason = "event configuration unpublished before the event was sent"
        ignored = update_final_status(
            conn,
            queued.where(waiting(EventStatus.PENDING, EventStatus.PAUSED)).values(
                status=EventStatus.IGNORED.value, reason=reason, updated_at=now
            ),
            EventStatus.IGNORED.value,
            now,
            reason,
        )
        report_counts.add(conn, report_counts.of_changes(ignored.changes))
        webhook_outbox.queue_status_changes(conn, ignored.announced, now)
    return require(conn, event_id)


def release_paused(conn: Connection, event_id: str, now: datetime | None = None) -> int:
    """Paused events go back to the queue if their event is live and its message published."""
    live = conn.execute(
        sa.select(event_configs.c.state, messages.c.published_version)
        .select_from(event_configs.outerjoin(messages))
        .where(event_configs.c.event_id == event_id)
    ).first()
    if live is None or live.state != ConfigState.PUBLISHED or live.published_version is None:
        return 0
    now = now or utcnow()
    resumed = update_status(
        conn,
        sa.update(events)
        .where(events.c.event_id == event_id, waiting(EventStatus.PAUSED))
        .values(status=EventStatus.PENDING.value, updated_at=now),
        EventStatus.PENDING.value,
        now,
        hooked=webhook_outbox.has_webhook(conn, event_id),
    )
    webhook_outbox.queue_status_changes(conn, resumed.announced, now)
    return resumed.count


@dataclass(frozen=True, slots=True)
class TriggerTarget:
    """What the trigger endpoint needs to know about an event, cached briefly."""

    event_id: str
    state: ConfigState
    channel: Channel
    target: TargetType
    message_published: bool
    validator: CtxValidator
    webhook: bool = False  # its status webhook is told of each acceptance
    priority: Priority = Priority.TRANSACTIONAL  # its lane...
    rank: int = PRIORITY_TRANSACTIONAL  # ... and the lane's rank its events are queued with
    # The trigger's own field a profile-based event is reconciled by (`email`, `mobilePhone`):
    # without it the event could only end targetingFailed. None for ctx.<field> (the field's
    # own `required` says) and for event-based events.
    reconciled_by: str | None = None


def _trigger_row(conn: Connection, event_id: str) -> Any | None:
    return conn.execute(
        sa.select(
            event_configs.c.event_id,
            event_configs.c.state,
            event_configs.c.channel,
            event_configs.c.target,
            event_configs.c.fields,
            event_configs.c.revision,
            event_configs.c.priority,
            event_configs.c.reconciliation,
            messages.c.published_version,
            event_webhooks.c.event_id.is_not(None).label("webhook"),
        )
        .select_from(
            event_configs.outerjoin(messages).outerjoin(
                event_webhooks, event_webhooks.c.event_id == event_configs.c.event_id
            )
        )
        .where(event_configs.c.event_id == event_id)
    ).first()


def _reconciled_by(row: Any) -> str | None:
    if row.target != TargetType.PROFILE:
        return None
    source = Reconciliation.of(row.reconciliation).source
    return source if source in ("email", "mobilePhone") else None


class TriggerTargets:
    """Per-event trigger facts without a query per trigger.

    Entries live `ttl` seconds; changes made through this process invalidate them at once
    (`forget`), changes made by another process are seen within `ttl`.
    """

    def __init__(self, db: Database, ttl: float = 1.0) -> None:
        self._db = db
        self._cache: TTLCache[str, TriggerTarget | None] = TTLCache(self._load, ttl)
        self._validators: dict[str, tuple[int, CtxValidator]] = {}

    async def get(self, event_id: str) -> TriggerTarget | None:
        hit, target = self._cache.peek(event_id)
        return target if hit else await self._cache.get(event_id)

    async def _load(self, event_id: str) -> TriggerTarget | None:
        row = await self._db.read_bounded(_trigger_row, event_id)
        if row is None:
            return None
        known = self._validators.get(event_id)
        if known is None or known[0] != row.revision:
            known = (row.revision, CtxValidator(fields_of(row)))
            self._validators[event_id] = known
        return TriggerTarget(
            event_id=row.event_id,
            state=ConfigState(row.state),
            channel=Channel(row.channel),
            target=TargetType(row.target),
            message_published=row.published_version is not None,
            validator=known[1],
            webhook=bool(row.webhook),
            priority=Priority(row.priority),
            rank=priority_rank(Priority(row.priority)),
            reconciled_by=_reconciled_by(row),
        )

    def forget(self, event_id: str) -> None:
        self._cache.forget(event_id)
