"""Report day ranges: `from`/`to` given or by default, and the bounds days are held to."""

from __future__ import annotations

from datetime import date

import pytest

from txmsg.core.errors import DomainError
from txmsg.core.reports import day_range

TODAY = date(2026, 12, 7)


def test_the_last_30_days_by_default() -> None:
    rng = day_range(None, None, TODAY)
    assert (rng.first, rng.last) == (date(2026, 11, 8), TODAY)
    rng = day_range(None, "2026-03-31", TODAY)
    assert (rng.first, rng.last) == (date(2026, 3, 2), date(2026, 3, 31))


def test_the_default_range_never_starts_before_the_first_day() -> None:
    """`to` early in 2000: the days before it are not days reports know (nor may ask for)."""
    rng = day_range(None, "2000-01-05", TODAY)
    assert (rng.first, rng.last) == (date(2000, 1, 1), date(2000, 1, 5))
    assert len(rng.days()) == 5


@pytest.mark.parametrize(("raw_from", "raw_to"), [("1999-12-31", None), (None, "1999-12-31")])
def test_days_before_2000_are_refused(raw_from: str | None, raw_to: str | None) -> None:
    with pytest.raises(DomainError) as refused:
        day_range(raw_from, raw_to, TODAY)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("20261201", None, "from"),  # ISO 8601's basic form: not the documented one
        ("2026-W49-1", None, "from"),  # a week date
        (None, "2026-335", "to"),  # an ordinal date
        ("2026-12-01 ", None, "from"),
        ("٢٠٢٦-12-01", None, "from"),  # Arabic-Indic digits
        ("", None, "from"),  # given empty: malformed, not absent
        (None, "", "to"),
    ],
)
def test_only_the_documented_day_form_is_read(
    raw_from: str | None, raw_to: str | None, field: str
) -> None:
    with pytest.raises(DomainError) as refused:
        day_range(raw_from, raw_to, TODAY)
    assert refused.value.status == 400
    assert [e.field for e in refused.value.errors] == [field]
    assert "YYYY-MM-DD" in refused.value.detail
