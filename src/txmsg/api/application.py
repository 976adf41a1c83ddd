"""The application: Starlette, with the trigger API answered ahead of the generic routing.

`POST /rest/mc/{eventId}` is nearly all of the traffic. Starlette's middleware chain (error
handlers, each wrapping every `send`) and its router cost about a fifth of a trigger's CPU,
measured over HTTP. `App` answers that one request shape itself, with the same endpoint and
the same exception handlers; every other request, and the trigger route itself when the app
runs under a root path, with user middleware or in debug mode, goes through Starlette as usual.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler, Message, Receive, Scope, Send

from txmsg.api import trigger
from txmsg.store.outage import OutageLog
from txmsg.store.startup_errors import startup_problem

log = logging.getLogger("txmsg.api")

# Requests whose success says nothing of the database (they may not read it).
_NOT_THE_DATABASE = ("/health", "/ready", "/metrics", "/openapi.yaml", "/console")


class App(Starlette):
    # Why the lifespan's start failed, in one line, when the operator can fix it (a database
    # that cannot be reached, a port in use): told instead of Starlette's traceback.
    _startup_problem: str | None = None
    # The 503s of a database outage: told once it begins and once it ends, not one traceback
    # per request (the server would log each error the exception handler answered).
    _outage: OutageLog | None = None

    @property
    def outage(self) -> OutageLog:
        if self._outage is None:
            self._outage = OutageLog(log, "answering requests (503)")
        return self._outage

    def startup_failed(self, exc: BaseException, database_url: str, data_dir: Path) -> None:
        """The lifespan's start raised `exc`: keep the line that says why, if there is one."""
        self._startup_problem = startup_problem(exc, database_url, data_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] == "http" and self._plain_stack():
            event_id = trigger.trigger_path(scope)
            if event_id is not None:
                scope["app"] = self
                scope["path_params"] = {"eventId": event_id}
                await self._trigger(scope, receive, send)
                return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            # Answered already (503) by the server-error handler, which raises it again for
            # the server to log: a known outage is told by the outage log instead.
            if not self.outage.failed(exc):
                raise
            return
        if self.outage.ongoing and not str(scope.get("path", "")).startswith(_NOT_THE_DATABASE):
            self.outage.ok()

    async def _trigger(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload, replayed = await trigger.accept(scope, receive)
        except Exception as exc:
            handler, server_error = self._handler_for(exc)
            if handler is None:
                raise
            # Starlette types a handler as an HTTP or a WebSocket one; this is an HTTP request,
            # and a WebSocket handler's answer (not a Response) is refused below.
            answer = handler(Request(scope, receive), exc)  # type: ignore[arg-type]
            response = await answer if inspect.isawaitable(answer) else answer
            if not isinstance(response, Response):
                raise  # a WebSocket handler: never registered here
            await response(scope, receive, send)
            if server_error and not self.outage.failed(exc):
                raise  # logged by the server, as Starlette's ServerErrorMiddleware does
            return
        await trigger.send_accepted(send, payload, replayed)
        self.outage.ok()

    def _lifespan_send(self, send: Send) -> Send:
        async def told(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self._startup_problem:
                message = {**message, "message": f"txmsg could not start: {self._startup_problem}"}
            await send(message)

        return told

    def _plain_stack(self) -> bool:
        """Starlette's stack adds nothing the shortcut leaves out: no user middleware, no
        debug pages, no body limit of Starlette's own (the endpoint applies txmsg's)."""
        return not self.user_middleware and not self.debug and self.max_body_size is None

    def _handler_for(self, exc: Exception) -> tuple[ExceptionHandler | None, bool]:
        """The handler Starlette would pick, and whether it is the server-error one."""
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in self.exception_handlers:
                return self.exception_handlers[cls], False
        server = self.exception_handlers.get(Exception) or self.exception_handlers.get(500)
        return server, True
