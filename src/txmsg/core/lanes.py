"""The lane of the send under way and its lease, for the shared resources it waits for on its
way out.

The dispatcher sets both in each send's own task (a task's context is its own copy). A resource
that makes sends wait (the SMTP pool's connections) serves the lowest rank first, and asks the
lease once the wait is over: a send that waited past its lease (another claim may own its event
now, and send it) must not go. Anything else (an API proof, a test) is transactional, rank 0,
and holds no lease.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar


def _never() -> bool:
    return False


SEND_RANK: ContextVar[int] = ContextVar("txmsg_send_rank", default=0)

LEASE_LAPSED: ContextVar[Callable[[], bool]] = ContextVar("txmsg_lease_lapsed", default=_never)
"""Whether the lease of the send under way lapsed (or was taken by a later claim)."""
