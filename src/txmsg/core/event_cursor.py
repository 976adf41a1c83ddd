"""The latest-events list's cursor: where a page ended, opaque to clients.

Pages go newest first by `(event_date, id)`, both immutable, so a walk sees each event that
existed when it began exactly once, however many arrive meanwhile (they sort at the head, before
the walk's position). The cursor is base64url (no padding) of `1.<event_date, epoch
microseconds>.<id>.<query digest>`; the digest ties it to the listing it came from (eventId,
status, since, until), so a cursor carried over to another listing is refused instead of
silently skipping or repeating events (a 422 naming `cursor`). Anything else is a 400 naming
`cursor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from txmsg.core.errors import DomainError, invalid, refused
from txmsg.core.timeutil import MAX_DATE, MIN_DATE

MAX_CURSOR_CHARS = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TEXT = re.compile(r"[A-Za-z0-9_-]{1,%d}\Z" % MAX_CURSOR_CHARS)  # noqa: UP031
_PAYLOAD = re.compile(r"1\.(\d{1,18})\.(\d{1,19})\.([0-9a-f]{16})\Z")
_MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class EventsCursor:
    """The last event of a page: the next page starts strictly after it."""

    event_date: datetime
    id: int


def query_digest(
    event_id: str, status: str | None, since: datetime | None, until: datetime | None
) -> str:
    text = "\0".join(
        (
            event_id,
            status or "",
            since.isoformat() if since else "",
            until.isoformat() if until else "",
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(cursor: EventsCursor, digest: str) -> str:
    micros = (cursor.event_date - _EPOCH) // timedelta(microseconds=1)
    raw = f"1.{micros}.{cursor.id}.{digest}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_NOT_ONE = "is not a cursor of this list: pass `next_cursor` of the previous page as it is"


def _bad() -> DomainError:
    return invalid("cursor", _NOT_ONE, in_header=True)


def decode(text: str, digest: str) -> EventsCursor:
    """The cursor `text` stands for: a 400 naming `cursor` when it is none, a 422 when it is
    another listing's."""
    if not _TEXT.match(text):
        raise _bad()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise _bad() from None
    found = _PAYLOAD.match(raw)
    if found is None:
        raise _bad()
    micros, row_id, given = int(found[1]), int(found[2]), found[3]
    try:
        when = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        when = MAX_DATE + timedelta(days=1)
    if not (MIN_DATE <= when <= MAX_DATE and 1 <= row_id <= _MAX_ID):
        raise _bad()
    if given != digest:
        raise refused(
            "cursor",
            "was given for another listing: keep eventId, status, since and until as they were",
            in_header=True,
        )
    return EventsCursor(when, row_id)
