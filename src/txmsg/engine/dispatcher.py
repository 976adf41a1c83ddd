"""The dispatcher: claims due events by priority, renders, sends, records outcomes in batches.

Capacity, leases and the hand-over of leased events are kept by the lease book (leases.py),
shared with the writer; claims and outcomes go through the write funnel (funnel.py). The
dispatcher asks for claim cycles when the book says a claim is worth it, and sends what the
book hands it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from txmsg.core.bounces import Bounce, classify
from txmsg.core.delivery import PermanentSendError, TransientSendError
from txmsg.core.export_record import email_record
from txmsg.core.mime import build_email
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import ConfigState, EventStatus
from txmsg.core.targeting import Target
from txmsg.core.templates import (
    CompiledMessage,
    message_parts,
    variant_for,
)
from txmsg.core.timeutil import utcnow
from txmsg.core.unsubscribe import list_unsubscribe_headers
from txmsg.core.verp import SECRET_NAME as VERP_SECRET
from txmsg.core.verp import bounce_address
from txmsg.engine.funnel import WriteFunnel
from txmsg.engine.leases import LeaseBook
from txmsg.engine.providers import Providers
from txmsg.engine.rendering import render_event
from txmsg.engine.sms_dispatch import handle_sms
from txmsg.engine.targeting import Targeting
from txmsg.engine.tracking import Tracking
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.routing import Route, load_routes
from txmsg.store.secrets import ServerSecrets

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    poll_interval: float = 1.0
    route_cache_seconds: float = 1.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    public_url: str = "http://localhost:8025"  # base of unsubscribe and tracking links


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: DispatcherSettings,
        book: LeaseBook,
        writer: WriteFunnel,
        providers: Providers | None = None,
        secrets: ServerSecrets | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._providers = providers or Providers()
        self._book = book
        self._writer = writer
        self._compiled: dict[tuple[str, int, str | None], CompiledMessage] = {}
        self._targeting = Targeting(db, settings.public_url)
        self._secrets = secrets or ServerSecrets(db)
        self._tracking = Tracking(self._secrets, settings.public_url)
        self._verp_secret: str | None = None  # loaded once a route has a bounce domain
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._routes: TTLCache[str, Route | None] = TTLCache(None, settings.route_cache_seconds)

    def config_changed(self) -> None:
        """An event or channel configuration changed here: reload routes, look for work."""
        self._routes.clear()
        self._book.wake()

    def _lease_lost(self, event: ClaimedEvent) -> bool:
        return self._book.lost(event)

    def hand_over(self, events: list[ClaimedEvent]) -> None:
        """Start sending events leased to this process (the book's consumer: same loop turn)."""
        task = asyncio.create_task(self._dispatch(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
                except Exception:
                    # The database may be briefly unavailable; leases make retrying safe.
                    log.exception("claiming events failed; retrying after the poll interval")
                else:
                    if book.wants_claim(book.free_slots()):
                        continue
            await book.wait(self._settings.poll_interval)
            if book.leases_to_renew()[0]:
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
            await self._tracking.prepare(routes.values())
            if self._verp_secret is None and any(
                r is not None and r.settings.get("bounce_domain") for r in routes.values()
            ):
                self._verp_secret = await self._secrets.get_or_create(VERP_SECRET)
        except Exception:
            # Let their leases expire (no renewal) so they are claimed again.
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
            self._book.release([event])

    def _retry(self, event: ClaimedEvent, now: datetime, reason: str) -> Outcome:
        due = now + timedelta(seconds=self._settings.retry.delay(event.attempts))
        if due >= event.expires_at:
            return Outcome(
                event.id,
                event.lease_token,
                EventStatus.TOO_OLD,
                f"expired while retrying: {reason}",
            )
        return Outcome(
            event.id, event.lease_token, EventStatus.PENDING, f"retrying: {reason}", due_at=due
        )

    @staticmethod
    def _bounce(
        event: ClaimedEvent, route: Route, address: str, reply: str, *, permanent: bool
    ) -> Bounce | None:
        hard = classify(reply, permanent)
        if hard is None:
            return None
        return Bounce(event.pkey, event.event_id, route.channel, address, hard, reply)

    def _message(self, route: Route, language: str | None = None) -> CompiledMessage:
        assert route.published_version is not None and route.content is not None
        variant = variant_for(route.content, language)
        key = (route.event_id, route.published_version, variant)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= 1000:  # bounded: old versions are rarely sent again
                self._compiled.clear()
            compiled = CompiledMessage(message_parts(route.content, variant))
            self._compiled[key] = compiled
        return compiled

    async def _handle(
        self, event: ClaimedEvent, route: Route | None, target: Target | None
    ) -> Outcome | None:
        """What became of the event; None if its lease lapsed (another claim owns it now)."""
        now = utcnow()
        profile = target.profile if target is not None else None
        profile_id = profile.profile_id if profile is not None else None

        def outcome(status: EventStatus, reason: str | None = None, **kw: Any) -> Outcome:
            return Outcome(event.id, event.lease_token, status, reason, profile_id=profile_id, **kw)

        if event.expires_at <= now:
            return outcome(EventStatus.TOO_OLD, "expired before it could be sent")
        if route is None:
            return outcome(EventStatus.IGNORED, "the event configuration no longer exists")
        if route.state == ConfigState.UNPUBLISHED:
            return outcome(EventStatus.IGNORED, "event configuration unpublished")
        if route.state != ConfigState.PUBLISHED or route.published_version is None:
            return outcome(EventStatus.PAUSED)
        if target is None:
            return outcome(EventStatus.TARGETING_FAILED, "no recipient was determined")
        if target.status is not None:  # no profile, a typology or a fatigue rule
            return outcome(target.status, target.reason)
        address = target.address
        assert address is not None
        language = profile.language if profile is not None else None
        if route.channel == "sms":
            return await handle_sms(
                event,
                route,
                address,
                profile,
                outcome=outcome,
                providers=self._providers,
                message=lambda r: self._message(r, language),
                lease_lost=lambda: self._lease_lost(event),
                retry=lambda reason: self._retry(event, utcnow(), reason),
            )
        if route.channel_config_revision is None or route.channel_config_channel != "email":
            return outcome(
                EventStatus.ROUTING_FAILED,
                f"channel configuration '{route.channel_config}' is missing or not an email one",
            )
        unsubscribe = (
            self._targeting.unsubscribe_url(route.channel, profile.profile_id, event.pkey)
            if profile is not None
            else None
        )
        rendered = render_event(
            event, route, self._message(route, language), profile, outcome, unsubscribe
        )
        if isinstance(rendered, Outcome):
            return rendered
        rendered = self._tracking.apply(route, event.pkey, rendered)
        if self._lease_lost(event):
            log.warning("lease of event %s lapsed before sending; leaving it", event.pkey)
            return None
        provider, sender = self._providers.email(route)
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
        bounce_domain = route.settings.get("bounce_domain")
        envelope_from = sender.envelope_from
        if bounce_domain:  # a VERP address naming this message: bounces come back to it
            if self._verp_secret is None:  # _dispatch loads it before sending such routes
                raise RuntimeError("the VERP secret is not loaded")
            envelope_from = bounce_address(self._verp_secret, event.pkey, bounce_domain)
        try:
            await provider.send(envelope_from, [address], data)
        except TransientSendError as exc:
            return replace(
                self._retry(event, utcnow(), exc.reason),
                message_version=route.published_version,
                bounce=self._bounce(event, route, address, exc.reason, permanent=False),
            )
        except PermanentSendError as exc:
            return outcome(
                EventStatus.DELIVERY_FAILED,
                exc.reason,
                message_version=route.published_version,
                bounce=self._bounce(event, route, address, exc.reason, permanent=True),
            )
        sent_at = utcnow()
        export = None
        if route.message_export:  # export on at send time: the record commits with the status
            export = email_record(
                pkey=event.pkey,
                event_id=event.event_id,
                version=route.published_version,
                sent_at=sent_at,
                to_email=address,
                to_name=profile.display_name() if profile is not None else None,
                profile_id=profile_id,
                from_email=route.settings["from_email"],
                from_name=route.settings.get("from_name"),
                reply_to=route.settings.get("reply_to"),
                subject=rendered.get("subject", ""),
                html=rendered.get("html"),
                text=rendered.get("text"),
            )
        return outcome(
            EventStatus.PROCESSED,
            message_version=route.published_version,
            sent_at=sent_at,
            export=export,
            delivered=True,
        )
