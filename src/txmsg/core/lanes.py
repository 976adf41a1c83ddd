"""The lane of the send under way and whether it may still go, for the shared resources it
waits for on its way out.

The dispatcher sets both in each send's own task (a task's context is its own copy). A resource
that makes sends wait (the SMTP pool's connections) serves the lowest rank first, and asks once
the wait is over whether the send is withdrawn: its lease lapsed meanwhile (another claim may
own its event now, and send it), the engine is stopping (a send not started yet is handed
back to the queue rather than waited for), or its claim's channel-cap window ended (it would
go beside the next window's claim: handed back too). Anything else (an API proof, a test) is
transactional, rank 0, and never withdrawn.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar


def _never() -> bool:
    return False


SEND_RANK: ContextVar[int] = ContextVar("txmsg_send_rank", default=0)

SEND_WITHDRAWN: ContextVar[Callable[[], bool]] = ContextVar("txmsg_send_withdrawn", default=_never)
"""Whether the send under way must not start: its lease lapsed, the engine is stopping, or its
claim's rate window ended."""
