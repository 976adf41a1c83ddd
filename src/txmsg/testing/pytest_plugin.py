"""pytest plugin of txmsg (entry point ``pytest11: txmsg``): ``fake_smtp`` and ``fake_twilio``.

``fake_smtp`` is a started :class:`~txmsg.testing.FakeSMTPServer` on a free loopback port,
running in the test's event loop and stopped after the test. It needs pytest-asyncio
(``pip install pytest-asyncio``) and an async test::

    @pytest.mark.asyncio  # or asyncio_mode = "auto" in your pytest configuration
    async def test_welcome_mail(fake_smtp):
        pool = SMTPPool(SMTPSettings(host=fake_smtp.host, port=fake_smtp.port))
        await pool.send("shop@example.com", ["ann@example.com"], message_bytes)
        [msg] = await fake_smtp.wait_for(1)
        assert msg.subject == "Welcome"

``fake_twilio`` is a started :class:`~txmsg.testing.FakeTwilio` (Twilio's Messages API on a
free loopback port): configure ``api_base_url=fake_twilio.base_url`` with its ``account_sid`` and
``auth_token``, then ``await fake_twilio.wait_for(1)`` and ``await fake_twilio.send_status(sms,
"delivered")`` to fire a signed status callback.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported by the fixtures: loading the plugin costs every pytest run
    from txmsg.testing.smtp import FakeSMTPServer
    from txmsg.testing.twilio import FakeTwilio

try:
    import pytest_asyncio
except ImportError:  # txmsg installed without its test extra: pytest must still start
    # Named by `name=`: the functions are not the ones defined in the other branch.
    @pytest.fixture(name="fake_smtp")
    def fake_smtp_needs_pytest_asyncio() -> None:
        pytest.fail("the fake_smtp fixture needs pytest-asyncio: pip install pytest-asyncio")

    @pytest.fixture(name="fake_twilio")
    def fake_twilio_needs_pytest_asyncio() -> None:
        pytest.fail("the fake_twilio fixture needs pytest-asyncio: pip install pytest-asyncio")

else:

    @pytest_asyncio.fixture
    async def fake_smtp(request: pytest.FixtureRequest) -> AsyncIterator[FakeSMTPServer]:
        """A started FakeSMTPServer on a free loopback port, in the test's event loop."""
        from txmsg.testing.smtp import FakeSMTPServer

        _needs_async_test(request, "fake_smtp")
        async with FakeSMTPServer() as server:
            yield server

    @pytest_asyncio.fixture
    async def fake_twilio(request: pytest.FixtureRequest) -> AsyncIterator[FakeTwilio]:
        """A started FakeTwilio (Twilio's Messages API) on a free loopback port, in the test's
        event loop."""
        from txmsg.testing.twilio import FakeTwilio

        _needs_async_test(request, "fake_twilio")
        async with FakeTwilio() as server:
            yield server


def _needs_async_test(request: pytest.FixtureRequest, name: str) -> None:
    """A sync test's fake would run on a loop nobody runs while the test does: it would never
    answer. Say so rather than let a client wait for its time-out."""
    function = getattr(request, "function", None)
    if function is not None and not inspect.iscoroutinefunction(function):
        pytest.fail(f"the {name} fixture serves async tests only: make {function.__name__} async")
