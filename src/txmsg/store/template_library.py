"""The shipped templates (the repository's `templates/` folder, packaged with txmsg)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = "default"


def _root() -> Path:
    packaged = Path(str(resources.files("txmsg"))) / "_templates"
    if packaged.is_dir():
        return packaged
    # Running from a source checkout (editable install): the repository's templates/.
    return Path(__file__).resolve().parents[3] / "templates"


@cache
def library() -> dict[str, dict[str, Any]]:
    """name -> {"name", "label", "description", "subject", "html", "text", "sample_ctx"}."""
    out: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in _root().iterdir() if p.is_dir()):
        meta = json.loads((folder / "template.json").read_text("utf-8"))
        out[folder.name] = {
            "name": folder.name,
            "label": meta["label"],
            "description": meta.get("description", ""),
            "fields": meta.get("fields", []),
            "sample_ctx": meta.get("sample_ctx", {}),
            "subject": (folder / "subject.txt").read_text("utf-8").strip(),
            "html": (folder / "body.html").read_text("utf-8"),
            "text": (folder / "body.txt").read_text("utf-8"),
        }
    if DEFAULT_TEMPLATE not in out:
        raise RuntimeError(f"the shipped templates lack '{DEFAULT_TEMPLATE}' ({_root()})")
    return out
