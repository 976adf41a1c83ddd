"""Integers as JSON Schema counts them: 5 and 5.0 are integers, 5.5, true and "5" are not."""

from __future__ import annotations

from typing import Any

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.fatigue import parse_rule
from txmsg.core.rate_limit import parse_channel_cap
from txmsg.core.validation import as_integer, get_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (5.0, 5), (-2.0, -2), (1e3, 1000), (5.5, None), (True, None), ("5", None)],
)
def test_integers_as_json_schema_counts_them(value: Any, expected: int | None) -> None:
    assert as_integer(value) == expected


def test_an_integral_float_is_taken_as_its_integer() -> None:
    assert get_int({"n": 7.0}, "n", maximum=10) == 7
    with pytest.raises(DomainError):
        get_int({"n": 7.5}, "n")
    cap = parse_channel_cap({"per_second": 10.0, "bulk_share": 50.0})
    assert cap is not None and (cap.per_second, cap.bulk_share) == (10, 50)
    rule = parse_rule({"name": "weekly", "channel": "all", "max_messages": 3.0, "period": "P7D"})
    assert rule.max_messages == 3 and isinstance(rule.max_messages, int)
