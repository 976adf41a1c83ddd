"""/t/o/{token} (open pixel) and /t/c/{token} (click redirect): public, the token is the key.

A genuine token always gets its answer: the pixel, or the redirect to the URL it signs, even
when its message is unknown or purged (nothing is recorded then) or recording fails. A forged,
altered or malformed token gets a 404 problem: no pixel, no redirect.

Hits are appended to the delivery log through the write funnel (group-committed with other
writes), flagged machine when they look like a scanner's or a prefetch (core/machine.py).
"""

from __future__ import annotations

import base64
import logging

from starlette.requests import Request
from starlette.responses import Response

from txmsg.api.context import context
from txmsg.api.routing import resource
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.errors import not_found
from txmsg.core.machine import hit_detail, machine_reason
from txmsg.core.tracking import (
    CLICK_PREFIX,
    OPEN_PREFIX,
    SECRET_NAME,
    read_click_token,
    read_open_token,
    redirect_location,
)
from txmsg.store.tracking import hit_target

log = logging.getLogger(__name__)

# A 1x1 transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Every hit must reach the server: no browser, proxy or mail client cache may answer it.
NO_STORE = {"Cache-Control": "no-store"}


async def _secret(request: Request) -> str | None:
    return await context(request).secrets.get(SECRET_NAME)


async def _record(request: Request, pkey: str, kind: Interaction, url: str | None) -> None:
    """Append the hit, unless its message is unknown; never fails the answer."""
    ctx = context(request)
    try:
        target = await ctx.db.read(hit_target, pkey)
        if target is None:
            return  # unknown or purged: nothing to attach the hit to
        at = ctx.db.clock.now()  # compared with its send's time, stamped by a worker
        agent = request.headers.get("user-agent")
        reason = machine_reason(
            request.method, agent, target.sent_at, at, ctx.settings.tracking_machine_seconds
        )
        detail = hit_detail(reason, agent, url)
        await ctx.append_log(LogEntry(target.pkey, target.event_id, kind, at, detail))
    except Exception:
        # The recipient still gets the image or the page: a lost hit is logged, not shown.
        log.exception("recording a tracking hit failed")


async def open_pixel(request: Request) -> Response:
    secret = await _secret(request)
    pkey = read_open_token(secret, request.path_params["token"]) if secret else None
    if pkey is None:
        raise not_found("this tracking link is not valid")
    await _record(request, pkey, Interaction.OPENED, None)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


async def click(request: Request) -> Response:
    secret = await _secret(request)
    claim = read_click_token(secret, request.path_params["token"]) if secret else None
    if claim is None:
        raise not_found("this tracking link is not valid")
    pkey, url = claim
    await _record(request, pkey, Interaction.CLICKED, url)
    return Response(status_code=302, headers={**NO_STORE, "Location": redirect_location(url)})


routes = [
    resource(OPEN_PREFIX + "{token}", GET=open_pixel),
    resource(CLICK_PREFIX + "{token}", GET=click),
]
