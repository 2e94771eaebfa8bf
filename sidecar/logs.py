"""Logging set-up for every command: readable lines (LOG_FORMAT=text, the default) or one JSON
object per line (LOG_FORMAT=json) with ``time``, ``level``, ``logger``, ``message`` and, when
known, ``task_id``, ``track_id`` and ``route`` (plus ``exception`` with the traceback).

The ids come from context variables set where the work is: the worker's job wrapper sets
:data:`TASK_ID` (each arq job runs in an asyncio task of its own, so jobs never see each other's
ids), the web app's metrics middleware sets :data:`ROUTE` (each request is its own task too),
and code that works on a track sets :data:`TRACK_ID`.  A record's own ``extra={"task_id": ...}``
wins over the context.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

TASK_ID: ContextVar[str | None] = ContextVar("log_task_id", default=None)
TRACK_ID: ContextVar[str | None] = ContextVar("log_track_id", default=None)
ROUTE: ContextVar[str | None] = ContextVar("log_route", default=None)

CONTEXT = {"task_id": TASK_ID, "track_id": TRACK_ID, "route": ROUTE}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record (as attributes), unless the record has them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT:
            value = getattr(record, name, None)
            if value is None:
                value = CONTEXT[name].get()
            if value is not None:
                out[name] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format.lower() == "json" else logging.Formatter(TEXT_FORMAT)


def setup_logging(level: str, log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """Route the root logger to ``stream`` (stderr) in ``log_format``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_audiomuse", False):
            root.removeHandler(old)
    handler._audiomuse = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
