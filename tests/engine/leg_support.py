"""Builders for the direct tests of the dispatcher's legs: claimed events and typed routes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from txmsg.core.channel_config import ChannelSettings
from txmsg.core.kinds import Channel, TargetType
from txmsg.core.queue import ClaimedEvent, new_pkey
from txmsg.core.render_limits import RenderLimits
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import ConfigState
from txmsg.core.timeutil import utcnow
from txmsg.engine.legs.base import LegContext
from txmsg.sandbox.pool import shared_renderer
from txmsg.store.routing import Route

_ids = iter(range(1, 1_000_000))


def claimed(
    *,
    email: str | None = "ada@example.org",
    mobile_phone: str | None = None,
    ctx: dict[str, Any] | None = None,
    expires_in: timedelta = timedelta(hours=1),
    attempts: int = 1,
    event_id: str = "EVTtest",
) -> ClaimedEvent:
    now = utcnow()
    return ClaimedEvent(
        id=next(_ids),
        pkey=new_pkey(),
        event_id=event_id,
        email=email,
        ctx=ctx if ctx is not None else {"firstName": "Ada"},
        event_date=now,
        scheduled_at=None,
        expires_at=now + expires_in,
        attempts=attempts,
        lease_token="lease-" + new_pkey(),
        lease_until=now + timedelta(seconds=60),
        mobile_phone=mobile_phone,
    )


def route(
    channel: Channel,
    settings: ChannelSettings | None,
    content: dict[str, Any],
    *,
    message_export: bool = False,
    event_id: str = "EVTtest",
) -> Route:
    return Route(
        event_id=event_id,
        state=ConfigState.PUBLISHED,
        channel=channel,
        target=TargetType.EVENT,
        published_version=3,
        content=content,
        channel_config="main",
        channel_config_revision=None if settings is None else 1,
        settings=settings,
        message_export=message_export,
    )


def context(*, lease_lost: bool = False) -> LegContext:
    return LegContext(
        RetryPolicy(base_seconds=1.0, max_seconds=60.0),
        lambda _e: lease_lost,
        shared_renderer(RenderLimits()),
    )
