"""What the dispatcher needs to route a batch of claimed events: one query per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.channel_config import ChannelSettings, channel_settings
from txmsg.core.kinds import Channel, Priority, TargetType
from txmsg.core.statuses import ConfigState
from txmsg.store.tables import (
    channel_configs,
    event_configs,
    message_versions,
    messages,
)


@dataclass(frozen=True, slots=True)
class Route:
    """How events of one type are sent: built once per load, typed, secrets inside (no repr)."""

    event_id: str
    state: ConfigState
    channel: Channel
    target: TargetType
    published_version: int | None
    content: dict[str, str] | None
    channel_config: str
    channel_config_revision: int | None  # None: the channel configuration is missing
    # The channel configuration's settings; None when it is missing. Its type names its own
    # channel, which a leg checks against the event's.
    settings: ChannelSettings | None
    # Why stored settings could not be read (a configuration not written by this version's
    # parser): its events end routingFailed, and no other route of the batch is held up.
    settings_problem: str | None = None
    message_export: bool = False  # the channel configuration's, when the route was loaded
    reconciliation: dict[str, str] | None = None  # profile-based events: {"from", "to"}
    priority: Priority = Priority.TRANSACTIONAL  # the event configuration's lane
    # The payload fields the event declares: one a trigger leaves out renders empty.
    declared_fields: tuple[str, ...] = ()


def load_routes(conn: Connection, event_ids: set[str]) -> dict[str, Route]:
    published = sa.and_(
        message_versions.c.event_id == messages.c.event_id,
        message_versions.c.version == messages.c.published_version,
    )
    stmt = (
        sa.select(
            event_configs.c.event_id,
            event_configs.c.state,
            event_configs.c.channel,
            event_configs.c.target,
            event_configs.c.reconciliation,
            event_configs.c.priority,
            event_configs.c.channel_config,
            event_configs.c.fields,
            messages.c.published_version,
            message_versions.c.content,
            channel_configs.c.revision,
            channel_configs.c.channel.label("cc_channel"),
            channel_configs.c.settings,
            channel_configs.c.secrets,
            channel_configs.c.message_export,
        )
        .select_from(
            event_configs.outerjoin(messages)
            .outerjoin(message_versions, published)
            .outerjoin(channel_configs, channel_configs.c.name == event_configs.c.channel_config)
        )
        .where(event_configs.c.event_id.in_(sorted(event_ids)))
    )
    routes: dict[str, Route] = {}
    for r in conn.execute(stmt):
        settings, problem = _settings(r.revision, r.cc_channel, r.settings, r.secrets)
        routes[r.event_id] = Route(
            event_id=r.event_id,
            state=ConfigState(r.state),
            channel=Channel(r.channel),
            target=TargetType(r.target),
            published_version=r.published_version,
            content=r.content,
            channel_config=r.channel_config,
            channel_config_revision=r.revision,
            settings=settings,
            settings_problem=problem,
            message_export=bool(r.message_export),
            reconciliation=r.reconciliation,
            priority=Priority(r.priority),
            declared_fields=tuple(f["name"] for f in r.fields or ()),
        )
    return routes


def _settings(
    revision: int | None, channel: str | None, stored: Any, secrets: Any
) -> tuple[ChannelSettings | None, str | None]:
    """A channel configuration's typed settings, or why they cannot be read; (None, None)
    when there is no channel configuration of that name."""
    if revision is None or channel is None:
        return None, None
    try:
        return channel_settings(channel, stored or {}, secrets or {}), None
    except (KeyError, TypeError, AttributeError) as exc:  # names a key or a type, no value
        return None, f"its stored settings cannot be read ({type(exc).__name__}: {exc})"
