"""The dispatcher: claims due events by priority, renders, sends, records outcomes in batches.

Capacity, leases and the hand-over of leased events are kept by the lease book (leases.py),
shared with the writer; claims and outcomes go through the write funnel (funnel.py). The
dispatcher asks for claim cycles when the book says a claim is worth it, and sends what the
book hands it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

from txmsg.core.kinds import Channel
from txmsg.core.lanes import SEND_RANK, SEND_WITHDRAWN
from txmsg.core.queue import ClaimedEvent, Outcome, expired_reason
from txmsg.core.render_limits import RenderLimits
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import ConfigState, EventStatus
from txmsg.core.targeting import Target
from txmsg.engine.funnel import WriteFunnel
from txmsg.engine.leases import LeaseBook
from txmsg.engine.legs.base import Leg, LegContext, outcome_for
from txmsg.engine.legs.email import EmailLeg
from txmsg.engine.legs.sms import SmsLeg
from txmsg.engine.providers import Providers
from txmsg.engine.targeting import Targeting
from txmsg.engine.tracking import Tracking
from txmsg.metrics import Metrics
from txmsg.sandbox.pool import shared_renderer
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.outage import OutageLog, is_unavailable
from txmsg.store.routing import Route, load_routes
from txmsg.store.secrets import ServerSecrets

log = logging.getLogger(__name__)

# First wait before recording an outcome again while the database is unavailable (doubling).
RECORD_RETRY_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    poll_interval: float = 1.0
    route_cache_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    public_url: str = "http://localhost:8025"  # base of unsubscribe and tracking links
    render: RenderLimits = field(default_factory=RenderLimits)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        book: LeaseBook,
        writer: WriteFunnel,
        providers: Providers | None = None,
        secrets: ServerSecrets | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._metrics = metrics or Metrics()
        self._settings = settings
        self._providers = providers or Providers(self._metrics)
        self._book = book
        self._writer = writer
        self._secrets = secrets or ServerSecrets(db)
        self._targeting = Targeting(db, self._secrets, settings.public_url, clock=book.now)
        self._context = LegContext(
            settings.retry,
            book.lost,
            shared_renderer(settings.render),
            book.gate.turn,
            # The database's time (`Database.clock`): claims, expiries, retries and sends
            # are timed by it, never by this machine's clock.
            clock=book.now,
        )
        # One leg per channel: a new channel is one more entry.
        self._legs: Mapping[Channel, Leg] = {
            Channel.EMAIL: EmailLeg(
                self._context,
                self._providers,
                self._targeting,
                Tracking(self._secrets, settings.public_url),
                self._secrets,
            ),
            Channel.SMS: SmsLeg(self._context, self._providers, self._targeting.unsubscribe_url),
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._routes: TTLCache[str, Route | None] = TTLCache(None, settings.route_cache_seconds)
        # A database outage told once by each side, not once per try (nor per event).
        self._claims = OutageLog(log, "claiming events")
        self._records = OutageLog(log, "recording the outcome of events")

    def config_changed(self) -> None:
        """An event or channel configuration changed here: reload routes, look for work."""
        self._routes.clear()
        self._book.wake()

    def hand_over(self, events: list[ClaimedEvent]) -> None:
        """Start sending events leased to this process (the book's consumer: same loop turn);
        the transactional ones as a batch of their own, first: they do not wait for the
        routes and targets of a claim's bulk events."""
        urgent = [e for e in events if not e.bulk]
        for lane in (urgent, [e for e in events if e.bulk]) if urgent else (events,):
            if lane:
                task = asyncio.create_task(self._dispatch(lane))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> bool:
        """Started and claiming (its loop has not ended)."""
        return self._runner is not None and not self._runner.done()

    def start(self) -> None:
        """Take the events the book hands over (it has free slots from now on) and claim."""
        self._book.consume(self.hand_over)
        self._runner = asyncio.create_task(self._run(), name="txmsg-dispatcher")

    async def stop(self) -> None:
        """Stop claiming, let sends under way finish and hand their outcomes to the writer."""
        self._book.stop()
        if self._runner is not None:
            await self._runner
            # A cycle already under way may still hand events over: let it finish first
            # (cycles from now on lease nothing: the book has no free slots once stopping).
            await self._writer.tick()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._providers.close()

    async def _run(self) -> None:
        book = self._book
        while not book.stopping:
            book.clear_signal()
            if book.wants_claim(book.free_slots()):
                try:
                    await self._writer.tick()
                except Exception as exc:
                    # The database may be briefly unavailable; leases make retrying safe.
                    if not self._claims.failed(exc):
                        log.exception("claiming events failed; retrying after the poll interval")
                else:
                    self._claims.ok()
                    if book.wants_claim(book.free_slots()):
                        continue
            await book.wait(self._settings.poll_interval)
            if book.leases_to_renew()[0]:
                # Slow sends and nothing else to write: a cycle of its own renews their leases.
                try:
                    await self._writer.tick()
                except Exception as exc:
                    if not self._claims.failed(exc):
                        log.exception("renewing leases failed; retrying after the poll interval")
                else:
                    self._claims.ok()

    async def _routes_for(self, event_ids: set[str]) -> dict[str, Route | None]:
        """Routes of a batch's event types: the ones not cached loaded in one query."""
        routes: dict[str, Route | None] = {}
        stale: set[str] = set()
        for event_id in event_ids:
            hit, route = self._routes.peek(event_id)
            if hit:
                routes[event_id] = route
            else:
                stale.add(event_id)
        if stale:
            loaded = await self._db.read(load_routes, stale)
            for event_id in stale:
                routes[event_id] = loaded.get(event_id)
                self._routes.put(event_id, routes[event_id])
        return routes

    async def _dispatch(self, claimed: list[ClaimedEvent]) -> None:
        """Send events the lease book already counts in flight."""
        try:
            routes = await self._routes_for({e.event_id for e in claimed})
            targets = await self._targeting.prepare(claimed, routes, self._writer.reserve)
            for channel, leg in self._legs.items():
                await leg.prepare(
                    [r for r in routes.values() if r is not None and r.channel == channel]
                )
        except Exception as exc:
            # Let their leases expire (no renewal) so they are claimed again.
            if not self._claims.failed(exc):
                log.exception("loading routes or targets failed for %d events", len(claimed))
            self._book.release(claimed)
            return
        for event in claimed:
            task = asyncio.create_task(
                self._process(event, routes.get(event.event_id), targets.get(event.id))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(
        self, event: ClaimedEvent, route: Route | None, target: Target | None
    ) -> None:
        # This task's own context: its send waits in its lane, and starts only while its lease
        # holds, the engine is not stopping and its claim's rate window (if capped) lasts.
        SEND_RANK.set(event.priority)
        SEND_WITHDRAWN.set(partial(self._withdrawn, event))
        try:
            try:
                if event.bulk:  # a transactional event on its way goes first
                    await self._book.gate.turn()
                outcome = await self._handle(event, route, target)
                if event.send_by is not None and outcome is not None and not outcome.provider_saw:
                    # Capped, and no provider saw it: its claim's tokens go back with its
                    # outcome, whatever its status (an uncapped send pays the one check).
                    outcome = replace(outcome, give_back=True)
            except Exception as exc:
                # A bug, not the recipient's fault: retry later rather than lose the event. Its
                # tokens stay spent: where it failed (before the provider, or after) is unknown.
                log.exception(
                    "processing event %s failed unexpectedly", event.pkey, extra=_fields(event)
                )
                outcome = self._context.retry(event, f"internal error: {type(exc).__name__}")
            if outcome is not None:
                if event.bulk:  # its write too: the write cycle of the transactional one first
                    await self._book.gate.turn()
                await self._record(event, outcome)
                if not outcome.attempted and event.send_by is not None:
                    # Due again once its window ended: claimed then, not at the next poll.
                    self._book.wake_at(event.send_by.timestamp())
                elif route is not None:  # a send handed back late was no attempt
                    self._observe(event, route, outcome)
                if log.isEnabledFor(logging.DEBUG):  # one line an event, at debug level only
                    status = outcome.status.value
                    log.debug("event %s: %s", event.pkey, status, extra=_fields(event, status))
        except Exception as exc:
            # Recording failed: the lease expires and the event is claimed again.
            if not self._records.failed(exc):
                log.exception(
                    "recording the outcome of event %s failed", event.pkey, extra=_fields(event)
                )
        finally:
            self._book.release([event])

    def _withdrawn(self, event: ClaimedEvent) -> bool:
        return (
            self._book.stopping
            or self._book.lost(event)
            or (event.send_by is not None and self._context.late(event))
        )

    async def _record(self, event: ClaimedEvent, outcome: Outcome) -> None:
        """Record an outcome; while the database is unavailable, try again, past the lease's
        end too (the send was made, and an event claimed again is sent again): an outage that
        outlasts the lease kept every process from sweeping it, so the lease is still the
        event's, and this process's sweep, and for a while the others', leave it alone
        (engine/scheduler.py). Given up once the lease is known taken, or past its end once
        the engine stops (a stop is bounded)."""
        delay = RECORD_RETRY_SECONDS
        while True:
            try:
                await self._writer.record(outcome)
                self._records.ok()
                return
            except Exception as exc:
                book = self._book
                if (
                    not is_unavailable(exc)
                    or book.taken(event)
                    or (book.stopping and book.lost(event))
                ):
                    raise
                self._records.failed(exc)  # tried again while the lease holds
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)

    def _observe(self, event: ClaimedEvent, route: Route, outcome: Outcome) -> None:
        """Count a recorded outcome: its send, its provider error, its trigger-to-sent time."""
        channel = route.channel.value
        self._metrics.count_outcome(
            channel, outcome.status.value, _error_kind(outcome), outcome.provider
        )
        if outcome.status == EventStatus.PROCESSED:
            start = max(event.event_date, event.scheduled_at or event.event_date)
            sent = (outcome.sent_at or self._book.now()) - start
            self._metrics.observe_sent(channel, route.priority.value, sent.total_seconds())

    async def _handle(
        self, event: ClaimedEvent, route: Route | None, target: Target | None
    ) -> Outcome | None:
        """What became of the event; None if its lease lapsed (another claim owns it now).

        The checks every channel shares are made here; the route's channel's leg sends."""
        # The database's time: its expiry was stamped by another process (`DatabaseClock`).
        if event.expires_at <= self._book.now():
            return outcome_for(event, target, EventStatus.TOO_OLD, expired_reason(event.reason))
        if route is None:
            return outcome_for(
                event, target, EventStatus.IGNORED, "the event configuration no longer exists"
            )
        if route.state == ConfigState.UNPUBLISHED:
            return outcome_for(
                event, target, EventStatus.IGNORED, "event configuration unpublished"
            )
        if route.state != ConfigState.PUBLISHED or route.published_version is None:
            # Back to the queue unsent (released when the configuration is live again).
            return outcome_for(event, target, EventStatus.PAUSED)
        if target is None:
            return outcome_for(
                event, target, EventStatus.TARGETING_FAILED, "no recipient was determined"
            )
        if target.status is not None:  # no profile, a typology or a fatigue rule
            return outcome_for(event, target, target.status, target.reason)
        return await self._legs[route.channel].send(event, route, target)


def _fields(event: ClaimedEvent, status: str = EventStatus.PROCESSING.value) -> dict[str, str]:
    """A log record's event fields (shown by `--log-format json`): a claimed event is
    `processing` until its outcome is recorded."""
    return {"pkey": event.pkey, "event_id": event.event_id, "status": status}


def _error_kind(outcome: Outcome) -> str | None:
    """The kind of provider error an outcome records, if any (a retry is a transient one)."""
    if outcome.bounce is not None:
        return "bounce"
    if outcome.opt_out is not None:  # the recipient's STOP: neither a bounce nor a fault
        return "opt_out"
    if outcome.status == EventStatus.PENDING:
        return "transient"
    if outcome.status == EventStatus.DELIVERY_FAILED:
        return "permanent"
    return None
