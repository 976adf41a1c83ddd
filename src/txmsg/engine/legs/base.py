"""The leg protocol, and the small context every leg shares with the dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from txmsg.core.channel_config import ChannelSettings
from txmsg.core.kinds import Channel
from txmsg.core.queue import (
    SENT_LATE,
    ClaimedEvent,
    Outcome,
    expired_reason,
    retrying_reason,
)
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import Target
from txmsg.core.templates import MessageSource, TemplateProblems, message_parts, variant_for
from txmsg.core.timeutil import utcnow
from txmsg.engine.rendering import render_event, render_problem
from txmsg.sandbox.pool import Renderer
from txmsg.store.routing import Route

log = logging.getLogger(__name__)

# Compiled messages kept at most: old versions are rarely sent again.
MAX_COMPILED = 1000

# A capped send not started this long before its claim's window ends is handed back: what
# follows the check (a mail transaction's round trips, an HTTPS request to Twilio) and the
# processes' differing estimates of the database's clock fit in it.
LATE_MARGIN = timedelta(milliseconds=100)

S = TypeVar("S", bound=ChannelSettings)
_ONE = {Channel.EMAIL: "an email", Channel.SMS: "an SMS"}


class Leg(Protocol):
    """Sends the events of one channel; maps its provider's errors to outcomes."""

    async def prepare(self, routes: Sequence[Route]) -> None:
        """Before a batch is sent: load what its routes of this channel need (secrets)."""
        ...

    async def send(self, event: ClaimedEvent, route: Route, target: Target) -> Outcome | None:
        """What became of a due event of a live, published route whose target has an
        address; None if its lease lapsed before sending (another claim owns it now)."""
        ...


def outcome_for(
    event: ClaimedEvent,
    target: Target | None,
    status: EventStatus,
    reason: str | None = None,
    **fields: Any,
) -> Outcome:
    """The event's outcome, naming the profile it was reconciled with, if any."""
    profile = target.profile if target is not None else None
    profile_id = profile.profile_id if profile is not None else None
    return Outcome(event.id, event.lease_token, status, reason, profile_id=profile_id, **fields)


def settings_of(route: Route, kind: type[S]) -> S | str:
    """The route's channel settings when they are of the leg's `kind`; else why its events
    cannot be routed (the `routingFailed` reason)."""
    if isinstance(route.settings, kind):
        return route.settings
    name = route.channel_config
    if route.settings_problem is not None:
        return f"channel configuration '{name}': {route.settings_problem}"
    return f"channel configuration '{name}' is missing or not {_ONE[kind.channel]} one"


class LegContext:
    """What the legs share with the dispatcher: the retry outcome, the compiled-message
    cache, whether an event's lease is still this process's, whether a capped send is too
    late for its claim's rate window, and the bulk lane's pause while a transactional event is
    on its way (`engine/bulk_gate.py`)."""

    def __init__(
        self,
        retry: RetryPolicy,
        lease_lost: Callable[[ClaimedEvent], bool],
        renderer: Renderer,
        bulk_turn: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._retry = retry
        # The database's time as this process estimates it (`DatabaseClock.now`): claims,
        # expiries, retries and sends are timed by it, so that a machine whose clock is off
        # neither ends live events nor stamps its sends in another process's future or past.
        self._clock = clock
        self._renderer = renderer
        self.renderer = renderer  # the legs' other work off the event loop (DKIM signing)
        self.lease_lost = lease_lost
        self._bulk_turn = bulk_turn
        self._compiled: dict[tuple[str, int, str | None], MessageSource] = {}

    def now(self) -> datetime:
        """The database's time, as this process estimates it (no statement)."""
        return self._clock()

    def retry(
        self,
        event: ClaimedEvent,
        reason: str,
        now: datetime | None = None,
        at_least: float | None = None,
    ) -> Outcome:
        """Pending again after the policy's delay (no less than `at_least` seconds, the
        provider's Retry-After); `tooOld` if that is past its expiry."""
        delay = self._retry.delay(event.attempts, at_least=at_least)
        due = (now or self._clock()) + timedelta(seconds=delay)
        if due >= event.expires_at:
            return Outcome(
                event.id,
                event.lease_token,
                EventStatus.TOO_OLD,
                expired_reason(retrying_reason(reason)),
            )
        return Outcome(
            event.id, event.lease_token, EventStatus.PENDING, retrying_reason(reason), due_at=due
        )

    def withdrawn(self, event: ClaimedEvent) -> Outcome | None:
        """A send withdrawn before it started: nothing if its lease lapsed (the event is
        another claim's now); handed back late (`sent_late`) if its claim's rate window
        ended; else back to the queue, due at once (the engine is stopping: the next process
        to claim sends it)."""
        if self.lease_lost(event):
            log.warning("lease of event %s lapsed while it waited to send; leaving it", event.pkey)
            return None
        if self.late(event):  # withdrawn because its claim's rate window ended meanwhile
            return self.sent_late(event)
        reason = "handed back: the engine stopped before sending it"
        return Outcome(
            event.id,
            event.lease_token,
            EventStatus.PENDING,
            reason,
            due_at=self._clock(),
        )

    def late(self, event: ClaimedEvent) -> bool:
        """Whether a capped send would start too late for the window its claim spent its
        token in (`ClaimedEvent.send_by`, less `LATE_MARGIN`): it would go in the next window
        beside that window's own claim, past the cap. Asked just before the provider (and by
        the SMTP pool once it has a connection); costs an uncapped send one comparison.

        An event already handed back once (`SENT_LATE`) is sent however late: the first
        hand-back absorbs a one-off delay (a process starting: connections opened, render
        workers spawned), the usual cause; a send late again is late because the process
        cannot keep up with the cap, and then it does not send above it either. So no event
        goes back and forth for ever."""
        send_by = event.send_by
        return (
            send_by is not None
            and event.reason != SENT_LATE
            and self._clock() >= send_by - LATE_MARGIN
        )

    def sent_late(self, event: ClaimedEvent) -> Outcome:
        """A send too late for its claim's window, handed back unsent: pending again, no
        attempt counted, its tokens back (the per-day one; the per-second window is over),
        due once that window has ended (it keeps its place in the queue), so its next claim
        spends a token of the window it is sent in."""
        send_by = event.send_by
        due = send_by if send_by is not None and send_by > self._clock() else None
        return Outcome(
            event.id,
            event.lease_token,
            EventStatus.PENDING,
            SENT_LATE,
            due_at=due,
            attempted=False,
        )

    def message(self, route: Route, language: str | None = None) -> MessageSource:
        """The route's published message, once per version and language variant (its render
        workers compile it once)."""
        assert route.published_version is not None and route.content is not None
        variant = variant_for(route.content, language)
        key = (route.event_id, route.published_version, variant)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= MAX_COMPILED:
                self._compiled.clear()
            compiled = MessageSource(message_parts(route.content, variant))
            self._compiled[key] = compiled
        return compiled

    async def render(
        self,
        event: ClaimedEvent,
        route: Route,
        target: Target,
        unsubscribe_url: str | None = None,
    ) -> dict[str, str] | Outcome:
        """The rendered parts in the target's language; or, when the message cannot be
        rendered for this event, the `routingFailed` outcome naming the first problem."""
        profile = target.profile
        message = self.message(route, profile.language if profile is not None else None)
        try:
            rendered = await render_event(
                self._renderer, event, message, profile, unsubscribe_url, route.declared_fields
            )
        except TemplateProblems as exc:
            return outcome_for(
                event,
                target,
                EventStatus.ROUTING_FAILED,
                render_problem(route.published_version, exc),
                message_version=route.published_version,
            )
        if event.bulk and self._bulk_turn is not None:
            await self._bulk_turn()  # building and sending the message wait for their turn
        return rendered
