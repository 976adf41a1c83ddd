"""Email provider failover: the configuration's relays in order, each behind a circuit breaker.

A send goes to the first relay whose breaker lets it through. A transient failure (refused,
timed out, 421 and other 4xx) counts against that relay's breaker and the send goes on to the
next relay at once, without waiting for the event's retry back-off; when every relay failed or
is open, the last transient error is the send's (the event is retried). A permanent refusal
(5xx) is the message's fault, not the relay's: it ends the send, with no failover.

Breakers are per process: each worker learns on its own that a relay is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from txmsg.core.breaker import BreakerSettings, CircuitBreaker
from txmsg.core.delivery import EmailProvider, PermanentSendError, TransientSendError


@dataclass(frozen=True, slots=True)
class Relay:
    name: str  # how the delivery log names it: host:port
    provider: EmailProvider


class FailoverSender:
    """An email provider over several relays; `send_via` also says which relay sent."""

    def __init__(
        self,
        relays: Sequence[Relay],
        settings: BreakerSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relays = list(relays)
        self._breakers = [CircuitBreaker(settings) for _ in relays]
        self._clock = clock

    async def send_via(
        self, envelope_from: str, recipients: list[str], data: bytes
    ) -> tuple[str, str]:
        """(the relay's name, its reply) of the first relay that accepted the message."""
        last: TransientSendError | None = None
        alone = len(self._relays) == 1  # no other relay to turn to: always try it
        for relay, breaker in zip(self._relays, self._breakers, strict=True):
            if not (alone or breaker.allow(self._clock())):
                continue
            try:
                reply = await relay.provider.send(envelope_from, recipients, data)
            except TransientSendError as exc:
                breaker.failed(self._clock())
                last = exc
                continue
            except PermanentSendError:
                breaker.succeeded()  # the relay works; the message is refused anywhere
                raise
            except BaseException:
                breaker.released()  # cancelled mid-probe: another send may probe
                raise
            breaker.succeeded()
            return relay.name, reply
        if last is None:
            raise TransientSendError("every SMTP relay of the configuration is resting (open)")
        raise last

    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str:
        return (await self.send_via(envelope_from, recipients, data))[1]

    async def close(self) -> None:
        for relay in self._relays:
            await relay.provider.close()
