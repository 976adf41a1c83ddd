"""Rate limits as values: parsing (bounded, naming the field) and window arithmetic."""

from __future__ import annotations

import pytest

from txmsg.config import Settings
from txmsg.core.errors import DomainError
from txmsg.core.rate_limit import (
    DAY_MS,
    SECOND_MS,
    ChannelCap,
    KeyLimit,
    cap_use,
    held_reason,
    parse_channel_cap,
    parse_key_limit,
    parse_limit_spec,
)


def test_limit_specs_from_the_environment() -> None:
    assert parse_limit_spec("100/s", "X") == KeyLimit(100, 100)
    assert parse_limit_spec("100/s burst 200", "X") == KeyLimit(100, 200)
    assert parse_limit_spec(" 5 / s , burst=9 ", "X") == KeyLimit(5, 9)
    assert parse_limit_spec("off", "X") is None
    for bad in ("100", "100/m", "0/s", "1/s burst 0", "lots"):
        with pytest.raises(ValueError, match="X"):
            parse_limit_spec(bad, "X")
    env = {"TXMSG_TRIGGER_RATE_LIMIT": "7/s burst 8", "TXMSG_AUTH_FAILURE_RATE_LIMIT": "off"}
    settings = Settings.from_env(env)
    assert settings.trigger_rate_limit == KeyLimit(7, 8)
    assert settings.auth_failure_rate_limit is None
    assert Settings.from_env({}).trigger_rate_limit == KeyLimit(1000, 2000)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"per_second": 0}, "rate_limit.per_second"),
        ({"per_second": True}, "rate_limit.per_second"),
        ({"per_day": 10**10}, "rate_limit.per_day"),
        ({"hourly": 1}, "rate_limit.hourly"),
        ("fast", "rate_limit"),
        ({"per_day": 10, "bulk_share": 0}, "rate_limit.bulk_share"),
        ({"per_day": 10, "bulk_share": 101}, "rate_limit.bulk_share"),
        ({"per_day": 10, "bulk_share": 0.9}, "rate_limit.bulk_share"),
        ({"per_day": 10, "bulk_share": True}, "rate_limit.bulk_share"),
        ({"bulk_share": 50}, "rate_limit.bulk_share"),  # a share of no cap
        ({"per_second": None}, "rate_limit.per_second"),  # null is no integer
        ({"per_second": 5, "per_day": None}, "rate_limit.per_day"),
        ({"per_day": 10, "bulk_share": None}, "rate_limit.bulk_share"),
    ],
)
def test_bad_channel_caps_name_their_field(body: object, field: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_channel_cap(body)
    assert [e.field for e in caught.value.errors] == [field]


def test_windows() -> None:
    assert parse_channel_cap({}) is None
    cap = parse_channel_cap({"per_second": 3, "per_day": 9})
    assert cap == ChannelCap(3, 9)
    second, day = cap.windows("mail")
    assert (second.length_ms, second.cap, day.length_ms, day.cap) == (1000, 3, DAY_MS, 9)
    assert second.start(12_345) == 12_000 and second.end(12_345) == 13_000
    limit = parse_key_limit({"per_second": 100, "burst": 250})
    assert limit == KeyLimit(100, 250)
    assert limit.window("k").length_ms == 2500  # 250 tokens, refilled every 2.5 s
    assert limit.policy() == '"bucket";q=250;w=3'
    assert parse_key_limit({"per_second": 4}) == KeyLimit(4, 4)
    with pytest.raises(DomainError) as caught:  # a null burst is no integer, not left out
        parse_key_limit({"per_second": 4, "burst": None})
    assert [e.field for e in caught.value.errors] == ["rate_limit.burst"]


def test_bulk_windows_keep_a_reserve_for_transactional_sends() -> None:
    cap = parse_channel_cap({"per_second": 10, "per_day": 1000})
    assert cap == ChannelCap(10, 1000, 90)  # the documented default share
    assert cap.as_dict() == {"per_second": 10, "per_day": 1000, "bulk_share": 90}
    second, day = cap.bulk_windows("mail")
    assert (second.scope, second.length_ms, second.cap) == ("channel:mail:second:bulk", 1000, 9)
    assert (day.scope, day.length_ms, day.cap) == ("channel:mail:day:bulk", DAY_MS, 900)
    # A window too small to keep anything back has no bulk window; a share leaves at least 1.
    [day] = ChannelCap(per_second=1, per_day=3, bulk_share=50).bulk_windows("mail")
    assert day.cap == 1
    assert ChannelCap(per_second=1, per_day=10, bulk_share=100).bulk_windows("mail") == []


# A counter's (window start, used) at 2026-12-07T17:20:30.250Z.
NOW_MS = 1_796_664_030_250
DAY_START = NOW_MS - NOW_MS % DAY_MS
SECOND_START = NOW_MS - NOW_MS % SECOND_MS


def test_a_caps_use_counts_the_current_windows_only() -> None:
    cap = ChannelCap(per_second=20, per_day=50)
    counters = {
        "channel:mail:second": (SECOND_START - SECOND_MS, 20),  # the last second's: none now
        "channel:mail:day": (DAY_START, 50),
        "channel:mail:day:bulk": (DAY_START, 12),
    }
    second, day = cap_use(cap, "mail", counters, NOW_MS)
    assert second.as_dict() == {
        "used": 0,
        "limit": 20,
        "resets_at": "2026-12-07T17:20:31.000Z",
        "bulk": {"used": 0, "limit": 18},
    }
    assert day.as_dict() == {
        "used": 50,
        "limit": 50,
        "resets_at": "2026-12-08T00:00:00.000Z",
        "bulk": {"used": 12, "limit": 45},
    }
    # Never counted yet: nothing used. A share of 100 keeps nothing back: no bulk part.
    [fresh] = cap_use(ChannelCap(per_day=5, bulk_share=100), "sms", {}, NOW_MS)
    assert fresh.as_dict() == {"used": 0, "limit": 5, "resets_at": "2026-12-08T00:00:00.000Z"}


def test_a_held_event_is_told_the_window_it_waits_for() -> None:
    cap = ChannelCap(per_second=4, per_day=10, bulk_share=50)

    def reason(bulk: bool, **used: int) -> str | None:
        counters = {
            f"channel:mail:{scope.replace('_', ':')}": (
                DAY_START if scope.startswith("day") else SECOND_START,
                n,
            )
            for scope, n in used.items()
        }
        return held_reason("mail", cap, cap_use(cap, "mail", counters, NOW_MS), bulk)

    assert reason(False, second=3, day=9) is None
    assert reason(False, second=4, day=9) == (
        "waiting for the per-second cap of channel configuration 'mail' (4 per second),"
        " which resets at 2026-12-07T17:20:31.000Z"
    )
    # Both spent: the day is what it waits for.
    assert reason(False, second=4, day=10) == (
        "waiting for the daily cap of channel configuration 'mail' (10 per day),"
        " which resets at 2026-12-08T00:00:00.000Z"
    )
    # The bulk share holds bulk events only.
    assert reason(False, second=1, day=5, day_bulk=5) is None
    assert reason(True, second=1, day=5, day_bulk=5) == (
        "waiting for the bulk share of the daily cap of channel configuration 'mail'"
        " (bulk_share 50 %: 5 of its 10 per day), which resets at 2026-12-08T00:00:00.000Z"
    )
