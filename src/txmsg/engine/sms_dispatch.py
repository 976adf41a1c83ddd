"""The SMS leg of the dispatcher: target, render, send through the channel's SMS provider.

Called by `Dispatcher._handle` once the event is due, live and published; returns the same
`Outcome`s as the email leg, so the write funnel records both alike. A sent SMS's outcome
carries the provider's message id (Twilio SID), which delivery receipts are matched against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from txmsg.core.delivery import PermanentSendError, TransientSendError
from txmsg.core.export_record import sms_record
from txmsg.core.profiles import Profile
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.sms import sms_text
from txmsg.core.statuses import EventStatus
from txmsg.core.templates import (
    CompiledMessage,
)
from txmsg.core.timeutil import utcnow
from txmsg.engine.providers import Providers
from txmsg.engine.rendering import render_event
from txmsg.store.routing import Route

log = logging.getLogger(__name__)


async def handle_sms(
    event: ClaimedEvent,
    route: Route,
    address: str,
    profile: Profile | None,
    *,
    outcome: Callable[..., Outcome],
    providers: Providers,
    message: Callable[[Route], CompiledMessage],
    lease_lost: Callable[[], bool],
    retry: Callable[[str], Outcome],
) -> Outcome | None:
    """What became of an SMS event sent to `address`; None if its lease lapsed before sending."""
    if route.channel_config_revision is None or route.channel_config_channel != "sms":
        return outcome(
            EventStatus.ROUTING_FAILED,
            f"channel configuration '{route.channel_config}' is missing or not an SMS one",
        )
    version = route.published_version
    rendered = render_event(event, route, message(route), profile, outcome)
    if isinstance(rendered, Outcome):
        return rendered
    text = sms_text(rendered.get("body", ""))
    if not text:
        return outcome(
            EventStatus.ROUTING_FAILED,
            f"message version {version} renders an empty text for this event",
            message_version=version,
        )
    if lease_lost():
        log.warning("lease of event %s lapsed before sending; leaving it", event.pkey)
        return None
    provider = providers.sms(route)
    try:
        sid = await provider.send(address, text, callback_pkey=event.pkey)
    except TransientSendError as exc:
        return retry(exc.reason)
    except PermanentSendError as exc:
        return outcome(EventStatus.DELIVERY_FAILED, exc.reason, message_version=version)
    sent_at = utcnow()
    export = None
    if route.message_export:  # export on at send time: the record commits with the status
        sender = route.settings["twilio"].get("from_number")
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
    return outcome(
        EventStatus.PROCESSED,
        message_version=version,
        sent_at=sent_at,
        provider_message_id=sid,
        export=export,
    )
