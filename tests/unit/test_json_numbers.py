"""Bodies holding integers past 64 bits: read once by the fast parser, or, when it refuses
one too long for a double, read once more with them as text (core/json_numbers.py)."""

from __future__ import annotations

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.json_numbers import long_integers, read_exact, read_with_long_integers_as_text

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
        f'{{"n": {LONG}, "x": NaN}}',  # what the fast parser refuses
        f'{{"n": {LONG}, "x": 1e400}}',
        f'{{"n": {LONG}, "x": "\\ud800"}}',  # a lone surrogate
        '{"n": 1e400}',  # no long integer: nothing to read again
    ],
)
def test_what_the_fast_parser_refuses_for_another_reason_stays_refused(text: str) -> None:
    assert read_with_long_integers_as_text(text.encode()) is None
    assert read_with_long_integers_as_text(f'{{"n": {LONG}}}'.encode("utf-16")) is None


def test_nesting_too_deep_to_read_again_is_a_400() -> None:
    deep = "[" * 5000 + LONG + "]" * 5000
    with pytest.raises(DomainError) as caught:
        read_with_long_integers_as_text(deep.encode())
    assert caught.value.status == 400 and caught.value.errors[0].field == "body"


def test_integers_the_fast_parser_reads_exactly_are_not_long() -> None:
    exact = read_exact(b'{"a": 9223372036854775808, "b": 18446744073709551615, "c": -1}')
    assert long_integers(exact) == []  # past 64-bit signed, still exact in its reading
    exact = read_exact(b'{"a": 18446744073709551616, "b": -9223372036854775809}')
    assert long_integers(exact) == [("/a", "18446744073709551616"), ("/b", "-9223372036854775809")]


def test_long_integers_are_told_apart_by_their_text_and_place() -> None:
    big = "123456789012345678901"  # past 2**64: a float in the fast parser's reading
    text = '{"a": [1, ' + big + '], "b": {"c": ' + LONG + '}, "d": "' + big + '"}'
    exact = read_exact(text.encode())
    assert long_integers(exact) == [("/a/1", big), ("/b/c", LONG)]
    float_form = read_exact(b'{"a": [1, 1.2345678901234568e20], "b": {"c": ' + big.encode() + b"}}")
    assert long_integers(float_form) == [("/b/c", big)]
