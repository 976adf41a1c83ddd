"""Tags and status webhooks of event configurations (their own tables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.event_options import WebhookInput
from txmsg.store import event_configs
from txmsg.store.tables import event_config_tags, event_webhooks, webhook_outbox

KEEP = object()  # "leave as it is" for an update that does not name the option


@dataclass(frozen=True, slots=True)
class Options:
    tags: list[str] = field(default_factory=list)
    webhook_url: str | None = None


def options_of(conn: Connection, event_ids: list[str]) -> dict[str, Options]:
    """Each event's options, in two queries whatever the number of events."""
    tags: dict[str, list[str]] = {e: [] for e in event_ids}
    for row in conn.execute(
        sa.select(event_config_tags)
        .where(event_config_tags.c.event_id.in_(event_ids))
        .order_by(event_config_tags.c.event_id, event_config_tags.c.tag)
    ):
        tags[row.event_id].append(row.tag)
    urls = dict(
        conn.execute(
            sa.select(event_webhooks.c.event_id, event_webhooks.c.url).where(
                event_webhooks.c.event_id.in_(event_ids)
            )
        ).all()
    )
    return {e: Options(tags[e], urls.get(e)) for e in event_ids}


def with_options(conn: Connection, event_id: str | None) -> tuple[list[Any], dict[str, Options]]:
    """One event configuration (`event_id`) or all of them, with their options."""
    rows = (
        event_configs.list_all(conn)
        if event_id is None
        else [event_configs.require(conn, event_id)]
    )
    return rows, options_of(conn, [r.event_id for r in rows])


def has_webhook_secret(conn: Connection, event_id: str) -> bool:
    return (
        conn.execute(
            sa.select(event_webhooks.c.event_id).where(event_webhooks.c.event_id == event_id)
        ).first()
        is not None
    )


def _set(conn: Connection, event_id: str, tags: Any, webhook: Any) -> None:
    if tags is not KEEP:
        conn.execute(sa.delete(event_config_tags).where(event_config_tags.c.event_id == event_id))
        if tags:
            conn.execute(
                sa.insert(event_config_tags), [{"event_id": event_id, "tag": t} for t in tags]
            )
    if webhook is KEEP:
        return
    if webhook is None:
        conn.execute(sa.delete(event_webhooks).where(event_webhooks.c.event_id == event_id))
        # Nobody to deliver to any more.
        conn.execute(sa.delete(webhook_outbox).where(webhook_outbox.c.event_id == event_id))
        return
    assert isinstance(webhook, WebhookInput)
    values: dict[str, Any] = {"url": webhook.url}
    if webhook.secret is not None:
        values["secret"] = webhook.secret
    updated = conn.execute(
        sa.update(event_webhooks).where(event_webhooks.c.event_id == event_id).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(sa.insert(event_webhooks).values(event_id=event_id, **values))


def create(
    conn: Connection, values: dict[str, Any], tags: list[str], webhook: WebhookInput | None
) -> tuple[Any, Options]:
    row = event_configs.create(conn, values)
    _set(conn, row.event_id, tags, webhook)
    return row, options_of(conn, [row.event_id])[row.event_id]


def update(
    conn: Connection, event_id: str, values: dict[str, Any], tags: Any, webhook: Any
) -> tuple[Any, Options]:
    touch = tags is not KEEP or webhook is not KEEP
    row = event_configs.update(conn, event_id, values, touch=touch)
    _set(conn, event_id, tags, webhook)
    return row, options_of(conn, [event_id])[event_id]
