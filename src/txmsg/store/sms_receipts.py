"""What a Twilio status callback needs: who may have signed it, and which event it is about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import channel_configs, events


@dataclass(frozen=True, slots=True)
class CallbackSigner:
    """An SMS channel configuration's receipt settings: where callbacks go, the signing key."""

    channel_config: str
    status_callback_base_url: str
    auth_token: str = field(repr=False)


def signers_for(conn: Connection, account_sid: str) -> list[CallbackSigner]:
    """SMS channel configurations of this Twilio account that receive status callbacks."""
    rows = conn.execute(
        sa.select(channel_configs.c.name, channel_configs.c.settings, channel_configs.c.secrets)
        .where(channel_configs.c.channel == "sms")
        .order_by(channel_configs.c.name)
    )
    out: list[CallbackSigner] = []
    for row in rows:
        twilio = (row.settings or {}).get("twilio", {})
        token = (row.secrets or {}).get("auth_token")
        base = twilio.get("status_callback_base_url")
        if twilio.get("account_sid") == account_sid and token and base:
            out.append(CallbackSigner(row.name, base, token))
    return out


def find_sent_event(conn: Connection, pkey: str | None, message_sid: str | None) -> Any | None:
    """The event a receipt is about: by the PKey of its callback URL, else by the SID."""
    query = sa.select(events.c.pkey, events.c.event_id, events.c.provider_message_id)
    if pkey:
        return conn.execute(query.where(events.c.pkey == pkey)).first()
    if message_sid:
        return conn.execute(query.where(events.c.provider_message_id == message_sid)).first()
    return None


def receipt_facts(
    conn: Connection, account_sid: str, pkey: str | None, message_sid: str | None
) -> tuple[list[CallbackSigner], Any | None]:
    """Both lookups of a callback in one round trip: the signers, then the event."""
    return signers_for(conn, account_sid), find_sent_event(conn, pkey, message_sid)
