"""What the engine keeps of a provider's error: credentials masked in every form a provider
may echo them, and its Retry-After read within bounds."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from txmsg.core.delivery import PermanentSendError, TransientSendError, credential_forms
from txmsg.core.retry import MAX_RETRY_AFTER_SECONDS, RetryPolicy, retry_after_seconds

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_every_echoed_form_of_a_credential_is_masked() -> None:
    basic = base64.b64encode(b"AC123:tok3n-secret").decode()
    plain = base64.b64encode(b"\0shop\0tok3n-secret").decode()
    login = base64.b64encode(b"tok3n-secret").decode().rstrip("=")
    error = TransientSendError(f"bad: tok3n-secret Basic {basic} {plain} {login}", 3.0)
    masked = error.masking(credential_forms("AC123", "tok3n-secret"))
    masked_plain = error.masking(credential_forms("shop", "tok3n-secret"))
    assert "tok3n-secret" not in masked.reason and basic not in masked.reason
    assert plain not in masked_plain.reason and login not in masked_plain.reason
    assert isinstance(masked, TransientSendError) and masked.retry_after == 3.0
    # Nothing to mask: the same error; cut to length only after masking.
    untouched = PermanentSendError("550 no such user")
    assert untouched.masking(credential_forms("u", "p4ss")) is untouched
    assert credential_forms("u", "") == []
    cut = PermanentSendError("x" * 10 + "tok3n-secret").masking(
        credential_forms("u", "tok3n-secret"), 12
    )
    assert cut.reason == "x" * 10 + "**"


def test_retry_after_in_seconds_or_as_a_date_within_bounds() -> None:
    assert retry_after_seconds("2", NOW) == 2.0
    assert retry_after_seconds(format_datetime(NOW + timedelta(seconds=30), True), NOW) == 30.0
    assert retry_after_seconds(format_datetime(NOW - timedelta(hours=1), True), NOW) == 0.0
    assert retry_after_seconds("99999999999", NOW) == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None
    policy = RetryPolicy(base_seconds=0.05, max_seconds=0.2)
    assert policy.delay(1, at_least=2.0) == 2.0
    assert policy.delay(1, at_least=0.0) <= 0.2
