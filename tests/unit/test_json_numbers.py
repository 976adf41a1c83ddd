"""Bodies holding integers past 64 bits: read once by the fast parser, or, when it refuses
one too long for a double, read once more with them as text (core/json_numbers.py)."""

from __future__ import annotations

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.json_numbers import (
    NOT_A_DOUBLE,
    NOT_UNICODE,
    NOT_UNICODE_NAME,
    RANGE_TEXT,
    inexact_values,
    oversized,
    read_exact,
    read_with_long_integers_as_text,
)

LONG = "9" * 400  # too long for a double: the fast parser refuses it


def test_any_number_of_integers_too_long_for_a_double_are_read_as_text_in_one_reading() -> None:
    items = ",".join(f'{{"n": {LONG}, "i": {i}, "f": 1.5}}' for i in range(1000))
    value = read_with_long_integers_as_text(f'{{"events": [{items}]}}'.encode())
    assert value is not None and len(value["events"]) == 1000
    assert value["events"][999] == {"n": LONG, "i": 999, "f": 1.5}


@pytest.mark.parametrize(
    "text",
    [
        f'{{"n": {LONG}, "x": }}',  # not JSON
        f'{{"n": {LONG}, "x": NaN}}',  # not JSON either, though Python's parser reads it
        '{"x": Infinity}',
    ],
)
def test_what_is_not_json_stays_refused(text: str) -> None:
    assert read_with_long_integers_as_text(text.encode()) is None
    assert read_with_long_integers_as_text(f'{{"n": {LONG}}}'.encode("utf-16")) is None


@pytest.mark.parametrize(
    ("text", "read", "where", "detail"),
    [
        ('{"n": 1e400}', {"n": "1e400"}, "n", NOT_A_DOUBLE),
        ('{"a": [1, -2.5e999]}', {"a": [1, "-2.5e999"]}, "a[1]", NOT_A_DOUBLE),
        ('{"s": "a\\ud800b"}', {"s": "a\\ud800b"}, "s", NOT_UNICODE),
        ('{"c": {"\\udc00k": 1}}', {"c": {"\\udc00k": 1}}, "c.\\udc00k", NOT_UNICODE_NAME),
        (f'{{"n": {LONG}}}', {"n": LONG}, "n", RANGE_TEXT),
    ],
)
def test_valid_json_the_fast_parser_refuses_is_read_as_text_and_named(
    text: str, read: object, where: str, detail: str
) -> None:
    """Valid JSON that no field may hold (the fast parser refuses it whole) is read with it
    as text, lone surrogates escaped; the exact reading names where it is and why."""
    assert read_with_long_integers_as_text(text.encode()) == read
    exact = read_exact(text.encode(), refused_by_the_fast_parser=True)
    found = oversized(exact)
    assert found is not None and (found[0], found[2]) == (where, detail), found
    # A finite float and a surrogate pair are what they are.
    fine = read_exact(b'{"f": 1e300, "s": "\\ud83d\\ude00"}', refused_by_the_fast_parser=True)
    assert oversized(fine) is None


def test_nesting_too_deep_to_read_again_is_a_400() -> None:
    deep = "[" * 5000 + LONG + "]" * 5000
    with pytest.raises(DomainError) as caught:
        read_with_long_integers_as_text(deep.encode())
    assert caught.value.status == 400 and caught.value.errors[0].field == "body"


def test_integers_the_fast_parser_reads_exactly_are_not_long() -> None:
    exact = read_exact(b'{"a": 9223372036854775808, "b": 18446744073709551615, "c": -1}')
    assert inexact_values(exact) == []  # past 64-bit signed, still exact in its reading
    exact = read_exact(b'{"a": 18446744073709551616, "b": -9223372036854775809}')
    assert inexact_values(exact) == [("/a", "18446744073709551616"), ("/b", "-9223372036854775809")]


def test_inexact_values_are_told_apart_by_their_text_and_place() -> None:
    big = "123456789012345678901"  # past 2**64: a float in the fast parser's reading
    text = '{"a": [1, ' + big + '], "b": {"c": ' + LONG + '}, "d": "' + big + '"}'
    exact = read_exact(text.encode())
    assert inexact_values(exact) == [("/a/1", big), ("/b/c", LONG)]
    float_form = read_exact(b'{"a": [1, 1.2345678901234568e20], "b": {"c": ' + big.encode() + b"}}")
    assert inexact_values(float_form) == [("/b/c", big)]


def test_values_read_inexactly_are_told_apart_from_their_text() -> None:
    """A fingerprint tells a number past a double's range, or a lone surrogate, from the text
    the lenient reading holds in its place."""
    exact = read_exact(
        b'{"n": 1e999, "s": "\\ud800", "t": "1e999"}', refused_by_the_fast_parser=True
    )
    assert inexact_values(exact) == [
        ("/n", f"{NOT_A_DOUBLE}: 1e999"),
        ("/s", f"{NOT_UNICODE}: \\ud800"),
    ]
