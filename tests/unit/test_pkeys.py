"""PKeys: 26 Crockford base32 digits, time-ordered, with 80 random bits."""

from __future__ import annotations

import time

from txmsg.core.queue import new_pkey

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _millisecond(pkey: str) -> int:
    """The time a key was made, read back from its first 10 digits (50 bits: the
    millisecond, then 2 zero bits)."""
    value = 0
    for digit in pkey[:10]:
        value = value * 32 + CROCKFORD.index(digit)
    assert value & 3 == 0
    return value >> 2


def test_a_pkey_is_26_crockford_digits_starting_with_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    pkeys = [new_pkey() for _ in range(10_000)]
    after = time.time_ns() // 1_000_000
    assert all(len(k) == 26 and set(k) <= set(CROCKFORD) for k in pkeys)
    assert len(set(pkeys)) == len(pkeys)
    assert all(before <= _millisecond(k) <= after for k in pkeys)


def test_later_pkeys_sort_after_earlier_ones() -> None:
    first = new_pkey()
    time.sleep(0.002)
    second = new_pkey()
    assert _millisecond(second) > _millisecond(first)
    assert second > first


def test_the_random_digits_take_every_value_evenly() -> None:
    counts = dict.fromkeys(CROCKFORD, 0)
    for _ in range(4_000):
        for digit in new_pkey()[10:]:
            counts[digit] += 1
    expected = 4_000 * 16 / 32  # 2,000 of each
    assert all(abs(n - expected) < 0.15 * expected for n in counts.values()), counts
