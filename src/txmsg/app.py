"""The application factory: wires store, engine and API into one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from txmsg.api import (
    channel_configs,
    console,
    delivery_log,
    event_configs,
    export_flows,
    fatigue_rules,
    feedback,
    interactions,
    keys,
    latest_events,
    message_export,
    messages,
    probes,
    profiles,
    reports,
    suppressions,
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
from txmsg.api.ops_port import OpsAddress, start_ops_port
from txmsg.api.probes import Probe
from txmsg.api.responses import problem, problem_from
from txmsg.config import Settings
from txmsg.core.errors import DomainError
from txmsg.engine.runtime import Engine, Role, build_engine
from txmsg.store.event_configs import TriggerTargets
from txmsg.store.keys import KeyResolver
from txmsg.store.outage import RETRY_AFTER_SECONDS, is_unavailable
from txmsg.store.sealing import SealError

log = logging.getLogger("txmsg")


def _openapi_path() -> Path:
    packaged = Path(__file__).parent / "openapi.yaml"
    return packaged if packaged.exists() else Path(__file__).resolve().parents[2] / "openapi.yaml"


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


async def _seal_error(_request: Request, exc: Exception) -> Response:
    # Another process resealed the secrets with a key this one lacks (a rotation out of
    # order), or a key was changed under a running process: /ready now says not ready.
    log.error("a stored secret cannot be opened: %s", exc)
    return problem(
        503,
        "Service Unavailable",
        f"a stored secret cannot be opened with this process's TXMSG_SECRET_KEY: {exc}",
    )


async def _server_error(_request: Request, exc: Exception) -> Response:
    # The server logs the exception with its traceback once Starlette re-raises it.
    if is_unavailable(exc):  # nothing was stored: the caller may safely try again
        return problem(
            503,
            "Service Unavailable",
            "the database is unavailable (locked or unreachable); nothing was stored, try again",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")


_TITLES = {404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}


def create_app(
    settings: Settings | None = None,
    *,
    role: Role = Role.ALL,
    ops_port: OpsAddress | None = None,
) -> App:
    """The HTTP API on the engine: `Role.ALL` runs everything, `Role.API` only what answers
    requests (no dispatcher, scheduler or webhook sender: a worker sends). With `ops_port`,
    `/health`, `/ready` and `/metrics` are served there too, without a key."""
    if role is Role.WORKER:
        raise ValueError("a worker serves no API: use run_worker")
    settings = settings or Settings.from_env()
    engine = build_engine(settings)
    context = AppContext(
        settings=settings,
        db=engine.db,
        keys=KeyResolver(
            engine.db,
            settings.admin_key,
            trigger_limit=settings.trigger_rate_limit,
            failure_limit=settings.auth_failure_rate_limit,
        ),
        targets=TriggerTargets(engine.db, ttl=settings.config_cache_seconds),
        enqueue=engine.writer.enqueue,
        enqueue_batch=engine.writer.enqueue_batch,
        config_changed=engine.config_changed,
        append_log=engine.writer.append_log,
        record_feedback=engine.writer.record_feedback,
        send_proof=engine.proofs.send,
        restore_interactions=engine.lifecycle.restore,
        signers=engine.signers,
        secrets=engine.secrets,
    )

    probe = _probe(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        try:
            await engine.start(role)
        except Exception as exc:
            app.startup_failed(exc, settings.resolved_database_url, settings.data_dir)
            raise
        ops = None
        try:
            if ops_port is not None:  # its failure stops the engine started above
                try:
                    ops = await start_ops_port(probe, ops_port)
                except Exception as exc:
                    app.startup_failed(exc, settings.resolved_database_url, settings.data_dir)
                    raise
            yield
        finally:
            if ops is not None:
                ops.close()
                await ops.wait_closed()
            await engine.stop()

    # Starlette tries routes in order: the trigger API, the hot path, comes first.
    routes = [
        *trigger_batch.routes,
        *trigger.routes,
        *probes.routes(probe),
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
        *suppressions.routes,
        *fatigue_rules.routes,
        *unsubscribe.routes,
        *tracking.routes,
        *proof_api.routes,
        *latest_events.routes,
        *console.routes,
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
            SealError: _seal_error,
            Exception: _server_error,
        },
    )
    # A path with a slash too many is a 404 like any unknown path: Starlette's redirect would
    # answer an undocumented 307 whose Location is built from the request's Host header.
    app.router.redirect_slashes = False
    app.state.txmsg = context
    app.state.engine = engine
    app.state.dispatcher = engine.dispatcher
    app.state.scheduler = engine.scheduler
    app.state.exporter = engine.exporter
    app.state.webhooks = engine.webhooks
    app.state.lifecycle = engine.lifecycle
    app.state.bounce_listener = engine.bounce_listener
    app.state.metrics = engine.metrics
    return app


def _probe(engine: Engine) -> Probe:
    return Probe(engine.db, engine.metrics, lambda: engine.dispatching)


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    ops_port: OpsAddress | None = None,
    *,
    started: Callable[[], None] | None = None,
) -> None:
    """A worker process (`txmsg worker`): the engine without the HTTP API, until `stop` is set.

    Sends under way finish and record their outcomes before it returns. With `ops_port`, it
    answers `GET /health`, `/ready` and `/metrics` there (for a supervisor, a load balancer's
    check, Prometheus). `started()` is called once it runs (what fails before could not start).
    """
    if not settings.public_url:
        # The API has an address to default to; a worker none: its links would reach nobody.
        logging.getLogger("txmsg.worker").warning(
            "TXMSG_PUBLIC_URL is not set: tracking, unsubscribe and Twilio callback links in"
            " this worker's messages point at http://localhost:8025"
        )
    engine = build_engine(settings)
    await engine.start(Role.WORKER)
    ops = None
    try:
        if ops_port is not None:
            ops = await start_ops_port(_probe(engine), ops_port)
        if started is not None:
            started()
        await stop.wait()
    finally:
        if ops is not None:
            ops.close()
            await ops.wait_closed()
        await engine.stop()
