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

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from txmsg.core import cursor_token
from txmsg.core.timeutil import MAX_DATE, MIN_DATE

MAX_CURSOR_CHARS = 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    return cursor_token.digest(
        event_id,
        status or "",
        since.isoformat() if since else "",
        until.isoformat() if until else "",
    )


def encode(cursor: EventsCursor, digest: str) -> str:
    micros = (cursor.event_date - _EPOCH) // timedelta(microseconds=1)
    return cursor_token.pack(f"1.{micros}.{cursor.id}.{digest}")


def decode(text: str, digest: str) -> EventsCursor:
    """The cursor `text` stands for: a 400 naming `cursor` when it is none, a 422 when it is
    another listing's."""
    found = _PAYLOAD.match(cursor_token.unpack(text, MAX_CURSOR_CHARS))
    if found is None:
        raise cursor_token.not_a_cursor()
    micros, row_id, given = int(found[1]), int(found[2]), found[3]
    try:
        when = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        when = MAX_DATE + timedelta(days=1)
    if not (MIN_DATE <= when <= MAX_DATE and 1 <= row_id <= _MAX_ID):
        raise cursor_token.not_a_cursor()
    cursor_token.check_listing(given, digest, "eventId, status, since and until")
    return EventsCursor(when, row_id)
