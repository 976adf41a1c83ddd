"""The application factory: wires store, engine and API into one Starlette app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from txmsg.api import (
    channel_configs,
    delivery_log,
    event_configs,
    export_flows,
    fatigue_rules,
    feedback,
    interactions,
    keys,
    message_export,
    messages,
    profiles,
    reports,
    templates,
    tracking,
    trigger,
    trigger_batch,
    twilio_webhook,
    typology,
    unsubscribe,
)
from txmsg.api import (
    proofs as proof_api,
)
from txmsg.api.application import App
from txmsg.api.context import AppContext
from txmsg.api.responses import JSONResponse, problem, problem_from
from txmsg.config import Settings
from txmsg.core.errors import DomainError
from txmsg.core.retry import RetryPolicy
from txmsg.engine.bounce_listener import BounceListener
from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.exporter import Exporter
from txmsg.engine.interactions import InteractionLifecycle
from txmsg.engine.leases import LeaseBook
from txmsg.engine.proofs import ProofSender
from txmsg.engine.scheduler import Scheduler
from txmsg.engine.webhooks import WebhookSender
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.event_configs import TriggerTargets
from txmsg.store.keys import KeyResolver
from txmsg.store.secrets import ServerSecrets
from txmsg.store.sms_receipts import CallbackSigners

log = logging.getLogger("txmsg")


def _openapi_path() -> Path:
    packaged = Path(__file__).parent / "openapi.yaml"
    return packaged if packaged.exists() else Path(__file__).resolve().parents[2] / "openapi.yaml"


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def openapi(_request: Request) -> Response:
    return FileResponse(_openapi_path(), media_type="application/yaml")


async def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_from(exc)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(
        exc.status_code, _TITLES.get(exc.status_code, "Error"), exc.detail, headers=exc.headers
    )


async def _server_error(_request: Request, _exc: Exception) -> Response:
    # The server logs the exception with its traceback once Starlette re-raises it.
    return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")


_TITLES = {404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}


def create_app(settings: Settings | None = None, *, run_dispatcher: bool = True) -> App:
    settings = settings or Settings.from_env()
    db = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    server_secrets = ServerSecrets(db)
    # Shared by the writer (claims, leases) and the dispatcher (sends): neither knows the other.
    # Without a running dispatcher the book has no consumer, so the writer leases nothing.
    book = LeaseBook(max_in_flight=settings.max_in_flight, lease=settings.lease)
    writer = Writer(db, book)
    dispatcher = Dispatcher(
        db,
        DispatcherSettings(
            poll_interval=settings.poll_interval,
            route_cache_seconds=settings.config_cache_seconds,
            retry=RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds),
            public_url=settings.public_url or "http://localhost:8025",
        ),
        book,
        writer,
        secrets=server_secrets,
    )
    exporter = Exporter(db, settings.export_retention)
    lifecycle = InteractionLifecycle(db, settings.data_dir, settings.interaction_inactivity)
    scheduler = Scheduler(
        db, settings.sweep_interval, book.wake, [exporter.scheduled, lifecycle.scheduled]
    )
    proofs = ProofSender(db)
    webhooks = WebhookSender(
        db,
        RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds),
        poll_interval=settings.poll_interval,
        timeout=settings.webhook_timeout_seconds,
    )
    signers = CallbackSigners(db, ttl=settings.config_cache_seconds)
    bounce = settings.bounce_address
    bounce_listener = (
        BounceListener(
            db,
            writer,
            bounce[0],
            bounce[1],
            max_bytes=settings.bounce_max_bytes,
            cache_seconds=settings.config_cache_seconds,
            secrets=server_secrets,
        )
        if bounce is not None
        else None
    )

    def config_changed() -> None:
        dispatcher.config_changed()
        signers.clear()
        if bounce_listener is not None:
            bounce_listener.config_changed()

    context = AppContext(
        settings=settings,
        db=db,
        keys=KeyResolver(db, settings.admin_key),
        targets=TriggerTargets(db, ttl=settings.config_cache_seconds),
        enqueue=writer.enqueue,
        enqueue_batch=writer.enqueue_batch,
        config_changed=config_changed,
        append_log=writer.append_log,
        record_feedback=writer.record_feedback,
        send_proof=proofs.send,
        restore_interactions=lifecycle.restore,
        signers=signers,
        secrets=server_secrets,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        await db.migrate()
        writer.start()
        if run_dispatcher:
            dispatcher.start()
            scheduler.start()
            webhooks.start()
        if bounce_listener is not None:
            await bounce_listener.start()
        try:
            yield
        finally:
            if bounce_listener is not None:
                await bounce_listener.stop()
            # Sends under way finish and record their outcomes before the writer stops.
            if run_dispatcher:
                await webhooks.stop()
                await scheduler.stop()
                await dispatcher.stop()
            await writer.stop()
            await proofs.close()
            await db.dispose()

    # Starlette tries routes in order: the trigger API, the hot path, comes first.
    routes = [
        *trigger_batch.routes,
        *trigger.routes,
        Route("/health", health, methods=["GET"]),
        Route("/openapi.yaml", openapi, methods=["GET"]),
        *keys.routes,
        *channel_configs.routes,
        *event_configs.routes,
        *messages.routes,
        *templates.routes,
        *delivery_log.routes,
        *export_flows.routes,
        *message_export.routes,
        *twilio_webhook.routes,
        *profiles.routes,
        *typology.routes,
        *fatigue_rules.routes,
        *unsubscribe.routes,
        *tracking.routes,
        *proof_api.routes,
        *reports.routes,
        *interactions.routes,
        *feedback.routes,
    ]
    app = App(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            DomainError: _domain_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.txmsg = context
    app.state.dispatcher = dispatcher
    app.state.scheduler = scheduler
    app.state.exporter = exporter
    app.state.webhooks = webhooks
    app.state.lifecycle = lifecycle
    app.state.bounce_listener = bounce_listener
    return app
