"""The engine of one process: its parts wired together once, and started for the process's role.

Three roles share one wiring (`build_engine`), so an API process and a worker are the same code
with different parts running:

- `all` (`txmsg serve`): everything in one process.
- `api` (`txmsg serve --role api`): the HTTP API with the writer (triggers are durable when
  answered) and the bounce listener (mail in, written through the writer, like a trigger).
  It leases nothing: with no dispatcher the lease book has no consumer, so new events stay
  queued for a worker.
- `worker` (`txmsg worker`): the writer, the dispatcher, the scheduler and the webhook sender,
  no HTTP API.

Where events are sent (`all`, `worker`), other processes' commits wake the dispatcher
(`store/wakeups.py`), with the poll interval as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass

from txmsg.config import Settings
from txmsg.core.retry import RetryPolicy
from txmsg.engine.bounce_listener import BounceListener
from txmsg.engine.database import open_database, unlock_secrets
from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.exporter import Exporter
from txmsg.engine.interactions import InteractionLifecycle
from txmsg.engine.leases import LeaseBook
from txmsg.engine.proofs import ProofSender
from txmsg.engine.scheduler import Scheduler
from txmsg.engine.tuning import engine_loaded
from txmsg.engine.webhooks import WebhookSender
from txmsg.engine.writer import Writer
from txmsg.metrics import Metrics
from txmsg.sandbox.pool import shared_renderer
from txmsg.store.db import Database
from txmsg.store.secrets import ServerSecrets
from txmsg.store.sms_receipts import CallbackSigners
from txmsg.store.wakeups import Wakeups, wakeups_for

log = logging.getLogger(__name__)

# How long a worker's start waits for its wake-ups to watch (a LISTEN connection's opening).
WAKEUPS_READY_SECONDS = 10.0


class Role(enum.StrEnum):
    ALL = "all"
    API = "api"
    WORKER = "worker"

    @property
    def dispatches(self) -> bool:
        """Runs the dispatcher, the scheduler and the webhook sender."""
        return self is not Role.API

    @property
    def accepts(self) -> bool:
        """Takes input from outside: the HTTP API and the bounce listener."""
        return self is not Role.WORKER


@dataclass
class Engine:
    """Every part a process may run; `start(role)` runs the ones its role needs."""

    settings: Settings
    db: Database
    secrets: ServerSecrets
    book: LeaseBook
    writer: Writer
    dispatcher: Dispatcher
    exporter: Exporter
    lifecycle: InteractionLifecycle
    scheduler: Scheduler
    proofs: ProofSender
    webhooks: WebhookSender
    signers: CallbackSigners
    bounce_listener: BounceListener | None
    metrics: Metrics
    role: Role = Role.ALL
    wakeups: Wakeups | None = None
    clock_keeper: asyncio.Task[None] | None = None

    @property
    def dispatching(self) -> bool | None:
        """Whether the dispatcher runs; None when this process's role has none."""
        return self.dispatcher.running if self.role.dispatches else None

    def config_changed(self) -> None:
        """A configuration changed through the API: drop what this process cached of it."""
        self.dispatcher.config_changed()
        self.signers.clear()
        if self.bounce_listener is not None:
            self.bounce_listener.config_changed()

    async def start(self, role: Role) -> None:
        """Start what `role` runs."""
        self.role = role
        await unlock_secrets(self.db, self.settings)  # before a migration seals anything
        await self.db.migrate()
        await self.db.sync_clock()  # leases and due times are the database's
        engine_loaded()
        self.writer.start()
        try:
            if role.dispatches:
                self.dispatcher.start()
                self.scheduler.start()
                self.webhooks.start()
                self.wakeups = wakeups_for(self.db, self.book.wake)
                self.wakeups.start()
                await self._wakeups_ready(self.wakeups)
            else:
                # No scheduler here to measure it again: the API's stamps (due times,
                # expiries, interactions) would keep the offset of its start after a step
                # of this machine's clock (NTP, a resumed VM).
                self.clock_keeper = asyncio.create_task(
                    self._keep_clock(), name="txmsg-clock-keeper"
                )
            if role.accepts and self.bounce_listener is not None:
                await self.bounce_listener.start()  # its port may be taken
        except BaseException:
            # What did start stops before the error goes up (the process then ends): sends
            # the dispatcher began finish and their outcomes are recorded, not left leased.
            await self.stop()
            raise

    async def _wakeups_ready(self, wakeups: Wakeups) -> None:
        # Started (and healthy) only once other processes' commits wake it: a trigger accepted
        # right after would otherwise wait for the poll.
        try:
            await asyncio.wait_for(wakeups.ready(), WAKEUPS_READY_SECONDS)
        except TimeoutError:
            log.warning(
                "not yet watching for other processes' commits after %s s; polling until then",
                WAKEUPS_READY_SECONDS,
            )

    async def _keep_clock(self) -> None:
        """Measure the offset from the database's clock every sweep interval, as a worker's
        scheduler does."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.db.sync_clock()
            except Exception:  # unavailable: the last offset holds meanwhile
                log.debug("measuring the database's clock failed; trying again", exc_info=True)

    async def stop(self) -> None:
        role = self.role
        if self.clock_keeper is not None:
            self.clock_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.clock_keeper
        if role.accepts and self.bounce_listener is not None:
            await self.bounce_listener.stop()
        # Sends under way finish and record their outcomes before the writer stops.
        if role.dispatches:
            if self.wakeups is not None:
                await self.wakeups.stop()
            await self.webhooks.stop()
            await self.scheduler.stop()
            await self.dispatcher.stop()
        await self.writer.stop()
        await self.proofs.close()
        await self.db.dispose()


def build_engine(settings: Settings) -> Engine:
    """One process's parts, wired; nothing runs until `Engine.start`."""
    db = open_database(settings)
    secrets = ServerSecrets(db)
    retry = RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds)
    # Shared by the writer (claims, leases) and the dispatcher (sends): neither knows the other.
    # Without a running dispatcher the book has no consumer, so the writer leases nothing.
    book = LeaseBook(max_in_flight=settings.max_in_flight, lease=settings.lease, clock=db.clock.now)
    metrics = Metrics()
    writer = Writer(db, book, metrics)
    dispatcher = Dispatcher(
        db,
        DispatcherSettings(
            poll_interval=settings.poll_interval,
            route_cache_seconds=settings.config_cache_seconds,
            retry=retry,
            public_url=settings.public_url or "http://localhost:8025",
            render=settings.render_limits,
        ),
        book,
        writer,
        secrets=secrets,
        metrics=metrics,
    )
    # The database's time: flow locks and schedules, retention and the interaction-data
    # lifecycle compare it with times other processes stored.
    exporter = Exporter(db, settings.export_retention, clock=db.clock.now, metrics=metrics)
    lifecycle = InteractionLifecycle(
        db, settings.data_dir, settings.interaction_inactivity, clock=db.clock.now
    )
    return Engine(
        settings=settings,
        db=db,
        secrets=secrets,
        book=book,
        writer=writer,
        dispatcher=dispatcher,
        exporter=exporter,
        lifecycle=lifecycle,
        scheduler=Scheduler(
            db,
            settings.sweep_interval,
            book.wake,
            [exporter.scheduled, lifecycle.scheduled],
            own_leases=book.tokens,
            lease=settings.lease,
        ),
        proofs=ProofSender(db, shared_renderer(settings.render_limits)),
        webhooks=WebhookSender(
            db,
            retry,
            poll_interval=settings.poll_interval,
            timeout=settings.webhook_timeout_seconds,
        ),
        signers=CallbackSigners(db, ttl=settings.config_cache_seconds),
        bounce_listener=_bounce_listener(settings, db, writer, secrets),
        metrics=metrics,
    )


def _bounce_listener(
    settings: Settings, db: Database, writer: Writer, secrets: ServerSecrets
) -> BounceListener | None:
    bounce = settings.bounce_address
    if bounce is None:
        return None
    return BounceListener(
        db,
        writer,
        bounce[0],
        bounce[1],
        max_bytes=settings.bounce_max_bytes,
        cache_seconds=settings.config_cache_seconds,
        secrets=secrets,
    )
