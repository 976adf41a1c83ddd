"""Integers read from query and path parameters: ASCII digits only, within their bounds."""

from __future__ import annotations

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.retry import retry_after_seconds
from txmsg.core.timeutil import utcnow
from txmsg.core.validation import ascii_digits, query_int


@pytest.mark.parametrize("text", ["0", "7", "0042", "123456789"])
def test_ascii_digits_are_read(text: str) -> None:
    assert ascii_digits(text)
    assert query_int(text, "limit", 0, 10**9) == int(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: str.isdigit() says yes, int() reads 3
        "\uff13",  # FULLWIDTH DIGIT THREE
        "\u00b2",  # SUPERSCRIPT TWO: isdigit() yes, int() refuses it
        "+3",
        "-3",
        " 3",
        "3 ",
        "3.0",
        "1_000",
    ],
)
def test_anything_else_is_refused_naming_the_parameter(text: str) -> None:
    assert not ascii_digits(text)
    with pytest.raises(DomainError) as refused:
        query_int(text, "limit", 0, 100)
    assert refused.value.status == 400
    assert [(e.field, e.in_header) for e in refused.value.errors] == [("limit", True)]


def test_bounds_and_long_values() -> None:
    assert query_int("100", "limit", 1, 100) == 100
    for text in ("0", "101", "9" * 5000, "0" * 5000 + "101"):
        with pytest.raises(DomainError):
            query_int(text, "limit", 1, 100)
    assert query_int("0" * 5000 + "7", "limit", 1, 100) == 7


def test_a_retry_after_in_other_digits_is_not_seconds() -> None:
    assert retry_after_seconds("30", utcnow()) == 30.0
    assert retry_after_seconds("\u0663\u0660", utcnow()) is None
