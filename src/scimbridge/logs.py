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
from typing import Any
from typing import Literal

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
    # orjson (already used for SCIM bodies) serialises a line in a fraction of json's time:
    # the access log writes one per request. A hand-written formatter measured about 6 µs a
    # line less (8.5 against 14.9 µs with the record made), under 1 % of a SCIM request's CPU:
    # not worth giving up the library's handling of extras, exceptions and odd values.
    from pythonjsonlogger.orjson import OrjsonFormatter

    return OrjsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def log_handler(log_format: Literal["text", "json"]) -> logging.Handler:
    """Return a handler writing records to stderr in ``log_format``, with the request fields."""
    handler = logging.StreamHandler(sys.stderr)
    text = log_format == "text"
    handler.setFormatter(logging.Formatter(TEXT_FORMAT) if text else _json_formatter())
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
