"""Rendering an event's message at send time, the same for every channel."""

from __future__ import annotations

from txmsg.core.profiles import Profile
from txmsg.core.queue import ClaimedEvent
from txmsg.core.templates import (
    MessageSource,
    TemplateProblems,
    event_variables,
    template_variables,
)
from txmsg.sandbox.pool import Renderer


async def render_event(
    renderer: Renderer,
    event: ClaimedEvent,
    message: MessageSource,
    profile: Profile | None,
    unsubscribe_url: str | None = None,
    declared: tuple[str, ...] = (),
) -> dict[str, str]:
    """The rendered parts; raises `TemplateProblems` when the message cannot be rendered for
    this event (see `render_problem`)."""
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
        declared,
    )
    return await renderer.render(message, variables, event.priority)


def render_problem(version: int | None, exc: TemplateProblems) -> str:
    """The `routingFailed` reason of a message that cannot be rendered: its first problem."""
    first = exc.problems[0].as_field_error()
    return (
        f"message version {version} cannot be rendered for this "
        f"event: {first.field}: {first.detail}"
    )
