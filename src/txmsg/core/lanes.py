"""The lane of the send under way, for the shared resources it waits for on its way out.

The dispatcher sets it in each send's own task (a task's context is its own copy), to the
event's priority rank; a resource that makes sends wait (the SMTP pool's connections) serves the
lowest rank first. Anything else (an API proof, a test) is transactional: rank 0.
"""

from __future__ import annotations

from contextvars import ContextVar

SEND_RANK: ContextVar[int] = ContextVar("txmsg_send_rank", default=0)
