"""scimbridge's log set-up: readable text or one JSON object per line, with request fields.

Within an HTTP request every record carries the request's id, the token or user acting, the
method and the path (see ``web/observability.py``, which sets them). The JSON lines name them
``request_id``, ``actor``, ``method``, ``path``; the access log adds ``status`` and
``duration_ms``. Paths are logged without their query string, and with the values of
``<token>`` route parts (invitation and reset links) replaced, so no secret reaches a line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
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


def _json_formatter() -> logging.Formatter:
    # orjson (already used for SCIM bodies) serialises a line in a fraction of json's time.
    from pythonjsonlogger.orjson import OrjsonFormatter

    return OrjsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


class LogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """scimbridge's stderr handler, which can also write a line without a log record.

    The access log writes a line per request. Through ``logging`` that line costs about
    35 µs more than writing it (a record made, filtered, formatted by the JSON library),
    3-4 % of a SCIM read. :meth:`write_line` writes exactly what :meth:`format` would write
    for an INFO record with the given message and fields, and :func:`direct_writers` says
    when doing so takes the route ``logging`` would take.
    """

    def __init__(self, log_format: Literal["text", "json"]) -> None:
        super().__init__(sys.stderr)
        self.json = log_format == "json"
        self.own_formatter = _json_formatter() if self.json else logging.Formatter(TEXT_FORMAT)
        self.setFormatter(self.own_formatter)
        self.addFilter(RequestFields())

    def is_plain(self) -> bool:
        """Say whether the handler still formats and filters as set up here."""
        return (
            self.formatter is self.own_formatter
            and self.level <= logging.INFO
            and all(isinstance(f, RequestFields) for f in self.filters)
        )

    def write_line(self, logger_name: str, message: str, fields: dict[str, Any]) -> None:
        """Write what an INFO record of ``logger_name`` with ``fields`` as extras would give."""
        line = self.line(logger_name, message, fields, time.time())
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            try:
                self.stream.write(line + self.terminator)
                self.flush()
            except Exception:  # as StreamHandler.emit: a broken stream must not fail a request
                self.handleError(logging.makeLogRecord({"msg": line}))

    def line(self, logger_name: str, message: str, fields: dict[str, Any], created: float) -> str:
        """Return :meth:`format`'s line for such a record made at ``created`` (epoch seconds)."""
        if self.json:
            data = {"level": "INFO", "logger": logger_name, "message": message, **fields}
            data["timestamp"] = datetime.fromtimestamp(created, tz=UTC).isoformat()
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
        # logging.Formatter's asctime: local time, then the milliseconds after a comma.
        seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        millis = int((created - int(created)) * 1000)
        return f"{seconds},{millis:03d} [{os.getpid()}] INFO {logger_name}: {message}"


def direct_writers(logger: logging.Logger) -> list[LogHandler] | None:
    """Return the handlers an INFO record of ``logger`` would reach, if all write lines directly.

    None when a filter or any other handler lies on the way (an operator's logging set-up,
    a test's capture): the record must then go through ``logging``. An empty list when no
    handler would take the record (``logging``'s last resort prints warnings only).
    """
    writers: list[LogHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if not isinstance(handler, LogHandler) or not handler.is_plain():
                return None
            writers.append(handler)
        if not current.propagate:
            break
        current = current.parent
    return writers


def log_handler(log_format: Literal["text", "json"]) -> logging.Handler:
    """Return a handler writing records to stderr in ``log_format``, with the request fields."""
    return LogHandler(log_format)


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
