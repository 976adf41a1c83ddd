"""The suppression list: every reason an address is not sent to, in one vocabulary.

Entries come from the denylist (an admin's or an import's entry, or a spam complaint), the
quarantine (a hard bounce, or soft bounces in a row; and a number that texted STOP, held beside
them but the person's opt-out, not a bounce) and the profiles' opt-outs (an unsubscribe).
Listing filters, the CSV export and import, and the "why" answer of one address share the
types below.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from txmsg.core.csv_cells import defused, restored
from txmsg.core.errors import DomainError, FieldError, invalid, unprocessable
from txmsg.core.kinds import CHANNELS
from txmsg.core.profile_import import Rejection
from txmsg.core.profiles import normalize_address
from txmsg.core.timeutil import isoformat, parse_iso8601


class Reason(StrEnum):
    DENYLIST = "denylist"
    SPAM_COMPLAINT = "spam_complaint"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCES = "soft_bounces"
    UNSUBSCRIBE = "unsubscribe"
    # The number texted STOP (Twilio's 21610): an opt-out, kept apart from `unsubscribe` (a
    # profile's) because it is the number's, held for every message until an admin releases it
    # (`DELETE /api/v1/quarantine/...`), and is listed beside a STOP's profile opt-out.
    SMS_STOP = "sms_stop"


REASONS = tuple(r.value for r in Reason)
# Where a denylist entry came from (the `denylist.source` column).
SOURCE_ADMIN = "admin"
SOURCE_IMPORT = "import"
SOURCE_SPAM = "spam"
CSV_COLUMNS = ("channel", "address", "reason", "detail", "since")
MAX_IMPORT_ROWS = 50_000
MAX_DETAIL = 500


def suppression_key(channel: str, address: str) -> str:
    """The form an address is listed under. Mailbox providers treat an email address's local
    part without regard to case, so `Ada@example.org` bouncing holds `ada@example.org` too;
    phone numbers are already in one form (E.164)."""
    return address.lower() if channel == "email" else address


@dataclass(frozen=True, slots=True)
class Suppression:
    channel: str
    address: str
    reason: Reason
    detail: str | None  # the admin's words, the bounce reply, the profile id
    since: datetime
    until: datetime | None = None  # quarantine and denylist hold until released: None

    def as_dict(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "address": self.address,
            "reason": self.reason.value,
            "detail": self.detail,
            "since": self.since,
            "until": self.until,
        }


def refused_suppressed(suppressed: dict[str, list[Suppression]]) -> DomainError:
    """The 422 of a send refused because addresses are suppressed: one error per field (the
    field's name -> its entries), saying the reasons only. An entry's detail (a bounce reply,
    an admin's words, a profile id) and its dates are for admins, on the suppression list."""
    errors = [
        FieldError(
            name,
            "is on the suppression list ("
            + ", ".join(r for r in REASONS if r in {e.reason.value for e in entries})
            + "): nothing is sent to it until an admin removes the entry",
        )
        for name, entries in suppressed.items()
    ]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return unprocessable(f"{errors[0].field}: {errors[0].detail}{more}", errors)


@dataclass(frozen=True, slots=True)
class Filters:
    channel: str | None = None
    reason: Reason | None = None
    since: datetime | None = None


def parse_filters(params: dict[str, str]) -> Filters:
    """The listing's query filters; a 400 naming the parameter."""
    channel = params.get("channel")
    if channel is not None and channel not in CHANNELS:
        raise invalid("channel", "must be one of: " + ", ".join(CHANNELS), in_header=True)
    reason = params.get("reason")
    if reason is not None and reason not in REASONS:
        raise invalid("reason", "must be one of: " + ", ".join(REASONS), in_header=True)
    since = params.get("since")
    parsed = parse_iso8601(since, "since") if since is not None else None
    return Filters(channel, Reason(reason) if reason else None, parsed)


def to_csv(rows: Iterable[Suppression]) -> Iterable[str]:
    """CSV text, a header row then one row per entry (RFC 4180, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        cells = [row.channel, row.address, row.reason.value, row.detail or "", isoformat(row.since)]
        writer.writerow([defused(c) for c in cells])
        yield buffer.getvalue()


@dataclass(frozen=True, slots=True)
class ImportRow:
    channel: str
    address: str
    detail: str | None


def parse_import(text: str) -> tuple[list[ImportRow], list[Rejection]]:
    """Denylist entries of a CSV with a header naming `channel` and `address` (and optionally
    `detail` or `reason`, kept as the entry's words); the rows refused, by line."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise invalid("body", f"not valid CSV: {exc}") from None
    missing = [c for c in ("channel", "address") if c not in header]
    if missing:
        raise invalid("body", "the header row must name the columns channel and address")
    rows: list[ImportRow] = []
    errors: list[Rejection] = []
    try:
        for record in reader:
            line = reader.line_num
            if len(rows) + len(errors) >= MAX_IMPORT_ROWS:
                raise invalid("body", f"at most {MAX_IMPORT_ROWS} rows per import")
            parsed = _import_row(record, line)
            if isinstance(parsed, Rejection):
                errors.append(parsed)
            else:
                rows.append(parsed)
    except csv.Error as exc:
        raise invalid("body", f"not valid CSV at line {reader.line_num}: {exc}") from None
    return rows, errors


def _import_row(record: dict[str, str | None], line: int) -> ImportRow | Rejection:
    channel = (record.get("channel") or "").strip()
    if channel not in CHANNELS:
        return Rejection(line, "channel", "must be one of: " + ", ".join(CHANNELS))
    try:
        written = restored((record.get("address") or "").strip())
        address = normalize_address(channel, written, "address")
    except DomainError as exc:
        return Rejection(line, "address", exc.errors[0].detail if exc.errors else str(exc))
    detail = (record.get("detail") or record.get("reason") or "").strip()[:MAX_DETAIL]
    return ImportRow(channel, address, detail or None)
