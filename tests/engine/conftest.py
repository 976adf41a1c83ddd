"""Fixtures of the engine tests (the fake SMTP server and fake Twilio come from txmsg's own
pytest plugin: `smtp` from tests/conftest.py, `fake_twilio`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from txmsg.engine.providers import Providers


@pytest_asyncio.fixture
async def providers() -> AsyncIterator[Providers]:
    """The legs' providers (pooled SMTP connections, Twilio senders), closed after the test."""
    providers = Providers()
    try:
        yield providers
    finally:
        await providers.close()
