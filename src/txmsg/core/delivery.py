"""What a channel provider tells the dispatcher about one send."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

# What went wrong with a provider itself (not with one message), a bounded set: the `kind`
# label of `txmsg_provider_failures_total` and the kind a provider warning names.
FAULT_AUTH = "auth"  # credentials refused: SMTP 535/530 at AUTH, Twilio 401/20003, 403
FAULT_TLS = "tls"  # STARTTLS refused or missing, a certificate that does not verify
FAULT_CONNECT = "connect"  # refused, reset, closed, unreachable
FAULT_TIMEOUT = "timeout"  # no answer in time
FAULT_SENDER = "sender"  # the provider says the sender is not ours (Twilio 21606, 21212...)
FAULT_PROTOCOL = "protocol"  # an answer that is not the provider's protocol
FAULT_4XX = "4xx"  # a temporary refusal of the provider's service (SMTP 421, Twilio 429)
FAULT_5XX = "5xx"  # a server error, or a permanent refusal of the session
FAULT_KINDS = (
    FAULT_AUTH,
    FAULT_TLS,
    FAULT_CONNECT,
    FAULT_TIMEOUT,
    FAULT_SENDER,
    FAULT_PROTOCOL,
    FAULT_4XX,
    FAULT_5XX,
)


class SendError(Exception):
    """A send that did not go through; `reason` is safe to show to API users.

    `fault` is set (one of `FAULT_KINDS`) when the provider itself failed or refused the
    engine's credentials or configuration, whatever the message; None when the message was
    refused (a recipient, its content) or the error says nothing about the provider. The
    reason of an error without a fault may name a recipient: it is never logged.
    """

    # A provider saw the attempt (a refusal, a 4xx, a time-out mid-transaction): a bounce or
    # complaint may come back about it. False for a send that never left this process.
    reached_provider = True

    def __init__(
        self, reason: str, retry_after: float | None = None, *, fault: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        # Seconds the provider asked us to wait (Retry-After), if it said.
        self.retry_after = retry_after
        self.fault = fault

    def masking(self, forms: list[str], limit: int | None = None) -> SendError:
        """The same error, its reason without any of the credential `forms` (then cut to
        `limit` characters: cutting first could leave part of a credential)."""
        reason = masked(self.reason, forms)[:limit]
        if reason == self.reason:
            return self
        return type(self)(reason, self.retry_after, fault=self.fault)


class TransientSendError(SendError):
    """Worth retrying later (4xx replies, connection errors, timeouts)."""


class NotAttempted(TransientSendError):
    """Worth retrying later, and no provider saw it: every provider of the configuration is
    resting (its breaker open), or the connection pool closed before the send went."""

    reached_provider = False


class PermanentSendError(SendError):
    """Retrying will not help (5xx replies): the event ends as deliveryFailed."""


class RecipientOptedOut(PermanentSendError):
    """The recipient told the provider to send them nothing more (an SMS STOP: Twilio error
    21610). Recorded as their opt-out (`ProviderOptOut`), not as a bounce: the number is
    held and a profile's `sms_opt_out` is set, so later sends are `ignored`."""


@dataclass(frozen=True, slots=True)
class ProviderOptOut:
    """A send refused because its recipient opted out at the provider (an SMS STOP). The
    person's own act, not an undeliverable address: logged as `unsubscribed`, and the address
    is held for every message (its suppression-list reason says STOP, not a bounce) until an
    admin releases it, as the provider keeps it until the person opts in again (START)."""

    pkey: str
    event_id: str
    channel: str
    address: str
    reason: str  # the provider's answer (`Twilio error 21610 (HTTP 400): ...`)


class Unsendable(PermanentSendError):
    """Retrying will not help, and no provider saw it: the envelope itself is unusable."""

    reached_provider = False


class SendWithdrawn(Exception):
    """Nothing was sent: while the send waited for a connection its lease lapsed (another
    claim may own its event now), the engine began to stop, or its claim's channel-cap window
    ended. Not the provider's doing, nor the recipient's."""


def credential_forms(user: str, secret: str) -> list[str]:
    """The ways a provider may echo a credential: as is, base64 (SMTP AUTH LOGIN), in HTTP
    Basic (`user:secret`) and in SMTP AUTH PLAIN (`\\0user\\0secret`)."""
    if not secret:
        return []
    forms = [secret]
    for raw in (secret, f"{user}:{secret}", f"\0{user}\0{secret}"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms += [encoded, encoded.rstrip("=")]
    return forms


# A credential form this long is masked wherever it occurs; a shorter one only where it stands
# as a token of its own. A short secret also occurs by chance inside the words, host names and
# numbers of an error ("p" in "port", "1" in "127.0.0.1"): masking it there would mangle the
# text and, worse, show the secret by where the stars fall.
MASK_ANYWHERE_LENGTH = 8


def _token_pattern(form: str) -> re.Pattern[str]:
    """`form` standing alone: no word character next to it, nor a `.` or `-` joining it to
    one (a host name, an address, a status code such as 5.7.8, a hyphenated word)."""
    return re.compile(rf"(?<!\w)(?<!\w[.-]){re.escape(form)}(?!\w)(?![.-]\w)")


def masked(text: str, forms: list[str]) -> str:
    """`text` with every credential form replaced by `***` (longest first): anywhere for a
    form of `MASK_ANYWHERE_LENGTH` characters or more, as a whole token for a shorter one."""
    for form in sorted(forms, key=len, reverse=True):
        if not form or form not in text:
            continue
        if len(form) >= MASK_ANYWHERE_LENGTH:
            text = text.replace(form, "***")
        else:
            text = _token_pattern(form).sub("***", text)
    return text


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
    # Set for an entry recorded once per message and kind (a receipt's MessageSid, a
    # reported bounce's class, FIRST_OF_KIND): a second one with the same key is dropped.
    once: str | None = None


# The `once` key of a person's first open or click of a message (its unique count).
FIRST_OF_KIND = "first"
