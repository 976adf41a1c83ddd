"""The email leg: render (tracking, unsubscribe headers), build the MIME message, sign it
(DKIM, in a render worker: off the event loop), send it through the channel configuration's
pooled SMTP connections from a VERP envelope sender.

An SMTP server's 4xx is retried later (a soft bounce when it says so), a 5xx ends the event
`deliveryFailed` (a hard bounce when it names the address); a 250 is the send and, for email,
the delivery. With message export on, the sent content goes into the export record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from txmsg.core.bounces import Bounce, classify
from txmsg.core.delivery import (
    PermanentSendError,
    SendWithdrawn,
    TransientSendError,
)
from txmsg.core.email_config import EmailSettings
from txmsg.core.export_record import ExportRecord, email_record
from txmsg.core.mime import Sender, build_email
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.render_checks import email_body_blank
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import Target
from txmsg.core.unsubscribe import list_unsubscribe_headers
from txmsg.core.verp import SECRET_NAME as VERP_SECRET
from txmsg.core.verp import bounce_address
from txmsg.engine.legs.base import LegContext, outcome_for, settings_of
from txmsg.engine.providers import Providers
from txmsg.engine.targeting import Targeting
from txmsg.engine.tracking import Tracking
from txmsg.sandbox.pool import SigningFailed
from txmsg.store.routing import Route
from txmsg.store.secrets import ServerSecrets

log = logging.getLogger(__name__)


class EmailLeg:
    def __init__(
        self,
        context: LegContext,
        providers: Providers,
        targeting: Targeting,
        tracking: Tracking,
        secrets: ServerSecrets,
    ) -> None:
        self._context = context
        self._providers = providers
        self._targeting = targeting  # unsubscribe links of profile-based events
        self._tracking = tracking
        self._secrets = secrets
        self._verp_secret: str | None = None  # loaded once a route has a bounce domain

    async def prepare(self, routes: Sequence[Route]) -> None:
        await self._tracking.prepare(routes)
        if self._verp_secret is None and any(
            isinstance(r.settings, EmailSettings) and r.settings.bounce_domain for r in routes
        ):
            self._verp_secret = await self._secrets.get_or_create(VERP_SECRET)

    async def send(self, event: ClaimedEvent, route: Route, target: Target) -> Outcome | None:
        settings = settings_of(route, EmailSettings)
        if isinstance(settings, str):
            return outcome_for(event, target, EventStatus.ROUTING_FAILED, settings)
        now = self._context.now()  # the Date header: the database's time, as `sent_at`
        address = target.address
        assert address is not None
        profile = target.profile
        unsubscribe = (
            self._targeting.unsubscribe_url(route.channel, profile.profile_id, event.pkey)
            if profile is not None
            else None
        )
        rendered = await self._context.render(event, route, target, unsubscribe)
        if isinstance(rendered, Outcome):
            return rendered
        if email_body_blank(rendered):  # the preview's warning says so (core/render_checks)
            return outcome_for(
                event,
                target,
                EventStatus.ROUTING_FAILED,
                f"message version {route.published_version} renders an empty html and text "
                "for this event",
                message_version=route.published_version,
            )
        rendered = self._tracking.apply(settings.tracking, event.pkey, rendered)
        if self._context.lease_lost(event):
            log.warning("lease of event %s lapsed before sending; leaving it", event.pkey)
            return None
        provider, sender = self._providers.email(
            route.channel_config, route.channel_config_revision or 0, settings
        )
        data = build_email(
            sender,
            address,
            rendered.get("subject", ""),
            rendered.get("text"),
            rendered.get("html"),
            message_id=event.pkey,
            date=now,
            extra_headers=list_unsubscribe_headers(unsubscribe) if unsubscribe else (),
        )
        envelope_from = self._envelope_from(event, settings, sender)

        def failed(reason: str, bounce: Bounce | None = None, seen: bool = False) -> Outcome:
            return outcome_for(
                event,
                target,
                EventStatus.DELIVERY_FAILED,
                reason,
                message_version=route.published_version,
                bounce=bounce,
                reached_provider=seen,
            )

        try:
            if settings.dkim is not None:
                data = await self._context.renderer.sign(settings.dkim, data, event.priority) + data
            relay, _ = await provider.send_via(envelope_from, [address], data)
        except SendWithdrawn:
            return self._context.withdrawn(event)
        except SigningFailed as exc:
            if not exc.permanent:  # the worker failed, not the key: try again later
                return replace(  # signed before any relay: none saw it, its tokens go back
                    self._context.retry(event, exc.reason), message_version=route.published_version
                )
            return failed(exc.reason)
        except TransientSendError as exc:
            return replace(
                self._context.retry(event, exc.reason, at_least=exc.retry_after),
                message_version=route.published_version,
                bounce=_bounce(event, route, address, exc.reason, permanent=False),
                # An attempt that went out to a relay (a 4xx, a time-out mid-transaction, a
                # refused connection: which of them the relay counted is not known) was made
                # at the rate the cap stands for: its token stays spent, and its retry takes
                # another. Only a send that went to no relay (all resting, a closed pool:
                # `NotAttempted`) gives it back (the dispatcher's rule, `provider_saw`).
                reached_provider=exc.reached_provider,
            )
        except PermanentSendError as exc:
            bounce = _bounce(event, route, address, exc.reason, permanent=True)
            return failed(exc.reason, bounce, exc.reached_provider)
        sent_at = self._context.now()  # the database's time: compared with its trigger's
        return outcome_for(
            event,
            target,
            EventStatus.PROCESSED,
            message_version=route.published_version,
            sent_at=sent_at,
            export=_export(event, route, target, settings, rendered, sent_at),
            delivered=True,
            provider=relay if settings.fallbacks else None,
        )

    def _envelope_from(self, event: ClaimedEvent, settings: EmailSettings, sender: Sender) -> str:
        """With a bounce domain, a VERP address naming this message: bounces come back to it."""
        if not settings.bounce_domain:
            return sender.envelope_from
        if self._verp_secret is None:  # prepare() loads it before sending such routes
            raise RuntimeError("the VERP secret is not loaded")
        return bounce_address(self._verp_secret, event.pkey, settings.bounce_domain)


def _bounce(
    event: ClaimedEvent, route: Route, address: str, reply: str, *, permanent: bool
) -> Bounce | None:
    """The SMTP refusal as a bounce, when its reply says the address is at fault."""
    hard = classify(reply, permanent)
    if hard is None:
        return None
    return Bounce(event.pkey, event.event_id, route.channel, address, hard, reply)


def _export(
    event: ClaimedEvent,
    route: Route,
    target: Target,
    settings: EmailSettings,
    rendered: dict[str, str],
    sent_at: datetime,
) -> ExportRecord | None:
    """The export record when export was on at send time: it commits with the status."""
    if not route.message_export:
        return None
    assert target.address is not None
    profile = target.profile
    return email_record(
        pkey=event.pkey,
        event_id=event.event_id,
        version=route.published_version,
        sent_at=sent_at,
        to_email=target.address,
        to_name=profile.display_name() if profile is not None else None,
        profile_id=profile.profile_id if profile is not None else None,
        from_email=settings.from_email,
        from_name=settings.from_name,
        reply_to=settings.reply_to,
        subject=rendered.get("subject", ""),
        html=rendered.get("html"),
        text=rendered.get("text"),
    )
