"""scimbridge's log set-up: readable text or one JSON object per line, with request fields.

Within an HTTP request every record carries the request's id, the token or user acting, the
method and the path (see ``web/observability.py``, which sets them). The JSON lines name them
``request_id``, ``actor``, ``method``, ``path``; the access log adds ``status`` and
``duration_ms``. Paths are logged without their query string, and with the values of
``<token>`` route parts (invitation and reset links) replaced, so no secret reaches a line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal

import orjson
from flask import g
from flask import has_request_context

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"

REQUEST_FIELDS = ("request_id", "actor", "method", "path")
"""Attributes the request filter adds to a record made while a request is answered."""


class RequestFields(logging.Filter):
    """Add the current request's fields (see :data:`REQUEST_FIELDS`) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the fields; never drops a record."""
        # The access log line comes with its fields already: no lookup for the commonest record.
        if "request_id" not in record.__dict__ and has_request_context():
            fields: dict[str, Any] | None = g.get("log_fields")
            for name, value in (fields or {}).items():
                if name not in record.__dict__:
                    setattr(record, name, value)
        return True


_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
"""What every LogRecord has: any other attribute came with ``extra=`` and goes on the line."""


class JsonLines(logging.Formatter):
    """Format a record as one JSON object: timestamp, level, logger, message, then its fields.

    The fields are the request's (:data:`REQUEST_FIELDS`) and any given with ``extra=``
    (the access log's ``status`` and ``duration_ms``). Written by hand rather than with a
    JSON logging library: a line is a small dict serialised by orjson, and the access log
    writes one per request, so the per-record work of a general formatter (looking up every
    record attribute, renaming fields, formatting a format string that only names fields)
    showed as a third of what observability cost a cheap request.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line (no newline)."""
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # In the order given (request id, method, path, actor, then status and duration).
        line.update(
            {
                name: value
                for name, value in record.__dict__.items()
                if name not in _RECORD_ATTRIBUTES
            }
        )
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # default=str: a field orjson cannot serialise is logged as its text, never lost.
        return orjson.dumps(line, default=str).decode()


def log_handler(log_format: Literal["text", "json"]) -> logging.Handler:
    """Return a handler writing records to stderr in ``log_format``, with the request fields."""
    handler = logging.StreamHandler(sys.stderr)
    text = log_format == "text"
    handler.setFormatter(logging.Formatter(TEXT_FORMAT) if text else JsonLines())
    handler.addFilter(RequestFields())
    return handler


def gunicorn_log_config(level: str, log_format: Literal["text", "json"]) -> dict[str, Any]:
    """Return gunicorn's ``logconfig_dict``: its own records (worker timeouts…) in our format."""
    return {
        "root": {"level": level.upper(), "handlers": ["scimbridge"]},
        "handlers": {"scimbridge": {"()": log_handler, "log_format": log_format}},
        "loggers": {"gunicorn.error": {"level": "WARNING", "handlers": [], "propagate": True}},
    }


def configure_logging(level: str, log_format: Literal["text", "json"]) -> None:
    """Send scimbridge's records (and every library's) to stderr, in the chosen format.

    Replaces the root logger's handlers, so calling it again changes the format.
    """
    handler = log_handler(log_format)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
