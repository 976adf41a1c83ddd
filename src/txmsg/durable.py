"""Files that survive a power loss once published: their content and their name on disk.

A file is written whole under a temporary name, then `publish` flushes its content to disk,
renames it over its final name and flushes the folder (the rename itself), so a name that a
committed transaction counts on (an archive's row, an export flow's watermark) never names an
empty or partial file after a crash. Blocking calls: run them off the event loop.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["make_folders", "publish", "sync_folder"]


def sync_folder(folder: str | Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folders(folder: str | Path) -> None:
    """`mkdir -p`, each folder it creates made durable in its parent."""
    path = Path(folder)
    if path.is_dir():
        return
    make_folders(path.parent)
    try:
        path.mkdir()
    except FileExistsError:  # made meanwhile by another process or thread: theirs to flush
        if not path.is_dir():
            raise
        return
    sync_folder(path.parent)


def publish(temporary: str | Path, final: str | Path) -> None:
    """Give a complete file its final name durably: its content first, then the rename."""
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    sync_folder(Path(final).parent)
