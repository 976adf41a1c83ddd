"""SMS through Twilio's official library, on its asynchronous HTTP client (aiohttp).

One `TwilioSender` per channel configuration revision holds one `Client` and one pooled HTTP
session: connections to Twilio are kept alive and reused across sends, nothing blocks the event
loop. Every outcome is turned into the engine's `TransientSendError` (5xx, 408/409/425/429,
authentication failures, 4xx without a Twilio error code, connection errors, timeouts: retry
later) or `PermanentSendError` (other 4xx, with Twilio's error code).
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from txmsg.core.delivery import PermanentSendError, SendError, TransientSendError
from txmsg.core.twilio_config import DEFAULT_API_BASE_URL, TwilioSettings
from txmsg.core.twilio_status import status_callback_url

# The library logs every request at INFO (URL and headers, never the body): keep it quiet.
_quiet = logging.getLogger("txmsg.channels.twilio.http")
_quiet.setLevel(logging.WARNING)


class TwilioSender:
    """Sends SMS for one channel configuration; `close()` ends its HTTP session."""

    def __init__(self, settings: TwilioSettings) -> None:
        self._settings = settings
        self._http = AsyncTwilioHttpClient(pool_connections=True, logger=_quiet)
        self._client = Client(settings.account_sid, settings.auth_token, http_client=self._http)
        if settings.api_base_url.rstrip("/") != DEFAULT_API_BASE_URL:
            # Another API host (a proxy, or a fake in tests): send there as given. TWILIO_EDGE /
            # TWILIO_REGION rewrite twilio.com host names only, so they are left out here and
            # keep working, read by the library, when the default host is used.
            self._client.api.base_url = settings.api_base_url.rstrip("/")
            self._client.edge = None
            self._client.region = None

    async def send(self, to: str, body: str, callback_pkey: str | None = None) -> str:
        """Create the message; returns its SID (SM...)."""
        s = self._settings
        kwargs: dict[str, str] = {"to": to, "body": body}
        if s.messaging_service_sid:
            kwargs["messaging_service_sid"] = s.messaging_service_sid
        if s.from_number:
            kwargs["from_"] = s.from_number
        if s.status_callback_base_url and callback_pkey:
            base = s.status_callback_base_url
            kwargs["status_callback"] = status_callback_url(base, callback_pkey)
        try:
            async with asyncio.timeout(s.timeout):
                message = await self._client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            message = _LIBRARY_PREFIX.sub("", str(exc.msg or ""))
            raise _classify(exc.status, exc.code, message) from None
        except TwilioServiceException as exc:  # Twilio's newer RFC 9457 error answers
            raise _classify(exc.status, exc.code, exc.detail or exc.title) from None
        except TimeoutError:
            raise TransientSendError(f"Twilio did not answer within {s.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise TransientSendError(f"Twilio connection failed: {type(exc).__name__}") from None
        except (TwilioException, ValueError) as exc:  # an answer that is not Twilio's JSON
            raise TransientSendError(f"Twilio answer not understood: {exc}") from None
        if not message.sid:
            raise TransientSendError("Twilio accepted the message without a SID")
        return message.sid

    async def close(self) -> None:
        await self._http.close()


# The library puts "Unable to create record: " before Twilio's own message.
_LIBRARY_PREFIX = re.compile(r"^Unable to \w+ record:? ?")


# Answers that say nothing about the recipient: a timeout, a conflict, too early, too many.
_TRANSIENT_4XX = {408, 409, 425, 429}
# Authentication failed: the channel configuration's token is wrong (rotated, revoked). A fault
# of the configuration, not of the message: retried until the event expires, so that fixing
# the token sends what waits instead of failing it.
_AUTH_CODE = 20003


def _classify(status: int, code: int | None, message: str) -> SendError:
    """Transient: 5xx, 408/409/425/429, 401, 4xx without a Twilio error code; else permanent."""
    # The library uses the HTTP status as code when the answer held none (a proxy's error).
    twilio_code = code if code and code != status else None
    label = f"Twilio error {twilio_code}" if twilio_code else "Twilio error"
    text = " ".join(message.split())[:500]
    reason = f"{label} (HTTP {status}): {text}" if text else f"{label} (HTTP {status})"
    if (
        status >= 500
        or status in _TRANSIENT_4XX
        or status == 401
        or twilio_code == _AUTH_CODE
        or twilio_code is None  # not Twilio's answer: a proxy or gateway in between
    ):
        return TransientSendError(reason)
    return PermanentSendError(reason)
