"""pytest plugin of txmsg (entry point ``pytest11: txmsg``): ``fake_smtp`` and ``fake_twilio``.

``fake_smtp`` is a started :class:`~txmsg.testing.FakeSMTPServer` on a free loopback port,
running in the test's event loop and stopped after the test. It needs pytest-asyncio
(``pip install pytest-asyncio``) and an async test::

    import aiosmtplib

    @pytest.mark.asyncio  # or asyncio_mode = "auto" in your pytest configuration
    async def test_welcome_mail(fake_smtp):
        mail = b"Subject: Welcome\\r\\n\\r\\nHello Ann\\r\\n"
        await aiosmtplib.send(
            mail,
            sender="shop@example.com",
            recipients=["ann@example.com"],
            hostname=fake_smtp.host,
            port=fake_smtp.port,
        )
        [msg] = await fake_smtp.wait_for(1)
        assert msg.subject == "Welcome" and msg.rcpt_tos == ["ann@example.com"]

``fake_twilio`` is a started :class:`~txmsg.testing.FakeTwilio` (Twilio's Messages API on a
free loopback port): configure ``api_base_url=fake_twilio.base_url`` with its ``account_sid`` and
``auth_token`` (the official client: ``Client(sid, token,
http_client=AsyncTwilioHttpClient())`` and ``client.api.base_url = fake_twilio.base_url``), then
``await fake_twilio.wait_for(1)`` and ``await fake_twilio.send_status(sms, "delivered")`` to fire
a signed status callback.

A test run on another event loop than the fixtures' (``loop_scope`` wider than
``asyncio_default_fixture_loop_scope``) fails at once, saying so: its fake would never answer.
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
    answer. So would the fake of a test run on another loop than its fixtures' (a wider
    `loop_scope`). Say so rather than let a client wait for its time-out."""
    function = getattr(request, "function", None)
    if function is None:
        return
    if not inspect.iscoroutinefunction(function):
        pytest.fail(f"the {name} fixture serves async tests only: make {function.__name__} async")
    test_scope, fixture_scope = _loop_scopes(request)
    if test_scope != fixture_scope:
        pytest.fail(
            f"the {name} fixture runs on the {fixture_scope}-scoped event loop, "
            f"{function.__name__} on the {test_scope}-scoped one: the fake would never answer "
            "while the test runs. Run the fixtures on the test's loop: "
            f"asyncio_default_fixture_loop_scope = {test_scope} in your pytest configuration."
        )


def _loop_scopes(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The scopes of the loops pytest-asyncio runs the test and this fixture on: the test's
    `asyncio` mark's `loop_scope` or `asyncio_default_test_loop_scope`; the fixture's
    `asyncio_default_fixture_loop_scope`, else its own scope (function)."""
    config = request.config
    try:
        test_default = config.getini("asyncio_default_test_loop_scope")
        fixture_scope = config.getini("asyncio_default_fixture_loop_scope")
    except ValueError:  # a pytest-asyncio without these options: one loop per test
        return "function", "function"
    marker = request.node.get_closest_marker("asyncio")
    marked = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") if marker else None
    test_scope = marked or test_default or "function"
    if not fixture_scope or fixture_scope == "fixture-scope":
        fixture_scope = "function"
    return str(test_scope), str(fixture_scope)
