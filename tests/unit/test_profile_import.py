"""The CSV and NDJSON import parsers, fed in chunks as a request body arrives."""

from __future__ import annotations

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.profile_import import MAX_LINE_BYTES, CSVRows, NDJSONRows, Rejection, RowParser
from txmsg.core.profiles import Profile


def _parse(parser: RowParser, data: bytes, chunk: int = 7) -> list[Profile | Rejection]:
    """All rows of `data`, fed in small chunks that split lines and characters."""
    rows = [row for i in range(0, len(data), chunk) for row in parser.feed(data[i : i + chunk])]
    return rows + list(parser.finish())


def _summary(rows: list[Profile | Rejection]) -> list[tuple[int, str, str] | str]:
    return [(r.line, r.field, r.detail) if isinstance(r, Rejection) else r.profile_id for r in rows]


def test_csv_rows_and_rejections_keep_their_first_line() -> None:
    data = (
        b"profile_id,first_name,attributes,sms_opt_out\r\n"
        b'a1,"Ann\nSmith",,no\r\n'
        b"\r\n"
        b'a2,X,"{""vip"": true}",1\r\n'
        b"a3,X,,no,extra\r\n"
        b'a4,X,"not json",\r\n'
        b"a5,X\r\n"
    )
    rows = _parse(CSVRows(), data)
    assert _summary(rows) == [
        "a1",
        "a2",
        (6, "body", "has 5 cells, the header 4"),
        (7, "attributes", "must be a JSON object"),
        (8, "body", "has 2 cells, the header 4"),
    ]
    first, second = rows[0], rows[1]
    assert isinstance(first, Profile) and first.first_name == "Ann\nSmith"
    assert first.sms_opt_out is False
    assert isinstance(second, Profile) and second.attributes == {"vip": True}
    assert second.sms_opt_out is True


def test_csv_bad_bytes_long_records_and_an_open_quote_are_rejected() -> None:
    long_cell = "x" * (MAX_LINE_BYTES // 2)
    data = (
        b"profile_id,first_name\n"
        b"b1,\xff\n"
        # a quoted field going on past the bound: the record is dropped, the next line is new
        + f'b2,"{long_cell}\n{long_cell}\n'.encode()
        + b"b3,ok\n"
        + b'b4,"never closed\n'
    )
    assert _summary(_parse(CSVRows(), data, chunk=4096)) == [
        (2, "body", "not valid UTF-8"),
        (3, "body", "record too long"),
        "b3",
        (6, "body", "unterminated quoted field"),
    ]


def test_csv_header_names_known_columns_only() -> None:
    with pytest.raises(DomainError) as raised:
        _parse(CSVRows(), b"profile_id,age\nx,3\n")
    assert [e.field for e in raised.value.errors] == ["columns[1]"]
    assert "'age' is not a column" in raised.value.detail
    with pytest.raises(DomainError) as raised:
        _parse(CSVRows(), b"email\nx@example.org\n")
    assert [e.field for e in raised.value.errors] == ["columns"]
    # In any case, spaces around trimmed; one column in two spellings is refused.
    [row] = _parse(CSVRows(), b" Profile_Id ,EMAIL\nx, x@example.org \n")
    assert isinstance(row, Profile) and row.email == "x@example.org"
    with pytest.raises(DomainError) as raised:
        _parse(CSVRows(), b"profile_id,email,Email\nx,a@example.org,b@example.org\n")
    assert [e.field for e in raised.value.errors] == ["columns[2]"]


def test_ndjson_rows() -> None:
    data = b'{"profile_id": "n1"}\n\n[1]\n{oops\n' + b"x" * (MAX_LINE_BYTES + 1) + b"\n"
    summary = _summary(_parse(NDJSONRows(), data, chunk=1000))
    assert summary[:3] == ["n1", (3, "body", "must be a JSON object"), (4, "body", summary[2][2])]
    assert str(summary[2][2]).startswith("not valid JSON")
    assert summary[3] == (5, "body", f"line longer than {MAX_LINE_BYTES} bytes")


def test_an_ndjson_file_may_start_with_a_byte_order_mark() -> None:
    data = b'\xef\xbb\xbf{"profile_id": "b1"}\n\xef\xbb\xbf{"profile_id": "b2"}\n'
    summary = _summary(_parse(NDJSONRows(), data, chunk=2))
    assert summary[0] == "b1"  # the file's mark, as a spreadsheet or editor writes it
    assert summary[1][:2] == (2, "body")  # one further in is not the file's: refused
