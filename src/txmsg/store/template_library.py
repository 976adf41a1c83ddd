"""The shipped templates (the repository's `templates/` folder, packaged with txmsg)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from txmsg.core.kinds import Channel

DEFAULT_TEMPLATE = "default"
DEFAULT_SMS_TEMPLATE = "sms_default"


def default_template(channel: str) -> str:
    """The shipped template an event of `channel` starts from when it names none."""
    return DEFAULT_SMS_TEMPLATE if channel == Channel.SMS else DEFAULT_TEMPLATE


def _root() -> Path:
    packaged = Path(str(resources.files("txmsg"))) / "_templates"
    if packaged.is_dir():
        return packaged
    # Running from a source checkout (editable install): the repository's templates/.
    return Path(__file__).resolve().parents[3] / "templates"


@cache
def library() -> dict[str, dict[str, Any]]:
    """name -> {"name", "channel", "label", "description", "fields", "sample_ctx", parts...}.

    Email templates have the parts `subject`, `html` and `text`; SMS templates (`"channel":
    "sms"` in template.json) the part `body`, read from `sms.txt`.
    """
    out: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in _root().iterdir() if p.is_dir()):
        meta = json.loads((folder / "template.json").read_text("utf-8"))
        channel = meta.get("channel", Channel.EMAIL.value)
        entry: dict[str, Any] = {
            "name": folder.name,
            "channel": channel,
            "label": meta["label"],
            "description": meta.get("description", ""),
            "fields": meta.get("fields", []),
            "sample_ctx": meta.get("sample_ctx", {}),
        }
        if channel == Channel.SMS:
            entry["body"] = (folder / "sms.txt").read_text("utf-8").strip()
        else:
            entry["subject"] = (folder / "subject.txt").read_text("utf-8").strip()
            entry["html"] = (folder / "body.html").read_text("utf-8")
            entry["text"] = (folder / "body.txt").read_text("utf-8")
        out[folder.name] = entry
    for name in (DEFAULT_TEMPLATE, DEFAULT_SMS_TEMPLATE):
        if name not in out:
            raise RuntimeError(f"the shipped templates lack '{name}' ({_root()})")
    return out
