"""Fakes for test authors: a fake SMTP server and a fake Twilio (plus a pytest plugin).

The fakes are imported when first named (`from txmsg.testing import FakeTwilio`): pytest
loads this package's plugin in every run where txmsg is installed, and the fakes' servers
(aiosmtpd, Starlette, uvicorn, aiohttp) would otherwise be imported by each of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txmsg.testing.running import WaitTimeout
    from txmsg.testing.smtp import FakeSMTPServer, ReceivedMessage
    from txmsg.testing.twilio import FakeSms, FakeTwilio

__all__ = ["FakeSMTPServer", "FakeSms", "FakeTwilio", "ReceivedMessage", "WaitTimeout"]

_MODULES = {
    "FakeSMTPServer": "txmsg.testing.smtp",
    "ReceivedMessage": "txmsg.testing.smtp",
    "FakeSms": "txmsg.testing.twilio",
    "FakeTwilio": "txmsg.testing.twilio",
    "WaitTimeout": "txmsg.testing.running",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name]), name)
