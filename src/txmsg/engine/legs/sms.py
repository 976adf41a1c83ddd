"""The SMS leg: render the text, send it through the channel configuration's Twilio senders.

The primary, then its fallbacks, each behind a circuit breaker (`engine/failover.py`): a
Twilio 5xx, 429, time-out or refused connection sends on to the next one at once; when all
failed the event is retried later. Other 4xx end the event `deliveryFailed` (no failover).
With fallbacks, the outcome names the provider that sent. A sent SMS's outcome carries
Twilio's message SID, which delivery receipts are matched against; it is delivered when a
receipt says so, not when sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from txmsg.core.delivery import (
    PermanentSendError,
    ProviderOptOut,
    RecipientOptedOut,
    TransientSendError,
)
from txmsg.core.export_record import sms_record
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.sms import sms_text
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import Target
from txmsg.core.twilio_config import SmsSettings
from txmsg.engine.legs.base import LegContext, outcome_for, settings_of
from txmsg.engine.providers import Providers
from txmsg.store.routing import Route

log = logging.getLogger(__name__)

UnsubscribeUrl = Callable[[str, str, str], str]
"""A profile's unsubscribe link for a message: (channel, profile id, pkey) -> URL."""


class SmsLeg:
    def __init__(
        self, context: LegContext, providers: Providers, unsubscribe_url: UnsubscribeUrl
    ) -> None:
        self._context = context
        self._providers = providers
        self._unsubscribe_url = unsubscribe_url

    async def prepare(self, routes: Sequence[Route]) -> None:
        """Twilio's client, loaded off the event loop before the first SMS (an SMS needs no
        server secret)."""
        if routes:
            await self._providers.load_sms()

    async def send(self, event: ClaimedEvent, route: Route, target: Target) -> Outcome | None:
        settings = settings_of(route, SmsSettings)
        if isinstance(settings, str):
            return outcome_for(event, target, EventStatus.ROUTING_FAILED, settings)
        address = target.address
        assert address is not None
        version = route.published_version
        profile = target.profile
        unsubscribe = (  # a profile-based message's templates may show its unsubscribe link
            self._unsubscribe_url(route.channel, profile.profile_id, event.pkey)
            if profile is not None
            else None
        )
        rendered = await self._context.render(event, route, target, unsubscribe)
        if isinstance(rendered, Outcome):
            return rendered
        text = sms_text(rendered.get("body", ""))
        if not text:  # the preview warns of it too (core/render_checks)
            return outcome_for(
                event,
                target,
                EventStatus.ROUTING_FAILED,
                f"message version {version} renders an empty text for this event",
                message_version=version,
            )
        if self._context.lease_lost(event):
            log.warning("lease of event %s lapsed before sending; leaving it", event.pkey)
            return None
        if event.send_by is not None and self._context.late(event):
            return self._context.sent_late(event)
        provider = self._providers.sms(
            route.channel_config, route.channel_config_revision or 0, settings
        )
        try:
            name, sid = await provider.send_via(address, text, callback_pkey=event.pkey)
        except TransientSendError as exc:
            retry = self._context.retry(event, exc.reason, at_least=exc.retry_after)
            # Twilio counted an attempt that reached it (a 429 or a 5xx, say): its token of the
            # channel's cap stays spent. One no provider saw (all resting: `NotAttempted`)
            # gives it back (the dispatcher's rule, `Outcome.provider_saw`).
            return replace(retry, reached_provider=exc.reached_provider)
        except PermanentSendError as exc:
            return outcome_for(
                event,
                target,
                EventStatus.DELIVERY_FAILED,
                exc.reason,
                message_version=version,
                reached_provider=exc.reached_provider,
                # A STOP is the person's opt-out, not a dead number: the number is held all
                # the same (Twilio refuses it until START), but it reads as an unsubscribe.
                opt_out=ProviderOptOut(
                    event.pkey, event.event_id, route.channel, address, exc.reason
                )
                if isinstance(exc, RecipientOptedOut)
                else None,
            )
        sent_at = self._context.now()  # the database's time: compared with its trigger's
        export = None
        if route.message_export:  # export on at send time: the record commits with the status
            sender = _sender_number(settings, name)
            export = sms_record(
                pkey=event.pkey,
                event_id=event.event_id,
                version=version,
                sent_at=sent_at,
                to_number=address,
                profile_id=profile.profile_id if profile is not None else None,
                from_numbers=[sender] if sender else [],
                message=text,
            )
        return outcome_for(
            event,
            target,
            EventStatus.PROCESSED,
            message_version=version,
            sent_at=sent_at,
            provider_message_id=sid,
            export=export,
            provider=name if settings.fallbacks else None,
        )


def _sender_number(settings: SmsSettings, provider: str) -> str | None:
    """The number of the provider that sent (the primary or a fallback), by its name; none
    for a messaging service."""
    for twilio in (settings.twilio, *settings.fallbacks):
        if twilio.provider_name == provider:
            return twilio.from_number
    return settings.twilio.from_number
