"""The application factory: wires store, engine and API into one Starlette app."""

from __future__ import annotations

import asyncio
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
from txmsg.engine.runtime import Role, build_engine
from txmsg.store.event_configs import TriggerTargets
from txmsg.store.keys import KeyResolver

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


def create_app(settings: Settings | None = None, *, role: Role = Role.ALL) -> App:
    """The HTTP API on the engine: `Role.ALL` runs everything, `Role.API` only what answers
    requests (no dispatcher, scheduler or webhook sender: a worker sends)."""
    if role is Role.WORKER:
        raise ValueError("a worker serves no API: use run_worker")
    settings = settings or Settings.from_env()
    engine = build_engine(settings)
    context = AppContext(
        settings=settings,
        db=engine.db,
        keys=KeyResolver(engine.db, settings.admin_key),
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

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        await engine.start(role)
        try:
            yield
        finally:
            await engine.stop()

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
            Exception: _server_error,
        },
    )
    app.state.txmsg = context
    app.state.engine = engine
    app.state.dispatcher = engine.dispatcher
    app.state.scheduler = engine.scheduler
    app.state.exporter = engine.exporter
    app.state.webhooks = engine.webhooks
    app.state.lifecycle = engine.lifecycle
    app.state.bounce_listener = engine.bounce_listener
    return app


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    health_port: int | None = None,
    health_host: str = "127.0.0.1",
) -> None:
    """A worker process (`txmsg worker`): the engine without the HTTP API, until `stop` is set.

    Sends under way finish and record their outcomes before it returns. With `health_port`,
    `GET /health` answers 200 on it (for a supervisor or a load balancer's check).
    """
    engine = build_engine(settings)
    await engine.start(Role.WORKER)
    health = await start_health(health_port, health_host) if health_port is not None else None
    try:
        await stop.wait()
    finally:
        if health is not None:
            health.close()
            await health.wait_closed()
        await engine.stop()


async def start_health(port: int, host: str = "127.0.0.1") -> asyncio.Server:
    """A minimal HTTP/1.1 responder: `GET /health` is 200 `{"status":"ok"}`, anything else 404."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            while (await reader.readline()).strip():  # the headers: not needed
                pass
            parts = request_line.split()
            ok = len(parts) >= 2 and parts[0] == b"GET" and parts[1] == b"/health"
            body = b'{"status":"ok"}' if ok else b'{"title":"Not Found","status":404}'
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                b"content-length: "
                + str(len(body)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except ConnectionError:
            log.debug("a health check hung up before its answer")
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)
