"""/api/v1/export-flows: delivery of the message export dataset to files (admin only)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core import export_flow as spec
from txmsg.store import export_flows as store


def _exporter(request: Request) -> Any:
    return request.app.state.exporter


def view(row: Any, now: Any) -> dict[str, Any]:
    out = spec.public_view(store.spec_of(row))
    out["watermark"] = row.watermark
    out["next_run_at"] = row.next_run_at
    out["running"] = row.lock_until is not None and row.lock_until > now
    out["created_at"] = row.created_at
    out["updated_at"] = row.updated_at
    return out


def run_view(row: Any) -> dict[str, Any]:
    return {
        "run": row.run,
        "status": row.status,
        "attempts": row.attempts,
        "records": row.records,
        "files": row.files,
        "error": row.error,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


async def create(request: Request) -> Response:
    await authorize(request)
    exporter = _exporter(request)
    parsed = spec.parse_create(await read_json(request), exporter.retention)
    now = exporter.clock()
    row = await context(request).db.write(store.create, parsed, now)
    return JSONResponse(view(row, now), status_code=201)


async def list_all(request: Request) -> Response:
    await authorize(request)
    now = _exporter(request).clock()
    rows = await context(request).db.read(store.list_all)
    return JSONResponse({"items": [view(r, now) for r in rows]})


async def get_one(request: Request) -> Response:
    await authorize(request)
    row = await context(request).db.read(store.require, request.path_params["name"])
    return JSONResponse(view(row, _exporter(request).clock()))


async def update(request: Request) -> Response:
    await authorize(request)
    body = await read_json(request)
    exporter = _exporter(request)
    now = exporter.clock()
    row = await context(request).db.write(
        store.patch, request.path_params["name"], body, exporter.retention, now
    )
    return JSONResponse(view(row, now))


async def delete(request: Request) -> Response:
    await authorize(request)
    now = _exporter(request).clock()
    await context(request).db.write(store.delete, request.path_params["name"], now)
    return Response(status_code=204)


async def run_now(request: Request) -> Response:
    """Runs the flow and answers when the run has ended (succeeded or failed)."""
    await authorize(request)
    run = await _exporter(request).run(request.path_params["name"])
    return JSONResponse(run_view(run))


async def list_runs(request: Request) -> Response:
    await authorize(request)
    rows = await context(request).db.read(store.list_runs, request.path_params["name"])
    return JSONResponse({"items": [run_view(r) for r in rows]})


routes = [
    resource("/api/v1/export-flows", POST=create, GET=list_all),
    resource("/api/v1/export-flows/{name}", GET=get_one, PATCH=update, DELETE=delete),
    resource("/api/v1/export-flows/{name}/run", POST=run_now),
    resource("/api/v1/export-flows/{name}/runs", GET=list_runs),
]
