"""Rows of a profile import (NDJSON or CSV), parsed incrementally from a byte stream.

The parsers take chunks as they arrive and yield complete records, so a file of any size is
read with memory bounded by one line (and one batch of rows upstream).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from txmsg.core.errors import DomainError, FieldError
from txmsg.core.profiles import PROFILE_FIELDS, Profile, parse_profile, parse_profile_id

MAX_LINE_BYTES = 64 * 1024
CSV_COLUMNS = {"profile_id", *PROFILE_FIELDS}
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "detail": self.detail}


def parse_row(line: int, record: Any) -> Profile | Rejection:
    """One import record (a JSON object, or a CSV row as a dict) as a profile."""
    try:
        if not isinstance(record, dict):
            return Rejection(line, "body", "must be a JSON object")
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

    def feed(self, chunk: bytes) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.feed(chunk):
            yield from self._row(line, raw)

    def finish(self) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.finish():
            yield from self._row(line, raw)

    @staticmethod
    def _row(line: int, raw: bytes | None) -> Iterator[Profile | Rejection]:
        if raw is None:
            yield Rejection(line, "body", f"line longer than {MAX_LINE_BYTES} bytes")
            return
        if not raw.strip():
            return
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield Rejection(line, "body", f"not valid JSON: {exc}")
            return
        yield parse_row(line, record)


def _csv_bool(value: str) -> bool | str:
    lowered = value.strip().lower()
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

    def feed(self, chunk: bytes) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.feed(chunk):
            yield from self._line(line, raw)

    def finish(self) -> Iterator[Profile | Rejection]:
        for line, raw in self._lines.finish():
            yield from self._line(line, raw)
        if self._pending:
            yield Rejection(self._first_line, "body", "unterminated quoted field")
            self._pending = []

    def _line(self, line: int, raw: bytes | None) -> Iterator[Profile | Rejection]:
        if raw is None:
            yield Rejection(line, "body", f"line longer than {MAX_LINE_BYTES} bytes")
            return
        try:
            text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
        except UnicodeDecodeError:
            yield Rejection(line, "body", "not valid UTF-8")
            return
        if not self._pending:
            self._first_line = line
        self._pending.append(text)
        record_text = "\n".join(self._pending)
        # Quotes are doubled inside quoted fields: an odd count means the record goes on.
        if record_text.count('"') % 2:
            if len(record_text) > MAX_LINE_BYTES:
                self._pending = []
                yield Rejection(self._first_line, "body", "record too long")
            return
        self._pending = []
        if not record_text.strip():
            return
        try:
            [cells] = list(csv.reader([record_text], strict=True))
        except (csv.Error, ValueError) as exc:
            yield Rejection(self._first_line, "body", f"not valid CSV: {exc}")
            return
        if self._header is None:
            self._header = [c.strip() for c in cells]
            unknown = [c for c in self._header if c not in CSV_COLUMNS]
            if unknown or "profile_id" not in self._header:
                raise DomainError(
                    "the CSV header must name profile_id and only these columns: "
                    + ", ".join(sorted(CSV_COLUMNS))
                    + (f" (unknown: {', '.join(unknown)})" if unknown else "")
                )
            return
        if len(cells) != len(self._header):
            yield Rejection(
                self._first_line, "body", f"has {len(cells)} cells, the header {len(self._header)}"
            )
            return
        record: dict[str, Any] = {}
        for name, cell in zip(self._header, cells, strict=True):
            if name in ("email_opt_out", "sms_opt_out"):
                record[name] = _csv_bool(cell)
            elif name == "attributes":
                if cell.strip():
                    try:
                        record[name] = orjson.loads(cell)
                    except orjson.JSONDecodeError:
                        yield Rejection(self._first_line, "attributes", "must be a JSON object")
                        return
            elif cell != "":
                record[name] = cell
        yield parse_row(self._first_line, record)
