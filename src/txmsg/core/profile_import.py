"""Rows of a profile import (NDJSON or CSV), parsed incrementally from a byte stream.

The parsers take chunks as they arrive and yield complete records, so a file of any size is
read with memory bounded by one line (and one batch of rows upstream).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from txmsg.core.errors import DomainError, FieldError, invalid, invalid_many
from txmsg.core.profiles import (
    OPT_OUT_FIELDS,
    PROFILE_FIELDS,
    Profile,
    parse_profile,
    parse_profile_id,
)

MAX_LINE_BYTES = 64 * 1024
CSV_COLUMNS = {"profile_id", *PROFILE_FIELDS}
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "detail": self.detail}


class RowParser(Protocol):
    """An import format's parser: chunks of the body in, rows out, the rest at the end."""

    @property
    def row_line(self) -> int:
        """The line where the row just yielded begins."""
        ...

    def feed(self, chunk: bytes) -> Iterator[Profile | Rejection]: ...

    def finish(self) -> Iterator[Profile | Rejection]: ...


MAX_WARNING_LINES = 10
_DUPLICATE_DETAIL = {
    "duplicate_email_in_file": (
        "rows whose email (in any case) an earlier row of the file gives another profile: "
        "reconciliation by email picks the profile created first (the earliest row)"
    ),
    "duplicate_email_existing": (
        "rows whose email (in any case) a profile that existed before the import holds: "
        "reconciliation by email picks the profile created first (the existing one)"
    ),
}


@dataclass(slots=True)
class ImportWarning:
    """Rows imported all the same, counted, with the lines of the first few."""

    code: str
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_WARNING_LINES:
            self.lines.append(line)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "count": self.count,
            "lines": self.lines,
            "detail": f"{self.count} {_DUPLICATE_DETAIL[self.code]}",
        }


@dataclass(frozen=True, slots=True)
class Held:
    """Who else holds an email an import batch gives: profiles outside the batch written
    before the import (`before`) or during it (`in_import`), and profiles of the batch that
    existed before and keep it (`kept_by`, by id)."""

    before: bool
    in_import: bool
    kept_by: frozenset[str] = frozenset()


class DuplicateEmails:
    """Emails an import gives to several profiles: within the file, or held by existing ones.

    Each batch is checked against itself here and against the database by the caller
    (`held`), so memory stays bounded by one batch. A row is counted once: against an
    existing profile if one holds its email, else within the file.
    """

    def __init__(self) -> None:
        self.in_file = ImportWarning("duplicate_email_in_file")
        self.existing = ImportWarning("duplicate_email_existing")

    def check(self, rows: list[tuple[int, Profile]], held: dict[str, Held]) -> None:
        first: dict[str, str] = {}
        nobody = Held(False, False)
        for line, profile in rows:
            if not profile.email:
                continue
            email = profile.email.lower()
            others = held.get(email, nobody)
            earlier = first.setdefault(email, profile.profile_id) != profile.profile_id
            if profile.profile_id in others.kept_by:
                continue  # an existing profile keeping its email: the one others duplicate
            if others.before or others.kept_by:
                self.existing.add(line)
            elif earlier or others.in_import:
                self.in_file.add(line)

    def warnings(self) -> list[dict[str, Any]]:
        return [w.as_dict() for w in (self.in_file, self.existing) if w.count]


def parse_row(line: int, record: Any) -> Profile | Rejection:
    """One import record (a JSON object, or a CSV row as a dict) as a profile."""
    try:
        if not isinstance(record, dict):
            return Rejection(line, "body", "must be a JSON object")
        if "profile_id" not in record and "id" in record:
            return Rejection(
                line, "profile_id", 'is required: name the field "profile_id", not "id"'
            )
        profile_id = parse_profile_id(record.get("profile_id"))
        return parse_profile(profile_id, record)
    except DomainError as exc:
        first = exc.errors[0] if exc.errors else FieldError("body", exc.detail)
        return Rejection(line, first.field, first.detail)


class LineSplitter:
    """Bytes in, complete lines out (numbered from 1); an over-long line comes out as None."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skipping = False  # inside an over-long line: dropped up to its end
        self.line = 0

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes | None]]:
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    self._skipping = True
                    self._buffer.clear()
                return
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self.line += 1
            if self._skipping or len(raw) > MAX_LINE_BYTES:
                self._skipping = False
                yield self.line, None
            else:
                yield self.line, raw.rstrip(b"\r")

    def finish(self) -> Iterator[tuple[int, bytes | None]]:
        if self._skipping or self._buffer.strip():
            self.line += 1
            yield self.line, None if self._skipping else bytes(self._buffer)
        self._skipping = False
        self._buffer.clear()


class NDJSONRows:
    def __init__(self) -> None:
        self._lines = LineSplitter()
        self.row_line = 0

    def feed(self, chunk: bytes) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.feed(chunk):
            self.row_line = line
            yield from self._row(line, raw)

    def finish(self) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.finish():
            self.row_line = line
            yield from self._row(line, raw)

    @staticmethod
    def _row(line: int, raw: bytes | None) -> Iterator[Profile | Rejection]:
        if raw is None:
            yield Rejection(line, "body", f"line longer than {MAX_LINE_BYTES} bytes")
            return
        if line == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark, as CSV reads it
        if not raw.strip():
            return
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Rejection(line, "body", f"not valid JSON: {exc}")
            return
        yield parse_row(line, record)


def _csv_bool(value: str) -> bool | str | None:
    """A CSV cell as a boolean; an empty cell is no value (the stored opt-out stays)."""
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value  # parse_profile names the field


class CSVRows:
    """RFC 4180 CSV with a header row; a quoted field may span lines."""

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._header: list[str] | None = None
        self._pending: list[str] = []
        self._first_line = 0

    @property
    def row_line(self) -> int:
        return self._first_line

    def feed(self, chunk: bytes) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.feed(chunk):
            row = self._line(line, raw)
            if row is not None:
                yield row

    def finish(self) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.finish():
            row = self._line(line, raw)
            if row is not None:
                yield row
        if self._pending:
            unterminated = Rejection(self._first_line, "body", "unterminated quoted field")
            self._pending = []
            if self._header is None:
                raise _bad_header(unterminated)
            yield unterminated

    def _line(self, line: int, raw: bytes | None) -> Profile | Rejection | None:
        """The row that this line completes, if any (the header row gives none). A header row
        that cannot be read fails the whole import, as one naming an unknown column does:
        the rows after it cannot be read without it."""
        read = self._read(line, raw)
        if self._header is None and isinstance(read, Rejection):
            raise _bad_header(read)
        return read

    def _read(self, line: int, raw: bytes | None) -> Profile | Rejection | None:
        if raw is None:
            return Rejection(line, "body", f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError:
            return Rejection(line, "body", "not valid UTF-8")
        record_text = self._join(line, text)
        if record_text is None or isinstance(record_text, Rejection):
            return record_text
        if not record_text.strip():
            return None
        try:
            [cells] = list(csv.reader([record_text], strict=True))
        except (csv.Error, ValueError) as exc:
            return Rejection(self._first_line, "body", f"not valid CSV: {exc}")
        if self._header is None:
            self._header = _header(cells)
            return None
        return self._row(self._header, cells)

    def _join(self, line: int, text: str) -> str | Rejection | None:
        """The record's text once its last line is in; None while a quoted field goes on."""
        if not self._pending:
            self._first_line = line
        self._pending.append(text)
        record_text = "\n".join(self._pending)
        # Quotes are doubled inside quoted fields: an odd count means the record goes on.
        if record_text.count('"') % 2:
            if len(record_text) > MAX_LINE_BYTES:
                self._pending = []
                return Rejection(self._first_line, "body", "record too long")
            return None
        self._pending = []
        return record_text

    def _row(self, header: list[str], cells: list[str]) -> Profile | Rejection:
        if len(cells) != len(header):
            return Rejection(
                self._first_line, "body", f"has {len(cells)} cells, the header {len(header)}"
            )
        record: dict[str, Any] = {}
        for name, cell in zip(header, cells, strict=True):
            if name in OPT_OUT_FIELDS:
                record[name] = _csv_bool(cell)
            elif name == "attributes":
                if cell.strip():
                    try:
                        record[name] = orjson.loads(cell)
                    except orjson.JSONDecodeError:
                        return Rejection(self._first_line, "attributes", "must be a JSON object")
            elif name == "email":
                if cell.strip():  # spreadsheets leave spaces around addresses
                    record[name] = cell.strip()
            elif cell != "":
                record[name] = cell
        return parse_row(self._first_line, record)


def _bad_header(read: Rejection) -> DomainError:
    return invalid("body", f"the CSV header row (line {read.line}) cannot be read: {read.detail}")


_COLUMN_NAMES = {name.lower(): name for name in CSV_COLUMNS}


def _header(cells: list[str]) -> list[str]:
    """The CSV's column names, read in any case with spaces around trimmed. A header naming an
    unknown column, or one column in two spellings (`Email`, `email`), fails the whole import:
    each is named (`columns[i]`, from 0), as is a missing profile_id. A name repeated as it
    was spelt stays accepted, as it always was (the last cell wins)."""
    header: list[str] = []
    errors: list[FieldError] = []
    first: dict[str, int] = {}
    for i, cell in enumerate(cells):
        given = cell.strip()
        name = _COLUMN_NAMES.get(given.lower())
        if name is None:
            errors.append(FieldError(f"columns[{i}]", f"'{given}' is not a column: {_KNOWN}"))
        elif name in first and cells[first[name]].strip() != given:
            j = first[name]
            errors.append(
                FieldError(
                    f"columns[{i}]",
                    f"'{given}' and columns[{j}] '{cells[j].strip()}' both name {name}: "
                    "give the column once",
                )
            )
        else:
            first.setdefault(name, i)
        header.append(name or given)
    if "profile_id" not in first:
        errors.append(FieldError("columns", f"must include profile_id: {_KNOWN}"))
    if errors:
        raise invalid_many(errors)
    return header


_KNOWN = (
    "the columns are "
    + ", ".join(sorted(CSV_COLUMNS, key=str.lower))
    + " (in any case); other values go in attributes, as a JSON object"
)
