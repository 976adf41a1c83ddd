"""POST /api/v1/feedback: bounces and spam complaints that providers report by HTTP (admin).

Recorded like the bounce listener's reports (one write-funnel batch: the delivery-log entries
with the quarantine or denylist of the address, all or none); a report already recorded for
the message (same PKey and kind) is not recorded again.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.auth import authorize
from txmsg.api.bodies import read_json
from txmsg.api.context import context
from txmsg.api.responses import JSONResponse
from txmsg.api.routing import resource
from txmsg.core.errors import not_found, unprocessable
from txmsg.core.feedback import parse_reports
from txmsg.core.timeutil import utcnow
from txmsg.store.feedback import NEVER_SENT, statuses


async def report(request: Request) -> Response:
    await authorize(request)
    reports = parse_reports(await read_json(request), utcnow())
    ctx = context(request)
    pkeys = {r.pkey for r in reports}
    found = await ctx.db.read(statuses, pkeys)
    missing = sorted(pkeys - found.keys())
    if missing:
        raise not_found(f"no message with PKey {_some(missing)}: nothing was recorded")
    unsent = sorted(f"{p} ({found[p]})" for p in pkeys if found[p] in NEVER_SENT)
    if unsent:
        raise unprocessable(
            f"never sent, so no feedback can be about it: {_some(unsent)}; nothing was recorded"
        )
    await ctx.record_feedback(reports)
    return JSONResponse({"accepted": len(reports)}, status_code=202)


def _some(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


routes = [resource("/api/v1/feedback", POST=report)]
