"""pytest plugin of txmsg (entry point ``pytest11: txmsg``): ``fake_smtp`` and ``fake_twilio``.

``fake_smtp`` is a started :class:`~txmsg.testing.FakeSMTPServer` on a free loopback port,
running in the test's event loop and stopped after the test. It needs pytest-asyncio
(``pip install 'txmsg[test]'`` brings it)::

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
        pytest.fail("the fake_smtp fixture needs pytest-asyncio: pip install 'txmsg[test]'")

    @pytest.fixture(name="fake_twilio")
    def fake_twilio_needs_pytest_asyncio() -> None:
        pytest.fail("the fake_twilio fixture needs pytest-asyncio: pip install 'txmsg[test]'")

else:

    @pytest_asyncio.fixture
    async def fake_smtp() -> AsyncIterator[FakeSMTPServer]:
        from txmsg.testing.smtp import FakeSMTPServer

        async with FakeSMTPServer() as server:
            yield server

    @pytest_asyncio.fixture
    async def fake_twilio() -> AsyncIterator[FakeTwilio]:
        from txmsg.testing.twilio import FakeTwilio

        async with FakeTwilio() as server:
            yield server
