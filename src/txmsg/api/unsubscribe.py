"""/unsubscribe/{token}: the link in profile-based messages (no API key: the token is the key).

POST unsubscribes: a mail client's RFC 8058 one-click request (`List-Unsubscribe=One-Click`)
or the page's button. GET shows the page only: link scanners that follow every URL of a
message must not unsubscribe anyone.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from txmsg.api.bodies import read_body
from txmsg.api.context import context
from txmsg.api.routing import resource
from txmsg.core.errors import not_found
from txmsg.core.kinds import Channel
from txmsg.core.unsubscribe import SECRET_NAME, UnsubscribeClaim, is_one_click, read_token
from txmsg.store.unsubscribe import message_of, unsubscribe

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1><p>{text}</p>{form}</main></body></html>
"""


async def _claim(request: Request) -> UnsubscribeClaim:
    secret = await context(request).secrets.get(SECRET_NAME)
    claim = read_token(secret, request.path_params["token"]) if secret else None
    if claim is None:
        raise not_found("this unsubscribe link is not valid")
    return claim


def _page(title: str, text: str, form: str = "", status_code: int = 200) -> Response:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), text=html.escape(text), form=form),
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def _gone() -> Response:
    """A genuine link that no longer names anyone (its profile was deleted, perhaps created
    again under the same id): nothing was recorded, and the page does not say otherwise. 410,
    so a one-click client does not report the unsubscribe as done either."""
    return _page(
        "This link is no longer valid",
        "This unsubscribe link belongs to a message whose recipient is no longer on file: "
        "nothing was changed. To stop receiving messages, use the link of a recent message.",
        status_code=410,
    )


async def page(request: Request) -> Response:
    claim = await _claim(request)
    if await context(request).db.read(message_of, claim) is None:
        return _gone()
    channel = "emails" if claim.channel == Channel.EMAIL else "text messages"
    form = (
        '<form method="post"><input type="hidden" name="confirm" value="yes">'
        f'<button type="submit">Unsubscribe from {channel}</button></form>'
    )
    return _page("Unsubscribe", f"Stop receiving these {channel}?", form)


async def confirm(request: Request) -> Response:
    claim = await _claim(request)
    body = await read_body(request)
    one_click = is_one_click(request.headers.get("content-type", ""), body)
    db = context(request).db
    if not await db.write(unsubscribe, claim, "one-click" if one_click else "page", db.clock.now()):
        return _gone()
    return _page("Unsubscribed", "You will not receive these messages any more.")


routes = [resource("/unsubscribe/{token}", GET=page, POST=confirm)]
