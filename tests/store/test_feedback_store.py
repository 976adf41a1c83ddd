"""Feedback recorded against its message in the write funnel (store/feedback.py): a report
about a message no provider saw is dropped, by the bounce listener's path as by the API's."""

from __future__ import annotations

from queue_support import hook, new_event, seen_by_provider

from txmsg.core.feedback import Feedback, FeedbackKind
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import feedback
from txmsg.store.db import Database
from txmsg.store.queue import enqueue


def _bounce(pkey: str) -> Feedback:
    return Feedback(pkey, FeedbackKind.BOUNCE, "550 5.1.1", utcnow(), "dsn", hard=True)


async def test_a_message_never_sent_gets_no_feedback(db: Database) -> None:
    await db.write(hook, "EVTq")  # its configurations
    queued, paused, ignored = (
        new_event(),
        new_event(status=EventStatus.PAUSED),
        new_event(status=EventStatus.IGNORED),
    )
    too_old = new_event(status=EventStatus.TOO_OLD)  # expired before any attempt
    await db.write(enqueue.enqueue_in, [queued, paused, ignored, too_old])
    for event in (queued, paused, ignored, too_old):
        assert await db.write(feedback.record_in, [_bounce(event.pkey)]) == 0
    states = await db.read(feedback.states, {e.pkey for e in (queued, paused, too_old)})
    assert {s.seen for s in states.values()} == {False}


async def test_a_message_a_provider_saw_gets_feedback(db: Database) -> None:
    await db.write(hook, "EVTq")
    sent, retrying = new_event(status=EventStatus.PROCESSED), new_event()
    await db.write(enqueue.enqueue_in, [sent, retrying])
    await db.write(seen_by_provider, [sent.pkey])
    await db.write(seen_by_provider, [retrying.pkey], sent=False)  # a 4xx, then pending
    assert await db.read(feedback.states, {retrying.pkey}) == {
        retrying.pkey: feedback.MessageState("pending", True)
    }
    assert await db.write(feedback.record_in, [_bounce(sent.pkey)]) == 1
    assert await db.write(feedback.record_in, [_bounce(retrying.pkey)]) == 1
