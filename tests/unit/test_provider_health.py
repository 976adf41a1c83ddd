"""Provider warnings: one per provider a window while it fails, with the failures not logged
since; INFO once it works again; a message's refusal is neither warned nor counted, and a
breaker opened by such refusals is warned without their text."""

from __future__ import annotations

import logging

import pytest

from txmsg.core.breaker import BreakerSettings
from txmsg.core.delivery import PermanentSendError, TransientSendError
from txmsg.engine.failover import Failover, Relay
from txmsg.engine.provider_health import ProviderHealth
from txmsg.metrics import Metrics

LOGGER = "txmsg.providers"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_one_warning_a_window_per_provider_then_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock, metrics = Clock(), Metrics()
    watch = ProviderHealth(metrics, every=60, clock=clock).watch("email", "mail")
    refused = TransientSendError("535 5.7.8 Authentication credentials invalid", fault="auth")
    for _ in range(5):
        watch.failed("mx1:587", refused, False)
        clock.now += 10
    watch.failed("mx2:25", TransientSendError("connection refused", fault="connect"), False)
    assert lines(caplog) == [
        (
            logging.WARNING,
            "channel configuration 'mail': provider mx1:587 failing (auth): 535 5.7.8"
            " Authentication credentials invalid; sends are retried",
        ),
        (
            logging.WARNING,
            "channel configuration 'mail': provider mx2:25 failing (connect): connection"
            " refused; sends are retried",
        ),
    ]
    caplog.clear()
    clock.now += 15  # 65 s after the first warning
    watch.failed("mx1:587", refused, False)
    [(level, again)] = lines(caplog)
    assert level == logging.WARNING and again.endswith("; 4 more failure(s) since the last warning")
    watch.succeeded("mx1:587")
    watch.succeeded("mx1:587")  # once
    assert lines(caplog)[1:] == [
        (logging.INFO, "channel configuration 'mail': provider mx1:587 recovered")
    ]
    text = metrics.exposition().decode()
    assert (
        'txmsg_provider_failures_total{channel="email",kind="auth",provider="mx1:587"} 6.0' in text
    )


async def test_a_refused_message_is_no_provider_failure_but_a_breaker_opening_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    metrics = Metrics()
    health = ProviderHealth(metrics)

    async def refuse(error: Exception) -> str:
        raise error

    relays = [Relay("mx1:25", object()), Relay("mx2:25", object())]
    failover = Failover(
        relays,  # type: ignore[arg-type]
        BreakerSettings(failures=2, cool_down=600),
        watch=health.watch("email", "mail"),
    )
    with pytest.raises(PermanentSendError):
        await failover.call(lambda _: refuse(PermanentSendError("550 <ann@example.org> unknown")))
    for _ in range(2):  # each relay refuses a recipient for now, twice: both breakers open
        with pytest.raises(TransientSendError):
            await failover.call(lambda _: refuse(TransientSendError("450 <ann@example.org> later")))
    logged = lines(caplog)
    assert [level for level, _ in logged] == [logging.WARNING, logging.WARNING]
    assert "provider mx1:25 resting after transient failures" in logged[0][1]
    assert all("ann@example.org" not in line and "450" not in line for _, line in logged)
    assert "txmsg_provider_failures_total{" not in metrics.exposition().decode()
