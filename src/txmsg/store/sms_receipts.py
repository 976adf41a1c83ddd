"""What a Twilio status callback needs: who may have signed it, its event, and its write.

Callbacks are checked in two steps: the signature against the (cached) signers of the
callback's account, then the event it names, which must be an SMS event of a channel
configuration whose token validated the signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import LogEntry
from txmsg.core.kinds import Channel
from txmsg.core.statuses import EventStatus
from txmsg.core.twilio_config import FALLBACK_TOKENS
from txmsg.store import delivery_log as log_store
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.tables import channel_configs, event_configs, events


@dataclass(frozen=True, slots=True)
class CallbackSigner:
    """An SMS channel configuration's receipt settings: where callbacks go, the signing key."""

    channel_config: str
    status_callback_base_url: str
    auth_token: str = field(repr=False)


def signers_for(conn: Connection, account_sid: str) -> tuple[CallbackSigner, ...]:
    """SMS channel configurations of this Twilio account that receive status callbacks."""
    rows = conn.execute(
        sa.select(channel_configs.c.name, channel_configs.c.settings, channel_configs.c.secrets)
        .where(channel_configs.c.channel == Channel.SMS)
        .order_by(channel_configs.c.name)
    )
    out: list[CallbackSigner] = []
    for row in rows:
        for twilio, token in _accounts(row.settings or {}, row.secrets or {}):
            base = twilio.get("status_callback_base_url")
            if twilio.get("account_sid") == account_sid and token and base:
                out.append(CallbackSigner(row.name, base, token))
    return tuple(out)


def _accounts(
    settings: dict[str, Any], secrets: dict[str, Any]
) -> list[tuple[dict[str, Any], str | None]]:
    """The `twilio` block and its fallbacks, each with its auth token: every account that
    sends for the configuration, and so may sign its callbacks."""
    tokens = secrets.get(FALLBACK_TOKENS, {})
    primary = (settings.get("twilio", {}), secrets.get("auth_token"))
    fallbacks = [(f, tokens.get(str(i))) for i, f in enumerate(settings.get("fallbacks", ()))]
    return [primary, *fallbacks]


class CallbackSigners:
    """Signers per account SID, kept `ttl` seconds: callbacks do not read every SMS
    configuration and its secrets each time. `clear()` when a configuration changes here;
    other processes' changes are seen within `ttl`."""

    def __init__(self, db: Database, ttl: float) -> None:
        self._db = db
        self._cache: TTLCache[str, tuple[CallbackSigner, ...]] = TTLCache(self._load, ttl, 1000)

    async def for_account(self, account_sid: str) -> tuple[CallbackSigner, ...]:
        return await self._cache.get(account_sid)

    async def _load(self, account_sid: str) -> tuple[CallbackSigner, ...]:
        return await self._db.read(signers_for, account_sid)

    def clear(self) -> None:
        self._cache.clear()


@dataclass(frozen=True, slots=True)
class ReceiptTarget:
    """The event a callback names, with what decides whether the callback may write to it."""

    pkey: str
    event_id: str
    provider_message_id: str | None
    is_sms: bool  # an SMS event of an SMS channel configuration
    channel_config: str
    account_sids: frozenset[str]  # the configuration's accounts: its primary and fallbacks
    status: str

    def sent_as(self, message_sid: str) -> bool:
        """Whether `message_sid` may be the message sent for this event: its recorded SID, or
        any while none is recorded and the event may still be under way (Twilio's receipt can
        come before the outcome is written, or after an answer lost to a time-out). An event
        that ended without a SID (refused, ignored, unroutable, expired) sent nothing."""
        if self.provider_message_id is not None:
            return self.provider_message_id == message_sid
        return self.status in _UNDER_WAY


_UNDER_WAY = frozenset(
    {EventStatus.PENDING.value, EventStatus.PROCESSING.value, EventStatus.PAUSED.value}
)


def receipt_target(conn: Connection, pkey: str) -> ReceiptTarget | None:
    """The event `pkey` joined to its event and channel configurations (one query)."""
    row = conn.execute(
        sa.select(
            events.c.pkey,
            events.c.event_id,
            events.c.provider_message_id,
            events.c.status,
            event_configs.c.channel.label("event_channel"),
            channel_configs.c.name.label("channel_config"),
            channel_configs.c.channel.label("config_channel"),
            channel_configs.c.settings,
        )
        .select_from(
            events.join(event_configs, event_configs.c.event_id == events.c.event_id).join(
                channel_configs, channel_configs.c.name == event_configs.c.channel_config
            )
        )
        .where(events.c.pkey == pkey)
    ).first()
    if row is None:
        return None
    accounts = _accounts(row.settings or {}, {})
    return ReceiptTarget(
        pkey=row.pkey,
        event_id=row.event_id,
        provider_message_id=row.provider_message_id,
        is_sms=row.event_channel == Channel.SMS and row.config_channel == Channel.SMS,
        channel_config=row.channel_config,
        account_sids=frozenset(t["account_sid"] for t, _ in accounts if "account_sid" in t),
        status=row.status,
    )


def append_receipts_in(conn: Connection, entries: list[LogEntry]) -> None:
    """Append the receipts (and other entries) not recorded yet: Twilio retries callbacks,
    and a retry of one already recorded (same event, kind and MessageSid), here or in another
    process at the same moment, is dropped by the delivery log's unique index; entries without
    a MessageSid are appended as they come. In the caller's write transaction."""
    log_store.append_in(conn, [_keyed(e) for e in entries])


def _keyed(entry: LogEntry) -> LogEntry:
    sid = (entry.detail or {}).get("MessageSid")
    if not isinstance(sid, str) or entry.once is not None:
        return entry
    return replace(entry, once=sid[:64])
