"""DELETE /api/v1/channel-configs/{name}: a configuration no event uses goes, with its secrets
and counters; one in use is refused (409) naming its users; one deleted and created again under
its name is a new one, down to the pooled SMTP connections of the process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    create_key,
    live_event,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.core.rate_limit import ChannelCap, channel_scopes
from txmsg.core.timeutil import isoformat, utcnow
from txmsg.store.db import Database
from txmsg.store.tables import channel_configs, rate_windows
from txmsg.testing import FakeSMTPServer

CONFIGS = "/api/v1/channel-configs"


async def _stored(store: Database, name: str) -> Any:
    def read(conn: Any) -> Any:
        return conn.execute(
            sa.select(channel_configs).where(channel_configs.c.name == name)
        ).first()

    return await store.read(read)


async def _scopes(store: Database) -> set[str]:
    def read(conn: Any) -> set[str]:
        return set(conn.execute(sa.select(rate_windows.c.scope)).scalars())

    return await store.read(read)


def test_the_scopes_deleted_are_every_window_a_cap_has() -> None:
    cap = ChannelCap(per_second=10, per_day=1000, bulk_share=50)
    scopes = {w.scope for w in (*cap.windows("a.b"), *cap.bulk_windows("a.b"))}
    assert scopes == set(channel_scopes("a.b"))


async def test_an_unused_configuration_is_deleted_with_its_secrets_and_counters(
    server, smtp, store: Database
) -> None:
    admin = server.admin
    dead = {
        "name": "dead-host",
        "channel": "email",
        "from_email": "shop@example.com",
        "smtp": {"host": "smtp.invalid", "port": 2525, "username": "u", "password": "pw-secret"},
        "rate_limit": {"per_second": 5, "per_day": 100},
    }
    assert (await admin.post(CONFIGS, json=dead)).status_code == 201
    await create_channel(admin, smtp, "dead_host")  # `_` is a LIKE wildcard: kept all the same
    assert (await _stored(store, "dead-host")).secrets["password"] == "pw-secret"

    def count_windows(conn: Any) -> None:
        rows = [
            {"scope": s, "window_start": 0, "cap": 5, "used": 1, "granted": 1}
            for s in (*channel_scopes("dead-host"), *channel_scopes("dead_host"), "key:abc")
        ]
        conn.execute(sa.insert(rate_windows), rows)

    await store.write(count_windows)

    r = await admin.delete(f"{CONFIGS}/dead-host")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert (await admin.get(f"{CONFIGS}/dead-host")).status_code == 404
    listed = (await admin.get(CONFIGS)).json()["items"]
    assert [c["name"] for c in listed] == ["dead_host"]
    assert await _stored(store, "dead-host") is None  # the row, and the secrets sealed in it
    assert await _scopes(store) == {*channel_scopes("dead_host"), "key:abc"}

    assert_problem(await admin.delete(f"{CONFIGS}/dead-host"), 404)
    assert_problem(await admin.delete(f"{CONFIGS}/never-was"), 404)
    # The name is free again.
    await create_channel(admin, smtp, "dead-host")


async def test_a_configuration_in_use_is_refused_naming_its_users(server, smtp) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)  # on "mail"
    r = await admin.delete(f"{CONFIGS}/mail")
    problem = assert_problem(r, 409)
    assert problem["used_by"] == {"event_configs": [event_id], "total": 1}
    assert event_id in problem["detail"]
    assert (await admin.get(f"{CONFIGS}/mail")).status_code == 200
    sent = await trigger(admin, event_id)  # still sends
    await wait_status(admin, sent["href"], "processed")

    # Many users: the first 10 by eventId, and how many there are.
    await create_channel(admin, smtp, "shared")
    for i in range(12):
        await create_event(admin, f"EVTuser{i:02d}", channel_config="shared")
    problem = assert_problem(await admin.delete(f"{CONFIGS}/shared"), 409)
    assert problem["used_by"]["total"] == 12
    assert problem["used_by"]["event_configs"] == [f"EVTuser{i:02d}" for i in range(10)]
    assert "(and 2 more)" in problem["detail"]
    # Drafts deleted, the configuration can go.
    for i in range(12):
        assert (await admin.delete(f"/api/v1/event-configs/EVTuser{i:02d}")).status_code == 204
    assert (await admin.delete(f"{CONFIGS}/shared")).status_code == 204


async def test_only_admins_delete(server, smtp) -> None:
    await create_channel(server.admin, smtp)
    for role in ("marketer", "trigger"):
        async with server.client(await create_key(server.admin, role)) as client:
            assert_problem(await client.delete(f"{CONFIGS}/mail"), 403)
    async with server.client() as anonymous:
        assert_problem(await anonymous.delete(f"{CONFIGS}/mail"), 401)
    assert (await server.admin.get(f"{CONFIGS}/mail")).status_code == 200


async def test_events_of_a_configuration_switched_away_then_deleted(server, smtp) -> None:
    """Events name their event configuration, not the channel one: once the event is switched
    to another channel configuration (unpublished first: its queued events are ignored), the
    old one can go; the old events stay readable and new ones go out through the new one."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    sent = await trigger(admin, event_id)
    await wait_status(admin, sent["href"], "processed")
    later = isoformat(utcnow() + timedelta(hours=1))
    body = {"email": "bob@example.org", "ctx": {"firstName": "Bob"}, "scheduled": later}
    waiting = await trigger(admin, event_id, body)
    await wait_status(admin, waiting["href"], "pending")

    async with FakeSMTPServer() as other:
        await create_channel(admin, other, "mail2", from_email="new@example.com")
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/unpublish")).status_code == 200
        r = await admin.patch(f"/api/v1/event-configs/{event_id}", json={"channel_config": "mail2"})
        assert r.status_code == 200, r.text
        assert (await admin.delete(f"{CONFIGS}/mail")).status_code == 204

        assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
        await publish_message(admin, event_id)
        fresh = await trigger(admin, event_id)
        await wait_status(admin, fresh["href"], "processed")
        assert [m.mail_from for m in other.messages] == ["new@example.com"]
    assert (await wait_status(admin, waiting["href"], "ignored"))["status"] == "ignored"
    assert len(smtp.messages) == 1  # the first send only: the scheduled one never went out
    latest = (await admin.get(f"/api/v1/events/{event_id}")).json()["items"]
    assert [e["status"] for e in latest] == ["processed", "ignored", "processed"]


async def test_a_configuration_created_again_sends_through_its_new_settings(server, smtp) -> None:
    """The process's pooled SMTP connections are per configuration name and revision: the
    new configuration (revision 1 again) must not reuse the deleted one's relay."""
    admin = server.admin
    event_id = await live_event(admin, smtp)
    first = await trigger(admin, event_id)
    await wait_status(admin, first["href"], "processed")
    async with FakeSMTPServer() as replacement:
        await create_channel(admin, replacement, "interim")
        await admin.post(f"/api/v1/event-configs/{event_id}/unpublish")
        switch = f"/api/v1/event-configs/{event_id}"
        assert (await admin.patch(switch, json={"channel_config": "interim"})).status_code == 200
        assert (await admin.delete(f"{CONFIGS}/mail")).status_code == 204
        await create_channel(admin, replacement, "mail", from_email="again@example.com")
        assert (await admin.patch(switch, json={"channel_config": "mail"})).status_code == 200
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
        await publish_message(admin, event_id)
        second = await trigger(admin, event_id)
        await wait_status(admin, second["href"], "processed")
        assert len(smtp.messages) == 1
        assert [m.mail_from for m in replacement.messages] == ["again@example.com"]
