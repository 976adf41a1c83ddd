"""Proof sends: a rendered message straight to test addresses, outside the queue.

Proofs are not events: they are never counted by fatigue rules nor in reports. They use a
provider pool of their own so that they never take a connection from live traffic. They are
DKIM-signed as live sends are, by the render workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from txmsg.core.delivery import SendError
from txmsg.core.email_config import EmailSettings
from txmsg.core.errors import unprocessable
from txmsg.core.mime import Sender
from txmsg.engine.providers import Providers
from txmsg.sandbox.pool import Renderer, SigningFailed
from txmsg.store.db import Database
from txmsg.store.routing import load_routes

BuildEmail = Callable[[Sender, str], bytes]


class ProofSender:
    def __init__(self, db: Database, renderer: Renderer) -> None:
        self._db = db
        self._renderer = renderer
        self._providers = Providers()

    async def send(
        self, event_id: str, addresses: list[str], build: BuildEmail
    ) -> list[dict[str, Any]]:
        """Send to each address in turn; one result per address (`sent` or `failed`)."""
        route = (await self._db.read(load_routes, {event_id})).get(event_id)
        if route is None or not isinstance(route.settings, EmailSettings):
            raise unprocessable("the event's channel configuration is missing or not an email one")
        provider, sender = self._providers.email(
            route.channel_config, route.channel_config_revision or 0, route.settings
        )
        dkim = route.settings.dkim
        results: list[dict[str, Any]] = []
        for address in addresses:
            data = build(sender, address)
            try:
                if dkim is not None:
                    data = await self._renderer.sign(dkim, data) + data
                reply = await provider.send(sender.envelope_from, [address], data)
            except SigningFailed as exc:
                results.append({"address": address, "status": "failed", "reason": exc.reason})
            except SendError as exc:
                results.append({"address": address, "status": "failed", "reason": exc.reason})
            else:
                results.append({"address": address, "status": "sent", "reason": reply})
        return results

    async def close(self) -> None:
        await self._providers.close()
