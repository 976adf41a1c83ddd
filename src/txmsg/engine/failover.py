"""Provider failover: a channel configuration's providers in order, each behind a breaker.

A send goes to the first provider whose breaker lets it through. A transient failure (SMTP:
refused, timed out, 421 and other 4xx; Twilio: connection errors, time-outs, 5xx, 429)
counts against that provider's breaker and the send goes on to the next provider at once,
without waiting for the event's retry back-off; when every provider failed or is open, the
last transient error of a provider that saw the send is the send's (the event is retried), or,
when none saw it (all resting), `NotAttempted`: its channel cap's tokens go back. A permanent
refusal (SMTP 5xx, Twilio 4xx such as 21211) is the message's fault, not the provider's: it
ends the send, with no failover.

Breakers are per process: each worker learns on its own that a provider is down. Each
provider's failures and recoveries are also told to a `Watch` (`engine/provider_health.py`:
the operator's warning and the failure count by kind).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from txmsg.core.breaker import BreakerSettings, CircuitBreaker, State
from txmsg.core.delivery import (
    EmailProvider,
    NotAttempted,
    PermanentSendError,
    SendError,
    TransientSendError,
)


class Closable(Protocol):
    async def close(self) -> None: ...


class Watch(Protocol):
    """Told of each provider's failures (`opened`: its breaker opened) and successes."""

    def failed(self, provider: str, error: SendError, opened: bool) -> None: ...

    def succeeded(self, provider: str) -> None: ...


class _Unwatched:
    def failed(self, provider: str, error: SendError, opened: bool) -> None:
        pass

    def succeeded(self, provider: str) -> None:
        pass


P = TypeVar("P", bound=Closable)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Relay(Generic[P]):
    name: str  # how the delivery log names it: host:port, or the Twilio account and sender
    provider: P


class Failover(Generic[P]):
    """Providers tried in order, each behind its own circuit breaker."""

    def __init__(
        self,
        relays: Sequence[Relay[P]],
        settings: BreakerSettings,
        clock: Callable[[], float] = time.monotonic,
        watch: Watch | None = None,
    ) -> None:
        self._relays = list(relays)
        self._breakers = [CircuitBreaker(settings) for _ in relays]
        self._clock = clock
        self._watch: Watch = watch or _Unwatched()

    async def call(self, send: Callable[[P], Awaitable[T]]) -> tuple[str, T]:
        """(the provider's name, its answer) of the first provider that accepted the send."""
        last: TransientSendError | None = None
        seen: TransientSendError | None = None  # the last error of a provider that saw it
        alone = len(self._relays) == 1  # no other provider to turn to: always try it
        for relay, breaker in zip(self._relays, self._breakers, strict=True):
            if not (alone or breaker.allow(self._clock())):
                continue
            try:
                answer = await send(relay.provider)
            except TransientSendError as exc:
                was_open = breaker.state == State.OPEN
                breaker.failed(self._clock())
                last = exc
                if not isinstance(exc, NotAttempted):
                    seen = exc
                    opened = not was_open and breaker.state == State.OPEN
                    self._watch.failed(relay.name, exc, opened)
                continue
            except PermanentSendError as exc:
                breaker.succeeded()  # the provider works; the message is refused anywhere
                if exc.fault is None:
                    self._watch.succeeded(relay.name)
                else:  # it answered, refusing the configuration (a sender not the account's)
                    self._watch.failed(relay.name, exc, False)
                raise
            except BaseException:
                breaker.released()  # cancelled mid-probe: another send may probe
                raise
            breaker.succeeded()
            self._watch.succeeded(relay.name)
            return relay.name, answer
        if seen is not None:  # a provider saw the send: it counted against the channel's cap
            raise seen
        if last is None:
            raise NotAttempted("every provider of the configuration is resting (open)")
        raise last

    async def close(self) -> None:
        for relay in self._relays:
            await relay.provider.close()


class FailoverSender(Failover[EmailProvider]):
    """An email provider over several SMTP relays; `send_via` also says which relay sent."""

    async def send_via(
        self, envelope_from: str, recipients: list[str], data: bytes
    ) -> tuple[str, str]:
        """(the relay's name, its reply) of the first relay that accepted the message."""
        return await self.call(lambda relay: relay.send(envelope_from, recipients, data))

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str:
        return (await self.send_via(envelope_from, recipients, data))[1]


class SmsProvider(Protocol):
    async def send(self, to: str, body: str, callback_pkey: str | None = None) -> str: ...

    async def close(self) -> None: ...


class SmsFailover(Failover[SmsProvider]):
    """An SMS provider over several Twilio accounts or messaging services."""

    async def send_via(
        self, to: str, body: str, callback_pkey: str | None = None
    ) -> tuple[str, str]:
        """(the provider's name, the message SID) of the first provider that took the SMS."""
        return await self.call(lambda twilio: twilio.send(to, body, callback_pkey))
