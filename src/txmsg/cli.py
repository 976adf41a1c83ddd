"""The `txmsg` command: serve, worker, migrate, export run, keys, check, fake smtp|twilio.

Each command imports what it needs when it runs (the app, the engine, SQLAlchemy, uvicorn,
asyncio itself): at the top, only what builds the parser, so `txmsg --help` or `--version`
does not load the engine (1.5 s of imports, against under 0.1 s for the parser).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from txmsg import __version__
from txmsg.commands import access_log, logs, parent_watch
from txmsg.commands.database import (
    STARTUP_FAILURE,
    NoDatabase,
    missing_message,
    open_existing,
    sqlite_path,
)
from txmsg.commands.hangup import Hangup
from txmsg.config import Settings, unknown_variables

if TYPE_CHECKING:
    import asyncio
    from multiprocessing.synchronize import Event

    import uvicorn

    from txmsg.app import App


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help says its default, but a required option's: it has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required:
            return action.help
        return super()._get_help_string(action)


HELP = _Help
# `serve --processes N`: uvicorn's supervisor spawns N processes, each of which builds its app
# (`app_of_environment`) from the command's options, left in the environment under this name.
PROCESS_OPTIONS_ENV = "TXMSG_SERVE_PROCESS_OPTIONS"
MAX_PORT = 65535
# Connections a listening port holds before they are accepted (uvicorn's default, which it
# passes to listen() again).
BACKLOG = 2048


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from txmsg.api.ops_port import OpsAddress
    from txmsg.app import Role, create_app
    from txmsg.engine.tuning import tune_process

    public_url = f"http://{args.host}:{args.port}"
    if args.access_log:
        access_log.install()  # before any request: paths name recipients and hold tokens
    serving: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_level": args.log_level,
        "log_config": logs.uvicorn_config(args.log_format),
        "access_log": args.access_log,
        "timeout_graceful_shutdown": 30,
    }
    if args.processes > 1:
        refusal = _one_process_only(args, settings)
        if refusal is not None:
            print(f"txmsg: {refusal}", file=sys.stderr)
            return 2
    # The port first, before a database is made or migrated: a port another process holds is
    # told in one line (as `main` tells any start-up problem), with nothing left behind.
    listening = _bind(args.host, args.port)
    if args.processes > 1:
        options = {
            "role": args.role,
            "log_level": args.log_level,
            "log_format": args.log_format,
            "public_url": public_url,
            "access_log": args.access_log,
            "supervisor_pid": os.getpid(),
            # Each process's own figures on a port of its own: the first free of N from it.
            "metrics": [args.metrics_host, args.metrics_port, args.processes]
            if args.metrics_port is not None
            else None,
        }
        os.environ[PROCESS_OPTIONS_ENV] = json.dumps(options)
        config = uvicorn.Config(
            f"{__name__}:app_of_environment", factory=True, workers=args.processes, **serving
        )
        _running_on(listening, args.host)
        return _supervise(config, listening)
    if settings.public_url is None:
        # Links in messages (unsubscribe) need an absolute URL: this server's, unless set.
        settings = replace(settings, public_url=public_url)
    tune_process()
    ops = None
    if args.metrics_port is not None:
        ops = OpsAddress(args.metrics_host, args.metrics_port)
    app = create_app(settings, role=Role(args.role), ops_port=ops)
    server = uvicorn.Server(uvicorn.Config(app, **serving))
    _running_on(listening, args.host)
    hangup = Hangup()
    hangup.install(lambda: setattr(server, "should_exit", True))
    # SIGINT is raised again once the server stopped, as a KeyboardInterrupt (as uvicorn.run).
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:
        return STARTUP_FAILURE
    hangup.after_stop()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """The public port's socket, listening (connections wait until the app is up); an OSError
    naming `--host` or `--port` when it cannot be."""
    from txmsg.store.startup_errors import cannot_listen

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    problem: OSError | None = None
    try:
        sock.bind((host, port))
        # Listening at once: two processes binding one port (SO_REUSEADDR lets both while
        # neither listens) are told apart here, not after one has started its app.
        sock.listen(BACKLOG)
    except socket.gaierror as exc:
        problem = cannot_listen(f"--host {host}", OSError(errno.EADDRNOTAVAIL, exc.strerror))
    except OSError as exc:
        problem = cannot_listen(f"--port {host}:{port}", exc)
    if problem is not None:  # raised here, not in the handler: the bind's error is no cause
        sock.close()
        raise problem
    sock.set_inheritable(True)  # for `--processes N`: each process serves it
    return sock


def _running_on(sock: socket.socket, host: str) -> None:
    """What uvicorn says when it binds the socket itself (once its Config set up its logs)."""
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, sock.getsockname()[1]
    )


def _supervise(config: uvicorn.Config, listening: socket.socket) -> int:
    """Run `config.workers` processes under uvicorn's supervisor until it stops; 3 (as one
    process exits) when it stopped because a process failed to start, else 0."""
    from uvicorn.supervisors import Multiprocess

    supervisor = Multiprocess(config, sockets=[listening])
    supervisor.run()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


def app_of_environment() -> App:
    """The app of one of `serve --processes N`'s processes (uvicorn's factory: they are spawned,
    not forked), from the options the command left in the environment."""
    from txmsg.api.ops_port import OpsAddress
    from txmsg.app import Role, create_app
    from txmsg.engine.tuning import tune_process

    text = os.environ.get(PROCESS_OPTIONS_ENV)
    if text is None:
        raise RuntimeError(f"{PROCESS_OPTIONS_ENV} is not set: start them with txmsg serve")
    options = json.loads(text)
    logs.configure(options["log_level"], options["log_format"])
    if "supervisor_pid" in options:  # absent: set by a parent of an earlier release
        parent_watch.stop_with(options["supervisor_pid"])
    if options.get("access_log"):  # absent: set by a parent of an earlier release
        access_log.install()
    tune_process()
    settings = Settings.from_env()
    if settings.public_url is None:
        settings = replace(settings, public_url=options["public_url"])
    metrics = options["metrics"]
    ops = OpsAddress(*metrics) if metrics is not None else None
    return create_app(settings, role=Role(options["role"]), ops_port=ops)


def _one_process_only(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why `serve --processes N` cannot run as asked: a port that only one process can hold."""
    if args.metrics_port is not None and not _ports_fit(args.metrics_port, args.processes):
        return _past_last_port("--metrics-port", args.metrics_port, args.processes)
    if settings.bounce_listen:
        return (
            "TXMSG_BOUNCE_LISTEN: the bounce listener's port serves one process; with "
            "--processes, run it in a `txmsg serve --role api` of its own"
        )
    return None


def _until_signalled(
    run: Callable[[asyncio.Event], Awaitable[None]], hangup: Hangup | None = None
) -> int:
    """Run `run(stop)` on uvloop; SIGTERM and SIGINT set `stop`, and SIGHUP with `hangup`."""
    import asyncio

    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if hangup is not None and hangup.listening:
            loop.add_signal_handler(signal.SIGHUP, hangup.on_signal(stop.set))
        await run(stop)

    uvloop.run(main())
    return 0


def _ports_fit(first: int, count: int) -> bool:
    """Whether ports `first` to `first + count - 1` all exist (one for each process)."""
    return first > 0 and first + count - 1 <= MAX_PORT


def _past_last_port(option: str, first: int, count: int) -> str:
    return (
        f"{option} {first} with {count} processes: ports up to {first + count - 1} (> {MAX_PORT})"
    )


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.commands.supervisor import supervise

    if args.health_port is not None and not _ports_fit(args.health_port, args.processes):
        refusal = _past_last_port("--health-port", args.health_port, args.processes)
        print(f"txmsg: {refusal}", file=sys.stderr)
        return 2

    # It sends what an API process accepts: from the same database, never a new empty one.
    path = sqlite_path(settings.resolved_database_url)
    if path is not None and not path.is_file():
        print(f"txmsg: {missing_message(settings, path)}", file=sys.stderr)
        return STARTUP_FAILURE  # it cannot start, as with an unreachable database
    options = {
        "processes": args.processes,
        "health_host": args.health_host,
        "health_port": args.health_port,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    if args.processes > 1:
        return supervise(
            _worker_process, {**options, "supervisor_pid": os.getpid()}, args.processes
        )
    hangup = Hangup()
    code = _run_worker(options, settings, hangup=hangup)
    if code == 0:
        hangup.after_stop()
    return code


def _worker_process(options: dict[str, Any], ready: Event) -> None:
    """One of `worker --processes N`'s processes (spawned: it sets up its logging again);
    `ready` is set once it runs. A hang-up is the supervisor's to act on (it restarts them)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(options["log_level"], options["log_format"])
    parent_watch.stop_with(options["supervisor_pid"])
    sys.exit(_run_worker(options, Settings.from_env(), ready.set))


def _run_worker(
    options: dict[str, Any],
    settings: Settings,
    ready: Callable[[], None] | None = None,
    hangup: Hangup | None = None,
) -> int:
    """A worker until SIGTERM or SIGINT, or SIGHUP with `hangup` (sends under way finish,
    their outcomes recorded); 3 when it could not start (the database, the health port), as
    `serve` exits."""
    from txmsg.api.ops_port import OpsAddress
    from txmsg.app import run_worker
    from txmsg.engine.tuning import tune_process

    ops = None
    if options["health_port"] is not None:
        # With N processes, each answers on the first free of N ports.
        ops = OpsAddress(options["health_host"], options["health_port"], options["processes"])
    started = threading.Event()
    tune_process()
    try:

        def on_start() -> None:
            started.set()
            if ready is not None:
                ready()

        return _until_signalled(
            lambda stop: run_worker(settings, stop, ops, started=on_start), hangup
        )
    except Exception as exc:
        if started.is_set():
            raise
        problem = _startup_problem(exc, settings)
        if problem is None:
            logging.getLogger("txmsg.worker").exception("the worker could not start")
        else:
            logging.getLogger("txmsg.worker").error("the worker could not start: %s", problem)
        return STARTUP_FAILURE


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from txmsg.engine.database import open_database, unlock_secrets
    from txmsg.store.readiness import schema_state
    from txmsg.store.startup_errors import address_of

    async def run() -> str | None:
        db = open_database(settings)
        try:
            await unlock_secrets(db, settings)
            before = (await schema_state(db)).current
            await db.migrate()
            return before
        finally:
            await db.dispose()

    from txmsg.store.migrations import head_revision

    before = asyncio.run(run())  # a failure the operator fixes is one line (main)
    head = head_revision()
    where = address_of(settings.resolved_database_url)
    if before is None:
        print(f"created the database schema at revision {head} ({where}): the latest schema")
    elif before != head:
        print(f"upgraded the database schema from revision {before} to {head} ({where})")
    else:
        print(f"database is at the latest schema, revision {head} ({where}): nothing to do")
    return 0


async def _reseal(_args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.store.sealing import reseal_all
    from txmsg.store.tables import metadata

    db = await open_existing(settings)
    try:
        count = await db.write(reseal_all, metadata)
    finally:
        await db.dispose()
    print(f"{count} stored secret(s) sealed with the first secret key")
    return 0


async def _export_run(args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.api.export_flows import run_view
    from txmsg.api.responses import dumps
    from txmsg.core.errors import DomainError
    from txmsg.engine.exporter import Exporter

    db = await open_existing(settings)
    try:
        await db.sync_clock()  # the flow's lock and run times are the database's
        row = await Exporter(db, settings.export_retention, clock=db.clock.now).run(args.name)
    except DomainError as exc:  # unknown flow, or running elsewhere
        print(f"txmsg: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    print(dumps(run_view(row)).decode())
    return 0 if row.status == "succeeded" else 1


def _say(line: str) -> None:
    print(line, flush=True)  # at once, even into a pipe: a fake's output is read as it comes


def _fake_smtp(args: argparse.Namespace, _settings: Settings) -> int:
    from txmsg.testing.runner import run_smtp

    return _until_signalled(lambda stop: run_smtp(args.host, args.port, args.http_port, stop, _say))


def _fake_twilio(args: argparse.Namespace, _settings: Settings) -> int:
    from txmsg.testing.runner import run_twilio

    return _until_signalled(
        lambda stop: run_twilio(
            args.host,
            args.port,
            args.account_sid,
            args.auth_token,
            stop,
            deliver=not args.no_receipts,
            out=_say,
        )
    )


def _common(migrates: bool = True) -> argparse.ArgumentParser:
    """The options of every command (`migrates`: of one that may run Alembic's migrations)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default="info",
        choices=logs.LEVELS,
        help="log level (debug also shows Alembic's migration steps)" if migrates else "log level",
    )
    common.add_argument(
        "--log-format",
        default="text",
        choices=logs.FORMATS,
        help="json: one object a line (time, level, logger, message, PKey, eventId, status)",
    )
    return common


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"a port is 1 to {MAX_PORT}, not {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_serving(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API (and, by default, the worker too)",
        parents=common,
        formatter_class=HELP,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address the HTTP API listens on")
    serve.add_argument("--port", type=_port, default=8025, help="port of the HTTP API")
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request line (addresses, PKeys, tokens and query values redacted)",
    )
    serve.add_argument(
        "--role",
        choices=("all", "api"),
        default="all",
        help="all: API and worker in one process; api: the API only (a `txmsg worker` sends)",
    )
    serve.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="also serve /health, /ready and /metrics on this port, without a key (with "
        "--processes N, on N ports from this one: one for each process)",
    )
    serve.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics port")
    serve.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="processes serving the port (one per core), each as `serve` alone would",
    )
    serve.set_defaults(func=_serve)
    worker = sub.add_parser(
        "worker", help="send queued events: no HTTP API", parents=common, formatter_class=HELP
    )
    worker.add_argument(
        "--health-port",
        type=_port,
        default=None,
        help="answer GET /health, /ready and /metrics on this port (with --processes N, on N "
        "ports from this one: one for each process)",
    )
    worker.add_argument("--health-host", default="127.0.0.1", help="address of the health port")
    worker.add_argument(
        "--processes",
        type=_positive,
        default=1,
        help="worker processes under this one (with --health-port, on N ports from it)",
    )
    worker.set_defaults(func=_worker)
    migrate = sub.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        parents=common,
        formatter_class=HELP,
    )
    migrate.set_defaults(func=_migrate)


async def _check(args: argparse.Namespace, settings: Settings) -> int:
    from txmsg.commands.check import run_check

    return await run_check(args, settings)


def _add_admin(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    from txmsg.commands import keys

    export = sub.add_parser("export", help="message export flows", formatter_class=HELP)
    export_sub = export.add_subparsers(dest="export_command", required=True)
    export_run = export_sub.add_parser(
        "run", help="run an export flow now; prints the run", parents=common, formatter_class=HELP
    )
    export_run.add_argument("name", help="the export flow's name")
    export_run.set_defaults(func=_export_run)
    keys.add_parser(sub, common, HELP)
    reseal = sub.add_parser(
        "reseal",
        help="seal every stored secret again with the first secret key (key rotation)",
        parents=common,
        formatter_class=HELP,
    )
    reseal.set_defaults(func=_reseal)
    checking_help = (
        "check the settings, the database and each channel's provider; exit 1 on a failure, "
        "3 when the database cannot be used (as every command)"
    )
    checking = sub.add_parser(
        "check",
        help=checking_help,
        description=checking_help,
        parents=common,
        formatter_class=HELP,
    )
    checking.set_defaults(func=_check)


def _add_fakes(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    fake = sub.add_parser("fake", help="fake SMTP or Twilio servers for try-outs and tests")
    fake_sub = fake.add_subparsers(dest="fake_command", required=True)
    smtp = fake_sub.add_parser(
        "smtp",
        help="an SMTP server that prints each message and keeps it at GET /messages",
        parents=common,
        formatter_class=HELP,
    )
    smtp.add_argument("--host", default="127.0.0.1", help="address both servers listen on")
    smtp.add_argument("--port", type=_port, default=2525, help="SMTP port")
    smtp.add_argument("--http-port", type=_port, default=2580, help="port of the HTTP mailbox")
    smtp.set_defaults(func=_fake_smtp)
    twilio = fake_sub.add_parser(
        "twilio",
        help="Twilio's Messages API for one account; prints each SMS, sends its receipts",
        parents=common,
        formatter_class=HELP,
    )
    twilio.add_argument("--host", default="127.0.0.1", help="address it listens on")
    twilio.add_argument("--port", type=_port, default=8026, help="its port")
    twilio.add_argument("--account-sid", default="AC" + "0" * 32, help="the account's SID")
    twilio.add_argument("--auth-token", default="fake-auth-token", help="the account's token")
    twilio.add_argument(
        "--no-receipts", action="store_true", help="do not send the status callbacks"
    )
    twilio.set_defaults(func=_fake_twilio)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="txmsg", description="Transactional messaging engine", formatter_class=HELP
    )
    top.add_argument("--version", action="version", version=f"txmsg {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    common = [_common()]
    _add_serving(sub, common)
    _add_admin(sub, common)
    _add_fakes(sub, [_common(migrates=False)])  # the fakes have no database
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a clear line, not a traceback
        if args.command == "check":
            print(f"FAIL  settings: {exc}")
            return 1
        top.exit(2, f"txmsg: bad configuration: {exc}\n")
    logs.configure(args.log_level, args.log_format)
    for line in unknown_variables():
        logging.getLogger("txmsg").warning("%s", line)
    try:
        result = args.func(args, settings)
        if isinstance(result, Coroutine):  # an async command
            import asyncio

            result = asyncio.run(result)
    except NoDatabase as exc:
        print(f"txmsg: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    except Exception as exc:
        problem = _startup_problem(exc, settings)
        if problem is None:
            raise  # a bug: its traceback
        print(f"txmsg: {problem}", file=sys.stderr)
        return STARTUP_FAILURE
    code: int = result
    return code


def _startup_problem(exc: BaseException, settings: Settings) -> str | None:
    """What the operator must fix, in one line (the database, the data directory, the secret
    key, a port), when `exc` says so; None for a bug."""
    from txmsg.store.startup_errors import startup_problem

    return startup_problem(exc, settings.resolved_database_url, settings.data_dir)


if __name__ == "__main__":
    sys.exit(main())
