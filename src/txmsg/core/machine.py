"""Telling machine opens and clicks (scanners, prefetch) from people's.

Security gateways and link scanners fetch every URL of a message as it arrives; some mail
clients prefetch images. Their hits are kept in the delivery log, flagged `machine`, and
counted apart (`opened_machine`, `clicked_machine`): never in opened/clicked or the unique
counts. A hit is machine when:
- it is a HEAD request (browsers GET; link checkers probe with HEAD);
- it comes within `window` seconds of the send (no person opens or clicks that fast), or
  before the send was even recorded;
- its user agent is missing or names a known scanner or an HTTP library (MACHINE_AGENTS).

Not machine: Gmail's and Yahoo's image proxies ("GoogleImageProxy", "YahooMailProxy") fetch
the pixel when the recipient opens the message. Apple Mail Privacy Protection prefetches
through proxies whose user agent looks like Mail's own: only the timing rule can catch it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Lower-case substrings of the user agents of scanners, link previewers and HTTP libraries.
MACHINE_AGENTS = (
    "barracuda",  # Barracuda email security gateway
    "mimecast",  # Mimecast URL protect
    "proofpoint",  # Proofpoint URL defense
    "ppops-",  # Proofpoint's scanner fleet
    "bingpreview",  # Microsoft Defender for Office 365 Safe Links
    "symantec",  # Symantec / Broadcom email security
    "trendmicro",  # Trend Micro email security
    "headlesschrome",  # sandboxes detonating links in a headless browser
    "curl/",
    "wget/",
    "python-requests",
    "python-httpx",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww-perl",
    "bot/",
    "crawler",
    "spider",
)

DEFAULT_WINDOW_SECONDS = 2.0
MAX_AGENT_LENGTH = 256  # stored with the hit, cut to this length


def machine_reason(
    method: str,
    user_agent: str | None,
    sent_at: datetime | None,
    at: datetime,
    window: float,
) -> str | None:
    """Why a hit at `at` looks like a machine's ("head", "too_early", "user_agent"), or None."""
    if method == "HEAD":
        return "head"
    if sent_at is None or (at - sent_at).total_seconds() < window:
        return "too_early"
    agent = (user_agent or "").lower()
    if not agent.strip() or any(marker in agent for marker in MACHINE_AGENTS):
        return "user_agent"
    return None


def hit_detail(
    reason: str | None, user_agent: str | None, url: str | None = None
) -> dict[str, Any]:
    """The delivery-log detail of an open (no URL) or a click. No IP address is kept."""
    detail: dict[str, Any] = {}
    if url is not None:
        detail["url"] = url
    detail["machine"] = reason is not None
    if reason is not None:
        detail["machine_reason"] = reason
    if user_agent:
        detail["user_agent"] = user_agent[:MAX_AGENT_LENGTH]
    return detail


def is_machine(detail: dict[str, Any] | None) -> bool:
    return bool((detail or {}).get("machine"))
