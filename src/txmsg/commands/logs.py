"""Log set-up for the `txmsg` command: text (the default) or one JSON object a line.

JSON lines carry `time`, `level`, `logger`, `message`, and the event's `PKey`, `eventId` and
`status` when the record has them (`extra={"pkey": ..., "event_id": ..., "status": ...}`).
Nothing else of a record is copied: message content and secrets are never logged in either
format, and the JSON one adds no field the text one lacks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")
LEVELS = ("critical", "error", "warning", "info", "debug")
# Record attributes copied into a JSON line, by their name there.
_EVENT_FIELDS = (("pkey", "PKey"), ("event_id", "eventId"), ("status", "status"))
# Chatty below WARNING unless the level is debug: Alembic prints a line per migration step.
# Libraries that log at INFO what only debugging needs: Alembic's steps, and aiosmtpd's
# (mail.log) every SMTP command of the bounce listener and of `txmsg fake smtp`.
_QUIET = ("alembic", "mail.log")
# httpx logs each request's URL at INFO (and DEBUG): a webhook receiver's URL may hold a
# token. Its warnings and errors still show.
_URLS = ("httpx", "httpcore")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, name in _EVENT_FIELDS:
            value = getattr(record, attribute, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure(level: str = "info", fmt: str = "text") -> None:
    """The root logger's handler and level for the command's process."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    for name in _URLS:
        logging.getLogger(name).setLevel(logging.WARNING)


def uvicorn_config(fmt: str) -> dict[str, object] | None:
    """uvicorn's `log_config`: its own (the unchanged text format) or none, so its records
    reach the root logger's JSON handler."""
    if fmt == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
