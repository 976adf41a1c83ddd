"""The bounds of one message's render (the installation's settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RenderLimits:
    # Compiling and rendering one message, all its parts.
    timeout_seconds: float = 2.0
    # One rendered part, UTF-8.
    max_bytes: int = 2 * 1024 * 1024
    # Memory a render worker may take besides its own (Python, Jinja): many times the output
    # bound, for the values a template builds on its way.
    max_memory: int = 512 * 1024 * 1024
    # Render worker processes of one txmsg process.
    workers: int = 2
