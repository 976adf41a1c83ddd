"""Status webhooks: the JSON each call carries and its HMAC-SHA256 signature."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import orjson

from txmsg.core.timeutil import isoformat

SIGNATURE_HEADER = "X-Txmsg-Signature"


def payload(
    delivery_id: int,
    pkey: str,
    event_id: str,
    status: str | None,
    interaction: str | None,
    at: datetime,
    reason: str | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    """One status change (`status`) or one interaction (`interaction`) of a message.

    `id` is the same on every retry of a call: receivers drop duplicates with it.
    """
    return {
        "id": delivery_id,
        "PKey": pkey,
        "eventId": event_id,
        "status": status,
        "interaction": interaction,
        "at": at,
        "reason": reason,
        "detail": detail,
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the time is signed too, so a
    receiver can refuse replays of old calls."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def encode(value: dict[str, Any]) -> bytes:
    """The call's body: the API's JSON, one date-time format everywhere."""
    return orjson.dumps(value, default=isoformat, option=orjson.OPT_PASSTHROUGH_DATETIME)
