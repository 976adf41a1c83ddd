"""Export flow rows, their runs, and the lock that lets exactly one process run a flow."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from txmsg.core.errors import conflict, not_found
from txmsg.core.export_flow import FlowSpec, parse_update
from txmsg.store import message_export
from txmsg.store.tables import export_flows, export_runs
from txmsg.store.tables import message_export as dataset

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The id range a run exports. A retry of a failed or crashed run gets the same one, and
    the same file tag (None: a run begun before tags, named as then)."""

    run: int
    from_id: int
    to_id: int
    attempt: int
    tag: str | None = None


def spec_of(row: Any) -> FlowSpec:
    return FlowSpec(
        row.name, row.format, row.destination, row.secrets, row.schedule, row.compression
    )


def create(conn: Connection, spec: FlowSpec, now: datetime) -> Any:
    if get(conn, spec.name) is not None:
        raise _exists(spec.name)
    try:
        conn.execute(
            sa.insert(export_flows).values(
                name=spec.name,
                format=spec.format,
                destination=spec.destination,
                secrets=spec.secrets,
                schedule=spec.schedule,
                compression=spec.compression,
                watermark=0,
                next_run_at=now + spec.interval,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError:  # created concurrently by another process
        raise _exists(spec.name) from None
    return get(conn, spec.name)


def _exists(name: str) -> Exception:
    return conflict(f"an export flow named '{name}' already exists")


def get(conn: Connection, name: str) -> Any | None:
    return conn.execute(sa.select(export_flows).where(export_flows.c.name == name)).first()


def require(conn: Connection, name: str) -> Any:
    row = get(conn, name)
    if row is None:
        raise not_found(f"no export flow '{name}'")
    return row


def list_all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(export_flows).order_by(export_flows.c.name)))


def patch(conn: Connection, name: str, body: Any, retention: timedelta, now: datetime) -> Any:
    """Apply a PATCH body in one transaction (row lock on PostgreSQL: no lost update)."""
    query = sa.select(export_flows).where(export_flows.c.name == name)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise not_found(f"no export flow '{name}'")
    spec = parse_update(body, spec_of(row), retention)
    if (spec.format, spec.compression) != (row.format, row.compression):
        last = _latest_run(conn, name)
        if last is not None and last.status != SUCCEEDED:
            # Its retry rewrites the files it began under the same names: in another format
            # they would sit beside them, and their records be read twice.
            raise conflict(
                f"export flow '{name}' run {last.run} has not succeeded: its retry rewrites "
                "the files it began; change the format or compression once it has"
            )
    values: dict[str, Any] = {
        "format": spec.format,
        "destination": spec.destination,
        "secrets": spec.secrets,
        "schedule": spec.schedule,
        "compression": spec.compression,
        "updated_at": now,
    }
    if spec.schedule != row.schedule:
        values["next_run_at"] = now + spec.interval
    conn.execute(sa.update(export_flows).where(export_flows.c.name == name).values(**values))
    return get(conn, name)


def delete(conn: Connection, name: str, now: datetime) -> None:
    row = require(conn, name)
    if row.lock_until is not None and row.lock_until > now:
        raise conflict(f"export flow '{name}' is running; delete it once the run has ended")
    conn.execute(sa.delete(export_runs).where(export_runs.c.flow == name))
    conn.execute(sa.delete(export_flows).where(export_flows.c.name == name))


# --- the lock: a lease on the flow row, taken with one conditional UPDATE --------------------


def acquire(conn: Connection, name: str, token: str, now: datetime, lease: timedelta) -> bool:
    result = conn.execute(
        sa.update(export_flows)
        .where(
            export_flows.c.name == name,
            sa.or_(export_flows.c.lock_until.is_(None), export_flows.c.lock_until <= now),
        )
        .values(lock_token=token, lock_until=now + lease)
    )
    return result.rowcount == 1


def renew(conn: Connection, name: str, token: str, until: datetime) -> bool:
    result = conn.execute(
        sa.update(export_flows)
        .where(export_flows.c.name == name, export_flows.c.lock_token == token)
        .values(lock_until=until)
    )
    return result.rowcount == 1


def release(conn: Connection, name: str, token: str) -> None:
    conn.execute(
        sa.update(export_flows)
        .where(export_flows.c.name == name, export_flows.c.lock_token == token)
        .values(lock_token=None, lock_until=None)
    )


# --- runs ---------------------------------------------------------------------------------


def _latest_run(conn: Connection, name: str) -> Any | None:
    return conn.execute(
        sa.select(export_runs)
        .where(export_runs.c.flow == name)
        .order_by(export_runs.c.run.desc())
        .limit(1)
    ).first()


def begin_run(conn: Connection, name: str, now: datetime) -> RunPlan:
    """Start the next run, or retry the last one if it did not succeed (same range)."""
    flow = require(conn, name)
    last = _latest_run(conn, name)
    if last is not None and last.status != SUCCEEDED:
        conn.execute(
            sa.update(export_runs)
            .where(export_runs.c.flow == name, export_runs.c.run == last.run)
            .values(status=RUNNING, attempts=last.attempts + 1, started_at=now, error=None)
        )
        return RunPlan(last.run, last.from_id, last.to_id, last.attempts + 1, last.file_tag)
    number = 1 if last is None else last.run + 1
    upto = max(flow.watermark, message_export.upper_bound(conn))
    tag = secrets.token_hex(4)
    conn.execute(
        sa.insert(export_runs).values(
            flow=name,
            run=number,
            status=RUNNING,
            attempts=1,
            from_id=flow.watermark,
            to_id=upto,
            records=0,
            files=[],
            started_at=now,
            file_tag=tag,
        )
    )
    return RunPlan(number, flow.watermark, upto, 1, tag)


def finish_run(
    conn: Connection,
    name: str,
    token: str,
    plan: RunPlan,
    records: int,
    files: list[str],
    now: datetime,
) -> bool:
    """Files written: record the run and advance the watermark, if the lock is still ours."""
    moved = conn.execute(
        sa.update(export_flows)
        .where(export_flows.c.name == name, export_flows.c.lock_token == token)
        .values(watermark=plan.to_id, lock_token=None, lock_until=None)
    )
    if moved.rowcount != 1:
        return False  # the lease lapsed and another process took the run over
    conn.execute(
        sa.update(export_runs)
        .where(export_runs.c.flow == name, export_runs.c.run == plan.run)
        .values(status=SUCCEEDED, records=records, files=files, finished_at=now, error=None)
    )
    return True


def fail_run(
    conn: Connection,
    name: str,
    token: str,
    plan: RunPlan,
    files: list[str],
    error: str,
    now: datetime,
) -> None:
    """Record the error, if the run is still ours (not taken over after its lease lapsed)."""
    held = conn.execute(
        sa.select(export_flows.c.lock_token).where(export_flows.c.name == name)
    ).scalar()
    if held != token:
        return
    conn.execute(
        sa.update(export_runs)
        .where(
            export_runs.c.flow == name,
            export_runs.c.run == plan.run,
            export_runs.c.status == RUNNING,
        )
        .values(status=FAILED, files=files, error=error, finished_at=now)
    )
    release(conn, name, token)


def get_run(conn: Connection, name: str, run: int) -> Any | None:
    return conn.execute(
        sa.select(export_runs).where(export_runs.c.flow == name, export_runs.c.run == run)
    ).first()


def list_runs(conn: Connection, name: str, limit: int = 100) -> list[Any]:
    require(conn, name)
    return list(
        conn.execute(
            sa.select(export_runs)
            .where(export_runs.c.flow == name)
            .order_by(export_runs.c.run.desc())
            .limit(limit)
        )
    )


def due(conn: Connection, now: datetime) -> list[str]:
    return list(
        conn.execute(
            sa.select(export_flows.c.name)
            .where(export_flows.c.next_run_at <= now)
            .order_by(export_flows.c.next_run_at)
        ).scalars()
    )


def claim_due(conn: Connection, name: str, now: datetime) -> bool:
    """Move a due flow's next run one interval on; True for the one process that did."""
    row = get(conn, name)
    if row is None or row.next_run_at > now:
        return False
    result = conn.execute(
        sa.update(export_flows)
        .where(export_flows.c.name == name, export_flows.c.next_run_at == row.next_run_at)
        .values(next_run_at=now + spec_of(row).interval)
    )
    return result.rowcount == 1


def unexported_before(conn: Connection, cutoff_us: int) -> tuple[int, dict[str, int]]:
    """Records ingested before `cutoff_us` that some flow has yet to export: how many, and
    how many each such flow has yet to (what a purge at that cutoff would take from them)."""
    expiring = sa.select(sa.func.count()).where(dataset.c.ingestion_us < cutoff_us)
    flows = conn.execute(sa.select(export_flows.c.name, export_flows.c.watermark)).all()
    if not flows:
        return 0, {}
    lowest = min(flow.watermark for flow in flows)
    total = conn.execute(expiring.where(dataset.c.id > lowest)).scalar_one()
    if not total:
        return 0, {}
    behind = {}
    for flow in sorted(flows):
        count = conn.execute(expiring.where(dataset.c.id > flow.watermark)).scalar_one()
        if count:
            behind[flow.name] = int(count)
    return int(total), behind
