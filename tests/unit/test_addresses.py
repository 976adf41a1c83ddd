"""The fast address check agrees with email-validator, which stays the authority."""

from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from txmsg.core.addresses import _plain, normalize_email
from txmsg.core.errors import DomainError

SAMPLES = [
    "ada@example.org",
    "Ada.Lovelace+cart@Mail.Example.COM",
    "a@b.co",
    "x@localhost",
    "x@printer.local",
    "x@host.test",
    "x@example.invalid",
    "x@1.2.3.4",
    "x@example.123",
    "x@-example.com",
    "x@example-.com",
    ".x@example.com",
    "x.@example.com",
    "x..y@example.com",
    "x@example..com",
    "x@example",
    "x@example.c1",
    "x@ab--cd.com",
    "x@xn--zz.com",
    "x@b.xn--p1ai",
    "o'brien@example.ie",
    "{weird}~ok@example.com",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "x@" + "a" * 63 + ".com",
    "x@" + "a" * 64 + ".com",
    "a" * 64 + "@example.org",
    "a" * 65 + "@example.org",  # RFC 5321: at most 64 characters before the @
    '"' + "a" * 70 + '"@example.org',
    "x@" + ".".join(["abcdefghij"] * 24) + ".com",
    "zoë@example.com",
    "x@exämple.com",
    "Ada <ada@example.org>",
    "ada@example.org\r\nBcc: evil@example.com",
    "ada @example.org",
    "@example.org",
    "ada@",
    "",
]


def _reference(value: str) -> str | None:
    try:
        info = validate_email(value, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError:
        return None
    return info.ascii_email or info.normalized


def _random_addresses(n: int) -> list[str]:
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + ".-_+'!#~" + "@"
    out = []
    for _ in range(n):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        domain = "".join(
            rng.choice(string.ascii_lowercase + ".-" + string.digits)
            for _ in range(rng.randint(0, 14))
        )
        out.append(f"{local}@{domain}")
    return out


@pytest.mark.parametrize("value", SAMPLES)
def test_fast_path_never_accepts_what_email_validator_refuses(value: str) -> None:
    fast = _plain(value)
    if fast is not None:
        assert fast == _reference(value)


def test_fast_path_agrees_on_random_addresses() -> None:
    accepted = 0
    for value in _random_addresses(20000):
        fast = _plain(value)
        if fast is not None:
            accepted += 1
            assert fast == _reference(value), value
    assert accepted > 100  # the generator does produce valid addresses


@pytest.mark.parametrize("value", SAMPLES)
def test_normalize_email_matches_email_validator(value: str) -> None:
    expected = _reference(value)
    if expected is None:
        with pytest.raises(DomainError) as err:
            normalize_email(value, "email")
        assert err.value.errors[0].field == "email"
    else:
        assert normalize_email(value, "email") == expected


def test_a_local_part_past_64_characters_is_refused() -> None:
    assert normalize_email("a" * 64 + "@example.org", "email") == "a" * 64 + "@example.org"
    for value in ("a" * 65 + "@example.org", "a.b" * 40 + "@example.org"):
        with pytest.raises(DomainError) as err:
            normalize_email(value, "email")
        assert "before the @-sign" in err.value.errors[0].detail
