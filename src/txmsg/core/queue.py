"""Value types of the durable queue, shared by the store, the API and the dispatcher."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from txmsg.core.statuses import EventStatus

PRIORITY_TRANSACTIONAL = 0
PRIORITY_BULK = 10

# Standard base32 digits -> Crockford's, whose order is the ASCII order (keys sort by time).
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def new_pkey() -> str:
    """26 characters: 48-bit millisecond time then 80 random bits, Crockford base32.

    Time-ordered keys keep index inserts at the right edge of the B-tree.
    """
    raw = (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)
    return base64.b32encode(raw)[:26].translate(_TO_CROCKFORD).decode("ascii")


@dataclass(frozen=True, slots=True)
class NewEvent:
    pkey: str
    event_id: str
    priority: int
    status: EventStatus
    email: str | None
    ctx: dict[str, Any]
    event_date: datetime
    scheduled_at: datetime | None
    expires_at: datetime
    due_at: datetime
    # The answer given for it (kept for Idempotency-Key replays).
    response: dict[str, Any]
    idempotency_key: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """`created` (new event), `replay` (same key and body) or `mismatch` (same key, other body)."""

    kind: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    pkey: str
    event_id: str
    email: str | None
    ctx: dict[str, Any]
    event_date: datetime
    scheduled_at: datetime | None
    expires_at: datetime
    attempts: int
    lease_token: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed event; applied only while its lease is still ours."""

    id: int
    lease_token: str
    status: EventStatus
    reason: str | None = None
    due_at: datetime | None = None  # for retries (status pending)
    message_version: int | None = None
    sent_at: datetime | None = None
