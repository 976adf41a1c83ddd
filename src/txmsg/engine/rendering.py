"""Rendering an event's message at send time, the same for every channel."""

from __future__ import annotations

from collections.abc import Callable

from txmsg.core.profiles import Profile
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.statuses import EventStatus
from txmsg.core.templates import (
    CompiledMessage,
    TemplateProblems,
    event_variables,
    template_variables,
)
from txmsg.store.routing import Route


def render_event(
    event: ClaimedEvent,
    route: Route,
    message: CompiledMessage,
    profile: Profile | None,
    outcome: Callable[..., Outcome],
    unsubscribe_url: str | None = None,
) -> dict[str, str] | Outcome:
    """The rendered parts; or, when the message cannot be rendered for this event, the
    `routingFailed` outcome naming the first problem."""
    variables = template_variables(
        event.ctx,
        event_variables(
            event.pkey,
            event.event_id,
            event.email,
            event.event_date,
            event.scheduled_at,
            event.expires_at,
            event.mobile_phone,
        ),
        profile.template_view() if profile is not None else None,
        unsubscribe_url,
    )
    try:
        return message.render(variables)
    except TemplateProblems as exc:
        first = exc.problems[0].as_field_error()
        return outcome(
            EventStatus.ROUTING_FAILED,
            f"message version {route.published_version} cannot be rendered for this "
            f"event: {first.field}: {first.detail}",
            message_version=route.published_version,
        )
