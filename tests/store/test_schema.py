"""The schema the migrations build is the one the code declares, and the queue's queries use
its partial indexes (a filter written with a parameter would silently scan the table)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from helpers import queued_event
from txmsg.core.profiles import Profile
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.events import page_query
from txmsg.store.profiles import MATCHED_BY, upsert_many
from txmsg.store.profiles import page_query as profiles_page
from txmsg.store.queue.enqueue import enqueue_in
from txmsg.store.queue.housekeeping import paused_of_live_events
from txmsg.store.tables import events, metadata, profiles, status_in, waiting
from txmsg.store.targeting import scheduled_to_target

# SQLite cannot reflect an index on an expression (ix_profiles_email_lower): alembic skips
# comparing it, and a test below reads the lookup's plan instead.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]


async def test_migrations_build_the_declared_schema(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        return compare_metadata(MigrationContext.configure(conn), metadata)

    assert await db.read(diff) == []


def _plan(conn: Connection, query: sa.Select[tuple[int]]) -> str:
    compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
        return " ".join(str(r[-1]) for r in rows)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    rows = conn.exec_driver_sql(f"EXPLAIN {compiled}").all()
    return " ".join(str(r[0]) for r in rows)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            sa.select(events.c.id)
            .where(status_in(EventStatus.PENDING), events.c.due_at <= utcnow())
            .order_by(events.c.priority, events.c.due_at, events.c.id),
            "ix_events_claim",
        ),
        (
            sa.select(events.c.id).where(
                status_in(EventStatus.PROCESSING), events.c.lease_until < utcnow()
            ),
            "ix_events_lease",
        ),
        (
            sa.select(events.c.id).where(
                waiting(EventStatus.PENDING, EventStatus.PAUSED),
                events.c.expires_at < utcnow() - timedelta(days=1),
            ),
            "ix_events_expiry",
        ),
        (
            sa.select(events.c.id).where(
                events.c.event_id == "EVTx", waiting(EventStatus.PENDING, EventStatus.PAUSED)
            ),
            "ix_events_waiting",
        ),
        (
            sa.select(events.c.id).where(events.c.event_id == "EVTx", waiting(EventStatus.PAUSED)),
            "ix_events_paused",
        ),
        (sa.select(events.c.id).where(paused_of_live_events()), "ix_events_paused"),
        (page_query("EVTx", 101), "ix_events_event_date"),
        (
            page_query(
                "EVTx",
                101,
                status="processed",
                since=utcnow() - timedelta(days=1),
                until=utcnow(),
                after=(utcnow(), 1000),
            ),
            "ix_events_event_date",
        ),
    ],
    ids=[
        "claim",
        "lease",
        "expiry",
        "waiting",
        "paused",
        "paused of live events",
        "page",
        "a later page",
    ],
)
async def test_queue_queries_use_their_partial_index(
    db: Database, query: sa.Select[tuple[int]], index: str
) -> None:
    async def plan() -> str:
        return await db.write(_plan, query)

    assert index in await plan()


async def test_the_sweep_finds_scheduled_events_by_their_index(db: Database) -> None:
    """Not by ix_events_profile, whose NULL entries are the whole queue of event-based events
    (2,000 queued here). PostgreSQL's planner learns that from its statistics (autovacuum
    gathers them); SQLite's has none unless ANALYZE ran, which the engine never runs."""
    await db.write(enqueue_in, [queued_event("EVTq") for _ in range(2000)])

    def plan(conn: Connection) -> str:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE events")
        return _plan(conn, scheduled_to_target(conn.dialect.name, utcnow(), 500))

    assert "ix_events_scheduled" in await db.write(plan)


async def test_profiles_are_looked_up_by_their_lower_cased_email(db: Database) -> None:
    by_email = MATCHED_BY["email"].in_(["ada@example.org", "bo@example.org"])
    query = sa.select(profiles.c.profile_id).where(by_email)
    assert "ix_profiles_email_lower" in await db.write(_plan, query)


@pytest.mark.parametrize(
    ("bounds", "index"),
    [
        ({"email": "Ada@example.org"}, "ix_profiles_email_lower"),
        ({"email": "ada@example.org", "after": "c-42"}, "ix_profiles_email_lower"),
        ({"mobile_phone": "+14155552671"}, "ix_profiles_mobile_phone"),
        ({"mobile_phone": "+14155552671", "after": "c-42"}, "ix_profiles_mobile_phone"),
    ],
    ids=["email", "email, a later page", "phone", "phone, a later page"],
)
async def test_the_profiles_list_finds_addresses_by_their_index(
    db: Database, bounds: dict[str, str], index: str
) -> None:
    assert index in await db.write(_plan, profiles_page(101, **bounds))


async def test_the_profiles_list_pages_along_the_primary_key(db: Database) -> None:
    """No sort of the whole table: a page is a range of the primary key, from the cursor on
    (2,000 profiles here: PostgreSQL's planner sorts a table it believes tiny)."""
    many = [Profile(f"c-{n:05}", None, None, None, None, None, {}, None, None) for n in range(2000)]
    await db.write(upsert_many, many)

    def plan(conn: Connection) -> str:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE profiles")
        return _plan(conn, profiles_page(101, after="c-00042"))

    found = await db.write(plan)
    if db.is_sqlite:
        assert "sqlite_autoindex_profiles_1" in found and "TEMP B-TREE" not in found, found
    else:
        assert "profiles_pkey" in found and "Sort" not in found, found


async def test_every_migration_goes_down_and_up(db: Database) -> None:
    from alembic import command

    from txmsg.store.migrations import alembic_config

    def down_up(conn: Connection) -> tuple[set[str], list[object]]:
        command.downgrade(alembic_config(conn), "base")
        left = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
        command.upgrade(alembic_config(conn), "head")
        return left, compare_metadata(MigrationContext.configure(conn), metadata)

    assert await db.write(down_up) == (set(), [])


def test_head_names_the_newest_migration() -> None:
    """A start skips Alembic when the database is at `HEAD`: a migration added without moving
    `HEAD` would never run."""
    from alembic.script import ScriptDirectory

    from txmsg.store.migrations import HEAD, alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [HEAD], (
        f"store/migrations/__init__.py: HEAD is {HEAD!r}, the newest migration is "
        f"{scripts.get_heads()}: set HEAD to it"
    )


async def test_a_database_behind_head_is_upgraded_at_start(db: Database) -> None:
    """The start's shortcut reads the revision; one behind is upgraded as before."""
    from alembic import command

    from txmsg.store.migrations import HEAD, alembic_config, current_revision

    def down_one(conn: Connection) -> str | None:
        command.downgrade(alembic_config(conn), "-1")
        return current_revision(conn)

    behind = await db.write(down_one)
    assert behind is not None and behind != HEAD
    await db.migrate()
    assert await db.read(current_revision) == HEAD
    assert (
        await db.read(lambda conn: compare_metadata(MigrationContext.configure(conn), metadata))
        == []
    )
