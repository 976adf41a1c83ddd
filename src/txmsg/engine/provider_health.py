"""Providers failing, told to the operator: a WARNING while it lasts, an INFO once it is over.

A provider refusing the engine's credentials or configuration (SMTP 535 at AUTH, STARTTLS
refused, a certificate that does not verify, Twilio 401/20003, a From number not the
account's), not answering, or refusing its service (SMTP 421, Twilio 5xx) is the
configuration's problem, not one message's: its sends are retried (or go to the next provider)
and nothing else would say so. So each such failure counts in
`txmsg_provider_failures_total{channel, provider, kind}`, and one WARNING names the channel
configuration, the provider (`host:port`, or the Twilio account SID and sender: never a
password or token), the kind and the provider's own reply, at most once per provider every
`every` seconds while it fails (with how many failures were not logged since). A breaker
opening after transient failures of other kinds is warned about the same way, without the
replies (a refusal of one message may name its recipient). The first success afterwards logs
one INFO: "recovered".

Per process, as the breakers are: each worker tells what it sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from txmsg.core.delivery import SendError
from txmsg.metrics import Metrics

log = logging.getLogger("txmsg.providers")

WARN_EVERY_SECONDS = 60.0


@dataclass(slots=True)
class _Trouble:
    warned_at: float
    unlogged: int = 0  # failures since the last warning


class ProviderHealth:
    """What this process knows of its providers' failures, by configuration and provider."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        every: float = WARN_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._every = every
        self._clock = clock
        self._troubles: dict[tuple[str, str], _Trouble] = {}

    def watch(self, channel: str, config: str) -> ConfigWatch:
        """What the providers of one channel configuration report to."""
        return ConfigWatch(self, channel, config)

    def failed(
        self, channel: str, config: str, provider: str, error: SendError, opened: bool
    ) -> None:
        """A send through `provider` failed with `error`; `opened`: its breaker opened."""
        if error.fault is None and not opened:
            return  # the message's refusal, or a transient error the breaker may yet forgive
        if error.fault is not None and self._metrics is not None:
            self._metrics.count_provider_failure(channel, provider, error.fault)
        key = (config, provider)
        now = self._clock()
        trouble = self._troubles.get(key)
        if trouble is not None and now - trouble.warned_at < self._every:
            trouble.unlogged += 1
            return
        unlogged = trouble.unlogged if trouble is not None else 0
        self._troubles[key] = _Trouble(now)
        since = f"; {unlogged} more failure(s) since the last warning" if unlogged else ""
        if error.fault is not None:
            log.warning(
                "channel configuration %r: provider %s failing (%s): %s; sends are retried%s",
                config,
                provider,
                error.fault,
                error.reason,
                since,
            )
        else:
            log.warning(
                "channel configuration %r: provider %s resting after transient failures in a"
                " row (its breaker opened); sends are retried%s",
                config,
                provider,
                since,
            )

    def succeeded(self, config: str, provider: str) -> None:
        """`provider` answered (it sent, or refused one message for good): it works."""
        trouble = self._troubles.pop((config, provider), None)
        if trouble is not None:
            log.info("channel configuration %r: provider %s recovered", config, provider)


@dataclass(frozen=True, slots=True)
class ConfigWatch:
    """`ProviderHealth` for the providers of one channel configuration."""

    health: ProviderHealth
    channel: str
    config: str

    def failed(self, provider: str, error: SendError, opened: bool) -> None:
        self.health.failed(self.channel, self.config, provider, error, opened)

    def succeeded(self, provider: str) -> None:
        self.health.succeeded(self.config, provider)
