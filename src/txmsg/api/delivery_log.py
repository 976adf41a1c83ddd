"""GET /api/v1/events/{eventId}/{PKey}/delivery-log: what happened to an event's message.

Interaction events (sent, delivered, undelivered, failed, ...) oldest first. Admin only: the
delivery log is personal data (DESIGN.md). Says when some of the event's entries have expired
(interaction-data lifecycle) rather than silently answering fewer.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.errors import not_found
from txmsg.core.kinds import Channel
from txmsg.core.queue import priority_lane
from txmsg.store import archives, delivery_log, event_configs
from txmsg.store import events as event_store

_ACCEPTED = (Interaction.SENT, Interaction.DELIVERED)


async def event_delivery_log(request: Request) -> Response:
    await authorize(request)
    event_id = request.path_params["eventId"]
    pkey = request.path_params["PKey"]
    db = context(request).db
    event = await db.read(event_store.get_event, event_id, pkey)
    if event is None:
        raise not_found(f"no event '{pkey}' for '{event_id}'")
    entries = await db.read(delivery_log.for_event, pkey)
    expired = await db.read(archives.interactions_expired, event_id)
    config = await db.read(event_configs.get, event_id)
    if config is not None and event.sent_at is not None:
        entries = sorted([*_sent(config.channel, event), *entries], key=lambda e: e.at)
    return JSONResponse(
        {
            "PKey": pkey,
            "eventId": event_id,
            "status": event.status,
            "priority": priority_lane(event.priority).value,
            "interactions_expired": expired,
            "items": [
                {"kind": e.kind.value, "at": e.at, "detail": e.detail or {}} for e in entries
            ],
        }
    )


def _sent(channel: str, event: Any) -> list[LogEntry]:
    """An email's acceptance by the SMTP server is both its send and its delivery; an SMS sent
    through a configuration with fallbacks is `sent`, naming the provider (its receipts
    follow)."""
    via = {"provider": event.provider} if event.provider else None
    if channel == Channel.EMAIL:
        return [LogEntry(event.pkey, event.event_id, k, event.sent_at, via) for k in _ACCEPTED]
    if via is not None:
        return [LogEntry(event.pkey, event.event_id, Interaction.SENT, event.sent_at, via)]
    return []


routes = [resource("/api/v1/events/{eventId}/{PKey}/delivery-log", GET=event_delivery_log)]
