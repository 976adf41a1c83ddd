"""Numeric settings from the environment: a value no setting can hold is one clear line
(SystemExit), never a traceback at start or a job failing every sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from txmsg.config import Settings


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("TXMSG_EXPORT_RETENTION_DAYS", "nan"),
        ("TXMSG_EXPORT_RETENTION_DAYS", "inf"),
        ("TXMSG_EXPORT_RETENTION_DAYS", "1e308"),
        ("TXMSG_EXPORT_RETENTION_DAYS", "1000000"),  # dates before year 1: the purge failed
        ("TXMSG_INTERACTION_INACTIVITY_DAYS", "1e12"),
        ("TXMSG_LEASE_SECONDS", "1e15"),
        ("TXMSG_POLL_INTERVAL", "-inf"),
        ("TXMSG_MAX_IN_FLIGHT", "nan"),
    ],
)
def test_a_number_no_setting_can_hold_is_refused_naming_it(name: str, raw: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.from_env({name: raw})
    assert str(refused.value).startswith(f"{name} must be a number up to"), refused.value


def test_large_but_sound_values_are_taken() -> None:
    env = {"TXMSG_EXPORT_RETENTION_DAYS": "36500", "TXMSG_LEASE_SECONDS": "86400"}
    settings = Settings.from_env(env)
    assert settings.export_retention == timedelta(days=36500)
    assert settings.lease == timedelta(days=1)
