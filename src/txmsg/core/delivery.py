"""What a channel provider tells the dispatcher about one send."""

from __future__ import annotations


class SendError(Exception):
    """A send that did not go through; `reason` is safe to show to API users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientSendError(SendError):
    """Worth retrying later (4xx replies, connection errors, timeouts)."""


class PermanentSendError(SendError):
    """Retrying will not help (5xx replies): the event ends as deliveryFailed."""
