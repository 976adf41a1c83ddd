"""Feedback recorded against its message in the write funnel (store/feedback.py): a report
about a message no provider saw is dropped, by the bounce listener's path as by the API's."""

from __future__ import annotations

from queue_support import hook, new_event

from txmsg.core.feedback import Feedback, FeedbackKind
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import feedback
from txmsg.store.db import Database
from txmsg.store.queue import enqueue


async def test_a_message_never_sent_gets_no_feedback(db: Database) -> None:
    await db.write(hook, "EVTq")  # its configurations
    # Pending: perhaps sent by an earlier attempt. Ignored: seen by no provider.
    pending, ignored = new_event(), new_event(status=EventStatus.IGNORED)
    await db.write(enqueue.enqueue_in, [pending, ignored])

    def bounce(pkey: str) -> Feedback:
        return Feedback(pkey, FeedbackKind.BOUNCE, "550 5.1.1", utcnow(), "dsn", hard=True)

    assert await db.write(feedback.record_in, [bounce(ignored.pkey)]) == 0
    assert await db.write(feedback.record_in, [bounce(pending.pkey)]) == 1
