"""Channel providers per channel configuration, rebuilt when the configuration changes."""

from __future__ import annotations

import asyncio
import importlib
import sys

from txmsg.channels.smtp import SMTPPool
from txmsg.core.delivery import EmailProvider
from txmsg.core.email_config import EmailSettings
from txmsg.core.mime import Sender
from txmsg.core.twilio_config import SmsSettings
from txmsg.engine.failover import Closable, FailoverSender, Relay, SmsFailover, SmsProvider
from txmsg.engine.provider_health import ProviderHealth
from txmsg.metrics import Metrics

_TWILIO = "txmsg.channels.twilio"

# Sends already under way on a superseded pool get this long to finish before it is closed.
RETIRE_GRACE_SECONDS = 120.0


class Providers:
    """One pooled provider (and prepared sender headers) per channel configuration revision.

    Keyed by the configuration's name; a new revision replaces the provider, and the old one
    is closed once the sends under way on it have had time to finish. A configuration
    deleted and created again under its name starts again at revision 1: its settings tell
    it apart (the same object while the route is cached, so mostly an `is`).
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        # Kept across revisions: a fixed password's first send tells the failure is over.
        self._health = ProviderHealth(metrics)
        self._email: dict[str, tuple[int, EmailSettings, FailoverSender, Sender]] = {}
        self._sms: dict[str, tuple[int, SmsSettings, SmsFailover]] = {}
        self._retired: dict[Closable, asyncio.Task[None]] = {}

    def email(
        self, config: str, revision: int, settings: EmailSettings
    ) -> tuple[FailoverSender, Sender]:
        """The SMTP relays (pools) of the channel configuration `config`, its primary then
        its fallbacks, and its sender headers."""
        current = self._email.get(config)
        if current is not None and current[0] == revision and _same(current[1], settings):
            return current[2], current[3]
        # Messages come signed (DKIM) by the render workers: a relay sends bytes.
        relays: list[Relay[EmailProvider]] = [
            Relay(f"{smtp.host}:{smtp.port}", SMTPPool(smtp))
            for smtp in (settings.smtp, *settings.fallbacks)
        ]
        provider = FailoverSender(
            relays, settings.breaker, watch=self._health.watch("email", config)
        )
        sender = Sender.build(settings.from_email, settings.from_name, settings.reply_to)
        if current is not None:
            self._retire(current[2])
        self._email[config] = (revision, settings, provider, sender)
        return provider, sender

    async def load_sms(self) -> None:
        """Twilio's library (with aiohttp and requests), about 0.2 s of imports: loaded before
        the first SMS send, in a thread (the event loop keeps serving meanwhile), not by every
        process's start."""
        if _TWILIO not in sys.modules:
            await asyncio.to_thread(importlib.import_module, _TWILIO)

    def sms(self, config: str, revision: int, settings: SmsSettings) -> SmsFailover:
        """The Twilio senders of the channel configuration `config`, its primary then its
        fallbacks."""
        current = self._sms.get(config)
        if current is not None and current[0] == revision and _same(current[1], settings):
            return current[2]
        from txmsg.channels.twilio import TwilioSender  # loaded by load_sms

        relays: list[Relay[SmsProvider]] = [
            Relay(twilio.provider_name, TwilioSender(twilio))
            for twilio in (settings.twilio, *settings.fallbacks)
        ]
        provider = SmsFailover(relays, settings.breaker, watch=self._health.watch("sms", config))
        if current is not None:
            self._retire(current[2])
        self._sms[config] = (revision, settings, provider)
        return provider

    def _retire(self, provider: Closable) -> None:
        async def close_later() -> None:
            await asyncio.sleep(RETIRE_GRACE_SECONDS)
            self._retired.pop(provider, None)
            await provider.close()

        self._retired[provider] = asyncio.create_task(close_later())

    async def close(self) -> None:
        for provider, task in list(self._retired.items()):
            task.cancel()
            await provider.close()
        self._retired.clear()
        for _, _, provider, _ in self._email.values():
            await provider.close()
        self._email.clear()
        for _, _, sms in self._sms.values():
            await sms.close()
        self._sms.clear()


def _same(known: EmailSettings | SmsSettings, settings: EmailSettings | SmsSettings) -> bool:
    return known is settings or known == settings
