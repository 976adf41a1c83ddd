"""Rate limits as values: parsing (bounded, naming the field) and window arithmetic."""

from __future__ import annotations

import pytest

from txmsg.config import Settings
from txmsg.core.errors import DomainError
from txmsg.core.rate_limit import (
    DAY_MS,
    ChannelCap,
    KeyLimit,
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
