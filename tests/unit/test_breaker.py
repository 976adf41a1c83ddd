"""The circuit breaker's states: closed, open for a cool-down, one half-open probe."""

from __future__ import annotations

from txmsg.core.breaker import BreakerSettings, CircuitBreaker, State


def test_opens_after_consecutive_failures_and_probes_once_after_the_cool_down() -> None:
    breaker = CircuitBreaker(BreakerSettings(failures=3, cool_down=10))
    breaker.failed(0)
    breaker.failed(1)
    breaker.succeeded()  # a success in between: the count starts again
    breaker.failed(2)
    breaker.failed(3)
    assert breaker.allow(3) and breaker.state == State.CLOSED
    breaker.failed(4)
    assert breaker.state == State.OPEN and not breaker.allow(13.9)
    assert breaker.allow(14) and breaker.state == State.HALF_OPEN  # the probe
    assert not breaker.allow(14.1)  # only one probe at a time
    breaker.failed(15)  # the probe failed: open for another cool-down
    assert breaker.state == State.OPEN and not breaker.allow(24.9)
    assert breaker.allow(25)
    breaker.released()  # the probe was cancelled: the next send probes
    assert breaker.allow(25.1)
    breaker.succeeded()
    assert breaker.state == State.CLOSED and breaker.allow(25.2)
