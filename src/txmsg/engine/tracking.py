"""The dispatcher's tracking step: open pixel and click redirects in tracked HTML emails.

Only emails of channel configurations with tracking on are touched: the others pay one
attribute check. The tracking secret is read once per process, when a batch first holds a
tracked event.
"""

from __future__ import annotations

from collections.abc import Iterable

from txmsg.core.email_config import EmailSettings
from txmsg.core.tracking import SECRET_NAME, LinkTracker, TrackingSettings
from txmsg.store.routing import Route
from txmsg.store.secrets import ServerSecrets


class Tracking:
    def __init__(self, secrets: ServerSecrets, public_url: str) -> None:
        self._secrets = secrets
        self._public_url = public_url
        self._tracker: LinkTracker | None = None

    async def prepare(self, routes: Iterable[Route]) -> None:
        """Before a batch is sent: the secret, if one of its routes tracks."""
        if self._tracker is None and any(
            isinstance(r.settings, EmailSettings) and r.settings.tracking.on for r in routes
        ):
            secret = await self._secrets.get_or_create(SECRET_NAME)
            self._tracker = LinkTracker(secret, self._public_url)

    def apply(
        self, tracking: TrackingSettings, pkey: str, rendered: dict[str, str]
    ) -> dict[str, str]:
        """The rendered parts with the HTML part tracked as the channel configuration says."""
        body = rendered.get("html")
        if not tracking.on or not body:
            return rendered
        assert self._tracker is not None, "prepare() loads the secret for tracked routes"
        return {**rendered, "html": self._tracker.rewrite(body, pkey, tracking)}
