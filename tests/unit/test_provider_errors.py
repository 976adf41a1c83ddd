"""What the engine keeps of a provider's error: credentials masked in every form a provider
may echo them, and its Retry-After read within bounds."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from txmsg.core.delivery import PermanentSendError, TransientSendError, credential_forms, masked
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


def test_a_short_secret_is_masked_only_where_it_stands_alone() -> None:
    """A short password ("p") or token ("t2") occurs by chance inside host names, words and
    numbers: masked there, the text is mangled and the stars show the secret."""
    smtp = credential_forms("u", "p")
    for text in (
        "Error connecting to 127.0.0.1 on port 18699",
        "relay2.example.com on port 587: [Errno 111] Connect call failed",
        "535 5.7.8 Authentication credentials invalid",
        "smtp-p.example.com: p-value p_x",
    ):
        assert masked(text, smtp) == text
        assert PermanentSendError(text).masking(smtp).reason == text
    assert masked("password 'p' refused", smtp) == "password '***' refused"
    assert masked("p", smtp) == "***"
    assert masked("auth=p.", smtp) == "auth=***."
    # Its base64 forms too: "cA" (of "p") inside a word stays, standing alone it goes.
    assert masked("cAll cA cA== dTpw", smtp) == "cAll *** *** ***"
    sms = credential_forms("AC02", "t2")
    reason = "HTTP 401 from https://api.twilio.com/2010-04-01/Accounts/AC02 (t2x t2)"
    assert masked(reason, sms) == reason.replace("(t2x t2)", "(t2x ***)")
    basic = base64.b64encode(b"AC02:t2").decode()
    assert masked(f"Basic {basic}", sms) == "Basic ***"
    # A long one goes wherever it is, inside a longer run as well.
    assert masked("xtok3n-secretx", credential_forms("u", "tok3n-secret")) == "x***x"


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
