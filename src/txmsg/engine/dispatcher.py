"""The dispatcher: claims due events by priority, renders, sends, records outcomes in batches.

At most `max_in_flight` events are leased by this process at a time. It claims again once a
quarter of that is free, so a backlog of low-priority work delays a transactional event by at
most one in-flight batch. Claims and outcomes go through the write funnel (writer.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from txmsg.core.kinds import Channel
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import ConfigState, EventStatus
from txmsg.core.targeting import Target
from txmsg.core.timeutil import utcnow
from txmsg.engine.legs.base import Leg, LegContext, outcome_for
from txmsg.engine.legs.email import EmailLeg
from txmsg.engine.legs.sms import SmsLeg
from txmsg.engine.providers import Providers
from txmsg.engine.targeting import Targeting
from txmsg.engine.tracking import Tracking
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.routing import Route, load_routes
from txmsg.store.secrets import ServerSecrets

if TYPE_CHECKING:
    from txmsg.engine.writer import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    max_in_flight: int = 64
    lease: timedelta = timedelta(seconds=60)
    poll_interval: float = 1.0
    route_cache_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    public_url: str = "http://localhost:8025"  # base of unsubscribe and tracking links


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        providers: Providers | None = None,
        secrets: ServerSecrets | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._providers = providers or Providers()
        self._writer: Writer | None = None
        self._secrets = secrets or ServerSecrets(db)
        self._targeting = Targeting(db, self._secrets, settings.public_url)
        self._context = LegContext(settings.retry, self._lease_lost)
        # One leg per channel: a new channel is one more entry.
        self._legs: Mapping[Channel, Leg] = {
            Channel.EMAIL: EmailLeg(
                self._context,
                self._providers,
                self._targeting,
                Tracking(self._secrets, settings.public_url),
                self._secrets,
            ),
            Channel.SMS: SmsLeg(self._context, self._providers),
        }
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._low_water = max(1, settings.max_in_flight // 4)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        # Whether due events may be waiting in the database (cleared by a claim that came
        # back short, set by anything that may have made events due).
        self._maybe_due = True
        # Events leased to this process and not yet recorded: id -> (lease token, until).
        self._leases: dict[int, tuple[str, datetime]] = {}
        self._routes: TTLCache[str, Route | None] = TTLCache(None, settings.route_cache_seconds)

    @property
    def lease(self) -> timedelta:
        return self._settings.lease

    def wake(self) -> None:
        """Events may have become due (queued triggers, a resume, released leases)."""
        self._maybe_due = True
        self._wake.set()

    def config_changed(self) -> None:
        """An event or channel configuration changed here: reload routes, look for work."""
        self._routes.clear()
        self.wake()

    # Called by the writer, around each write cycle.
    def free_slots(self) -> int:
        if self._stopping or self._writer is None:
            return 0
        return max(0, self._settings.max_in_flight - self._in_flight)

    def wants_claim(self, free: int) -> bool:
        """For a cycle of its own: claim in batches, once a quarter of capacity is free."""
        return self._maybe_due and (free >= self._low_water or (free > 0 and self._in_flight == 0))

    def may_have_due(self, free: int) -> bool:
        """For a cycle that runs anyway: claiming there costs one statement; any room will do."""
        return self._maybe_due and free > 0

    def leases_to_renew(self) -> tuple[list[tuple[int, str]], datetime | None]:
        """Leases past half their time: renewed by the next write cycle."""
        now = utcnow()
        half = self._settings.lease / 2
        due = [(i, token) for i, (token, until) in self._leases.items() if until - now < half]
        return due, (now + self._settings.lease if due else None)

    def renewed(self, leases: list[tuple[int, str]], until: datetime) -> None:
        for event_id, token in leases:
            if event_id in self._leases:
                self._leases[event_id] = (token, until)

    def _lease_lost(self, event: ClaimedEvent) -> bool:
        held = self._leases.get(event.id)
        return held is None or held[1] <= utcnow()

    def claimed(self, count: int, limit: int) -> None:
        if count < limit:
            self._maybe_due = False

    def hand_over(self, events: list[ClaimedEvent]) -> None:
        """Start sending events leased to this process."""
        if not events:
            return
        self._in_flight += len(events)
        for event in events:
            self._leases[event.id] = (event.lease_token, event.lease_until)
        task = asyncio.create_task(self._dispatch(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self, writer: Writer) -> None:
        self._writer = writer
        self._runner = asyncio.create_task(self._run(), name="txmsg-dispatcher")

    async def stop(self) -> None:
        """Stop claiming, let sends under way finish and hand their outcomes to the writer."""
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await self._runner
        if self._writer is not None:
            # A cycle already under way may still hand events over: let it finish first
            # (cycles from now on lease nothing: free_slots() is 0).
            await self._writer.tick()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._providers.close()

    async def _run(self) -> None:
        assert self._writer is not None
        while not self._stopping:
            self._wake.clear()
            if self.wants_claim(self.free_slots()):
                try:
                    await self._writer.tick()
                except Exception:
                    # The database may be briefly unavailable; leases make retrying safe.
                    log.exception("claiming events failed; retrying after the poll interval")
                else:
                    if self.wants_claim(self.free_slots()):
                        continue
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval)
            except TimeoutError:
                self._maybe_due = True  # scheduled events and retries come due with time
            if self.leases_to_renew()[0]:
                # Slow sends and nothing else to write: a cycle of its own renews their leases.
                try:
                    await self._writer.tick()
                except Exception:
                    log.exception("renewing leases failed; retrying after the poll interval")

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
        """Send events already counted in `_in_flight`."""
        try:
            routes = await self._routes_for({e.event_id for e in claimed})
            assert self._writer is not None
            targets = await self._targeting.prepare(claimed, routes, self._writer.reserve)
            for channel, leg in self._legs.items():
                await leg.prepare(
                    [r for r in routes.values() if r is not None and r.channel == channel]
                )
        except Exception:
            # Let their leases expire (no renewal) so they are claimed again.
            log.exception("loading routes or targets failed for %d events", len(claimed))
            for event in claimed:
                self._leases.pop(event.id, None)
            self._in_flight -= len(claimed)
            self._wake.set()
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
        assert self._writer is not None
        try:
            try:
                outcome = await self._handle(event, route, target)
            except Exception as exc:
                # A bug, not the recipient's fault: retry later rather than lose the event.
                log.exception("processing event %s failed unexpectedly", event.pkey)
                outcome = self._retry(event, utcnow(), f"internal error: {type(exc).__name__}")
            if outcome is not None:
                await self._writer.record(outcome)
        except Exception:
            # Recording failed: the lease expires and the event is claimed again.
            log.exception("recording the outcome of event %s failed", event.pkey)
        finally:
            self._leases.pop(event.id, None)
            self._in_flight -= 1
            if self.wants_claim(self.free_slots()):
                self._wake.set()

    def _retry(self, event: ClaimedEvent, now: datetime, reason: str) -> Outcome:
        return self._context.retry(event, reason, now)

    async def _handle(
        self, event: ClaimedEvent, route: Route | None, target: Target | None
    ) -> Outcome | None:
        """What became of the event; None if its lease lapsed (another claim owns it now).

        The checks every channel shares are made here; the route's channel's leg sends."""
        if event.expires_at <= utcnow():
            return outcome_for(
                event, target, EventStatus.TOO_OLD, "expired before it could be sent"
            )
        if route is None:
            return outcome_for(
                event, target, EventStatus.IGNORED, "the event configuration no longer exists"
            )
        if route.state == ConfigState.UNPUBLISHED:
            return outcome_for(
                event, target, EventStatus.IGNORED, "event configuration unpublished"
            )
        if route.state != ConfigState.PUBLISHED or route.published_version is None:
            return outcome_for(event, target, EventStatus.PAUSED)
        if target is None:
            return outcome_for(
                event, target, EventStatus.TARGETING_FAILED, "no recipient was determined"
            )
        if target.status is not None:  # no profile, a typology or a fatigue rule
            return outcome_for(event, target, target.status, target.reason)
        return await self._legs[route.channel].send(event, route, target)
