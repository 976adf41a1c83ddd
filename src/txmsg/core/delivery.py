"""What a channel provider tells the dispatcher about one send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class SendError(Exception):
    """A send that did not go through; `reason` is safe to show to API users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientSendError(SendError):
    """Worth retrying later (4xx replies, connection errors, timeouts)."""


class PermanentSendError(SendError):
    """Retrying will not help (5xx replies): the event ends as deliveryFailed."""


class EmailProvider(Protocol):
    """Sends one mail transaction; raises TransientSendError or PermanentSendError."""

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str: ...

    async def close(self) -> None: ...


class Interaction(StrEnum):
    """Kinds of delivery-log entries (interaction events), as the API names them."""

    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    SPAM = "spam"
    UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One delivery-log row: what happened to the message of event `pkey`, and when."""

    pkey: str
    event_id: str
    kind: Interaction
    at: datetime
    detail: dict[str, Any] | None = None
