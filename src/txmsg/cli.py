"""The `txmsg` command: serve, worker, migrate, export run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from txmsg.config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from txmsg.app import Role, create_app

    settings = Settings.from_env()
    if settings.public_url is None:
        # Links in messages (unsubscribe) need an absolute URL: this server's, unless set.
        settings = replace(settings, public_url=f"http://{args.host}:{args.port}")
    app = create_app(settings, role=Role(args.role))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=30,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    import uvloop

    from txmsg.app import run_worker

    settings = Settings.from_env()

    async def run() -> None:
        # SIGTERM and SIGINT stop it gracefully: sends under way finish, outcomes recorded.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop, args.health_port, args.health_host)

    uvloop.run(run())
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from txmsg.engine.runtime import open_database

    settings = Settings.from_env()

    async def run() -> None:
        db = open_database(settings)
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"database is at the latest schema ({settings.resolved_database_url.split('@')[-1]})")
    return 0


def _reseal(_args: argparse.Namespace) -> int:
    from txmsg.engine.runtime import open_database
    from txmsg.store.sealing import reseal_all
    from txmsg.store.tables import metadata

    async def run() -> int:
        db = open_database(Settings.from_env())
        try:
            await db.migrate()
            return await db.write(reseal_all, metadata)
        finally:
            await db.dispose()

    print(f"{asyncio.run(run())} stored secret(s) sealed with the first secret key")
    return 0


def _export_run(args: argparse.Namespace) -> int:
    from txmsg.api.export_flows import run_view
    from txmsg.api.responses import dumps
    from txmsg.core.errors import DomainError
    from txmsg.engine.exporter import Exporter
    from txmsg.engine.runtime import open_database

    settings = Settings.from_env()

    async def run() -> int:
        db = open_database(settings)
        try:
            await db.migrate()
            row = await Exporter(db, settings.export_retention).run(args.name)
        except DomainError as exc:  # unknown flow, or running elsewhere
            print(f"txmsg: {exc.detail}", file=sys.stderr)
            return 1
        finally:
            await db.dispose()
        print(dumps(run_view(row)).decode())
        return 0 if row.status == "succeeded" else 1

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="txmsg", description="Transactional messaging engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (and, by default, the worker too)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8025)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request line")
    serve.add_argument(
        "--role",
        choices=("all", "api"),
        default="all",
        help="all: API and worker in one process; api: the API only (a `txmsg worker` sends)",
    )
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="send queued events: no HTTP API")
    worker.add_argument(
        "--health-port", type=int, default=None, help="answer GET /health on this port"
    )
    worker.add_argument("--health-host", default="127.0.0.1", help="address of the health port")
    worker.set_defaults(func=_worker)
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=_migrate)
    reseal = sub.add_parser(
        "reseal", help="seal every stored secret again with the first secret key (key rotation)"
    )
    reseal.set_defaults(func=_reseal)
    export = sub.add_parser("export", help="message export flows")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    export_run = export_sub.add_parser("run", help="run an export flow now; prints the run")
    export_run.add_argument("name", help="the export flow's name")
    export_run.set_defaults(func=_export_run)
    args = parser.parse_args(argv)
    try:
        Settings.from_env()
    except ValueError as exc:  # a clear line, not a traceback
        parser.exit(2, f"txmsg: bad configuration: {exc}\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
