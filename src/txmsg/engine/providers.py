"""Channel providers per channel configuration, rebuilt when the configuration changes."""

from __future__ import annotations

import asyncio
from typing import Protocol

from txmsg.channels.smtp import SMTPPool, SMTPSettings
from txmsg.channels.twilio import TwilioSender, TwilioSettings
from txmsg.core.mime import Sender
from txmsg.store.routing import Route

# Sends already under way on a superseded pool get this long to finish before it is closed.
RETIRE_GRACE_SECONDS = 120.0


class EmailProvider(Protocol):
    async def send(self, envelope_from: str, recipients: list[str], data: bytes) -> str: ...

    async def close(self) -> None: ...


def smtp_provider(route: Route) -> EmailProvider:
    smtp = route.settings["smtp"]
    return SMTPPool(
        SMTPSettings(
            host=smtp["host"],
            port=smtp["port"],
            tls=smtp["tls"],
            username=smtp.get("username"),
            password=route.secrets.get("password"),
            timeout=smtp.get("timeout", 30.0),
            pool_size=smtp.get("pool_size", 8),
        )
    )


class SmsProvider(Protocol):
    async def send(self, to: str, body: str, callback_pkey: str | None = None) -> str: ...

    async def close(self) -> None: ...


def twilio_provider(route: Route) -> SmsProvider:
    twilio = route.settings["twilio"]
    return TwilioSender(
        TwilioSettings(
            account_sid=twilio["account_sid"],
            auth_token=route.secrets.get("auth_token", ""),
            from_number=twilio.get("from_number"),
            messaging_service_sid=twilio.get("messaging_service_sid"),
            status_callback_base_url=twilio.get("status_callback_base_url"),
            api_base_url=twilio["api_base_url"],
            timeout=twilio.get("timeout", 30.0),
        )
    )


class Providers:
    """One pooled provider (and prepared sender headers) per channel configuration revision."""

    def __init__(self) -> None:
        self._email: dict[str, tuple[int, EmailProvider, Sender]] = {}
        self._sms: dict[str, tuple[int, SmsProvider]] = {}
        self._retired: dict[EmailProvider | SmsProvider, asyncio.Task[None]] = {}

    def email(self, route: Route) -> tuple[EmailProvider, Sender]:
        revision = route.channel_config_revision or 0
        current = self._email.get(route.channel_config)
        if current is not None and current[0] == revision:
            return current[1], current[2]
        provider = smtp_provider(route)
        settings = route.settings
        sender = Sender.build(
            settings["from_email"], settings.get("from_name"), settings.get("reply_to")
        )
        if current is not None:
            self._retire(current[1])
        self._email[route.channel_config] = (revision, provider, sender)
        return provider, sender

    def sms(self, route: Route) -> SmsProvider:
        """The SMS provider of the route's channel configuration, one per revision."""
        revision = route.channel_config_revision or 0
        current = self._sms.get(route.channel_config)
        if current is not None and current[0] == revision:
            return current[1]
        provider = twilio_provider(route)
        if current is not None:
            self._retire(current[1])
        self._sms[route.channel_config] = (revision, provider)
        return provider

    def _retire(self, provider: EmailProvider | SmsProvider) -> None:
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
        for _, provider, _ in self._email.values():
            await provider.close()
        self._email.clear()
        for _, sms in self._sms.values():
            await sms.close()
        self._sms.clear()
