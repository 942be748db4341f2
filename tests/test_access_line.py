"""The access line written without a log record: the same text, and only on the same route.

``LogHandler.line`` must give, byte for byte, what the handler's formatter gives for the
record ``logging`` would have made; ``direct_writers`` must refuse the direct route whenever
anything else (a filter, another handler, a changed formatter) would see the record.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import Literal

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from scimbridge.app import create_app
from scimbridge.logs import LogHandler
from scimbridge.logs import direct_writers
from scimbridge.settings import MetricsSettings
from scimbridge.settings import Settings
from scimbridge.store.database import Database

ACCESS = "scimbridge.access"

_field_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: round(x, 1)),
    st.none(),
)
_fields = st.dictionaries(
    st.sampled_from(["request_id", "method", "path", "actor", "status", "duration_ms"]),
    _field_values,
)
_moments = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)


def _formatted_by_logging(
    handler: LogHandler, message: str, fields: dict[str, Any], created: float
) -> str:
    """What ``logging`` writes for the record ``access_log.info(message, extra=fields)`` makes."""
    record = logging.LogRecord(ACCESS, logging.INFO, __file__, 0, message, (), None)
    record.__dict__.update(fields)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return handler.format(record)


@pytest.mark.parametrize("log_format", ["json", "text"])
@hypothesis_settings(max_examples=150, deadline=None)
@given(message=st.text(max_size=80), fields=_fields, created=_moments)
def test_the_direct_line_is_the_line_logging_would_write(
    log_format: Literal["json", "text"], message: str, fields: dict[str, Any], created: float
) -> None:
    """Any message (quotes, newlines, any script), any field values, any moment."""
    handler = LogHandler(log_format)
    direct = handler.line(ACCESS, message, fields, created)
    assert direct == _formatted_by_logging(handler, message, fields, created)
    if log_format == "json":
        assert json.loads(direct)["message"] == message


Loggers = tuple[logging.Logger, logging.Logger]


@pytest.fixture
def isolate() -> Iterator[Callable[[], Loggers]]:
    """Give a function emptying the access logger and those above it of handlers and filters.

    Called in the test itself: pytest adds its capturing handler to the root for each phase
    (set-up, call, teardown), after the fixtures are set up. Restored afterwards.
    """
    access = logging.getLogger(ACCESS)
    chain: list[logging.Logger] = []
    current: logging.Logger | None = access
    while current is not None:
        chain.append(current)
        current = current.parent
    saved = [(log, list(log.handlers), list(log.filters), log.propagate) for log in chain]

    def empty() -> Loggers:
        for log in chain:
            log.handlers.clear()
            log.filters.clear()
            log.propagate = True
        return logging.getLogger(), access

    try:
        yield empty
    finally:
        for log, handlers, filters, propagate in saved:
            log.handlers[:] = handlers
            log.filters[:] = filters
            log.propagate = propagate


def test_only_scimbridge_handlers_on_the_way_means_the_direct_route(
    isolate: Callable[[], Loggers],
) -> None:
    """The set-up ``serve`` makes: one LogHandler on the root."""
    root, access = isolate()
    handler = LogHandler("json")
    root.addHandler(handler)
    assert direct_writers(access) == [handler]


def test_no_handler_at_all_means_no_line(
    isolate: Callable[[], Loggers],
) -> None:
    """The last resort of logging takes warnings only: an INFO line goes nowhere either way."""
    _, access = isolate()
    assert direct_writers(access) == []


@pytest.mark.parametrize(
    "detour",
    ["another handler", "a logger filter", "a handler filter", "a new formatter", "a level"],
)
def test_anything_else_on_the_way_sends_the_line_through_logging(
    isolate: Callable[[], Loggers], detour: str
) -> None:
    """An operator's or a test's logging set-up sees every access line as a record."""
    root, access = isolate()
    handler = LogHandler("json")
    root.addHandler(handler)
    if detour == "another handler":
        access.addHandler(logging.StreamHandler(io.StringIO()))
    elif detour == "a logger filter":
        root.addFilter(logging.Filter("scimbridge"))
    elif detour == "a handler filter":
        handler.addFilter(logging.Filter("scimbridge"))
    elif detour == "a new formatter":
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setLevel(logging.WARNING)
    assert direct_writers(access) is None


def test_a_logger_that_does_not_propagate_ends_the_route(
    isolate: Callable[[], Loggers],
) -> None:
    """Handlers above a logger with ``propagate = False`` never see its records."""
    root, access = isolate()
    root.addHandler(logging.StreamHandler(io.StringIO()))  # would refuse the direct route
    mine = LogHandler("text")
    access.addHandler(mine)
    access.propagate = False
    assert direct_writers(access) == [mine]


def test_a_request_writes_its_access_line_directly(
    isolate: Callable[[], Loggers],
    settings: Settings,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the app, with serve's set-up: one JSON line, not a record (none is made)."""
    root, _ = isolate()
    handler = LogHandler("json")
    lines = io.StringIO()
    handler.setStream(lines)
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    made: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handle", made.append)
    try:
        app: Flask = create_app(
            settings.model_copy(update={"metrics": MetricsSettings(token="m" * 24)}), database
        )
        answer = app.test_client().get("/healthz", headers={"X-Request-ID": "direct-1"})
        assert lines.getvalue() == ""  # not before the answer is sent…
        answer.close()  # …which a WSGI server marks by closing the response
    finally:
        root.setLevel(level)
    assert answer.status_code == 200
    (line,) = [json.loads(text) for text in lines.getvalue().splitlines()]
    assert line["logger"] == ACCESS and line["request_id"] == "direct-1"
    assert line["status"] == 200 and line["path"] == "/healthz"
    assert line["message"].startswith("GET /healthz 200 ")
    assert made == []
