"""What every HTTP request leaves behind: a request id, metrics, an access log line; ``/metrics``.

The hooks run for SCIM, the System API and the pages alike, before and after their own:

- the request id is the caller's ``X-Request-ID`` when it is short and plain (letters,
  digits, ``._:-``; at most 64), else a new one; it is answered in ``X-Request-ID``, kept in
  ``g.request_id`` for the audit trail, and carried by every log record of the request;
- the request is counted by route template (never a raw path: ids would make a series each);
- one ``scimbridge.access`` line says method, path, status, duration and who acted.

``/metrics`` is served only when ``metrics.token`` is set, and only to a scraper sending it
as a bearer token: without the setting it answers 404, so it is never open by accident.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request

from ..domain.lifecycle import request_id_of
from ..logs import direct_writers
from ..service.operations.metrics import exposition
from ..service.operations.metrics import instruments
from ..service.operations.metrics import scrape_allowed
from ..service.outbox.worker import queue_gauges
from ..settings import Settings
from ..store.database import Database

access_log = logging.getLogger("scimbridge.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SCIM_PREFIX = "/scim/v2/"
_SCIM_RESOURCES = frozenset(
    {
        "Users",
        "Groups",
        "Bulk",
        ".search",
        "Me",
        "ServiceProviderConfig",
        "ResourceTypes",
        "Schemas",
    }
)
_SECRET_ROUTE_PARTS = ("token",)
"""Route variables holding a secret (invitation and reset links): never logged."""


def _unproxied(proxy: Any) -> Any:
    """Return the object behind Flask's ``request`` or ``g``: each use of a proxy is a lookup."""
    return proxy._get_current_object()


def _begin() -> None:
    # These hooks run on every request: the proxies are resolved once each.
    state, incoming = _unproxied(g), _unproxied(request)
    state.request_started = time.perf_counter()
    # From the environ: a header lookup that misses raises and catches a KeyError inside.
    state.request_id = request_id_of(incoming.environ.get(_REQUEST_ID_ENVIRON))
    state.log_fields = {
        "request_id": state.request_id,
        "method": incoming.method,
        "path": _loggable_path(incoming.path, incoming.view_args),
    }


def _loggable_path(path: str, view_args: dict[str, Any] | None) -> str:
    """Return the request's path without query string, secret route parts replaced."""
    for name, value in (view_args or {}).items():
        if any(part in name for part in _SECRET_ROUTE_PARTS) and isinstance(value, str) and value:
            path = path.replace(value, "[redacted]")
    return path


def _actor(state: Any) -> str | None:
    """Name who acted: the SCIM or API token, or the logged-in user's id."""
    scim_token = state.get("scim_token")
    if scim_token is not None:
        return f"scim:{scim_token.name}"
    api_token = state.get("api_token")
    if api_token is not None:
        return f"api:{api_token.name}"
    visitor = state.get("visitor")
    if visitor is not None:
        return f"user:{visitor.account.id}"
    return None


_Series = tuple[Any, Any]
_series: dict[tuple[str, str, int], _Series] = {}
"""The request counter and latency histogram of each (route, method, status) met so far.

prometheus-client's ``labels()`` checks and locks on every call; the label sets are few and
fixed once met, so each is looked up once per process."""


def _series_of(route: str, method: str, status: int) -> _Series:
    metrics = instruments()
    if route.startswith(_SCIM_PREFIX):
        first = route.removeprefix(_SCIM_PREFIX).split("/", 1)[0]
        resource = first if first in _SCIM_RESOURCES else "other"
        return (
            metrics.scim_requests.labels(resource, method, str(status)),
            metrics.scim_request_seconds.labels(resource, method),
        )
    surface = "api" if route.startswith("/api/") else "pages"
    if route == "/metrics":
        surface = "metrics"
    return (
        metrics.http_requests.labels(surface, route, method, str(status)),
        metrics.http_request_seconds.labels(surface, route, method),
    )


def _count(incoming: Any, status: int, seconds: float) -> None:
    method = incoming.method if incoming.method in _METHODS else "other"
    rule = incoming.url_rule
    key = (rule.rule if rule is not None else "(no route)", method, status)
    series = _series.get(key)
    if series is None:
        series = _series.setdefault(key, _series_of(*key))
    requests, latency = series
    requests.inc()
    latency.observe(seconds)


def _access_line(state: Any, status: int, seconds: float, actor: str | None) -> None:
    """Log the request's access line.

    Written directly by scimbridge's own handlers when the line would reach only them (the
    set-up ``serve`` makes; see :func:`~scimbridge.logs.direct_writers`), else as a record
    handed to the logger's handlers as ``access_log.info`` would, less the search of the
    call stack for the caller's file and line (the same every time).
    """
    duration_ms = round(seconds * 1000, 1)
    fields = state.log_fields
    message = "%s %s %d %.1f ms (request %s, %s)" % (  # noqa: UP031  # as logging formats it
        fields["method"],
        fields["path"],
        status,
        duration_ms,
        state.request_id,
        actor or "anonymous",
    )
    extra = {**fields, "status": status, "duration_ms": duration_ms}
    writers = direct_writers(access_log)
    if writers is not None:
        for writer in writers:
            writer.write_line(access_log.name, message, extra)
        return
    record = access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, message, (), None, extra=extra
    )
    access_log.handle(record)


def _finisher(settings: Settings) -> Callable[[Response], Response]:
    """Return the after-request hook, with the app's settings read once rather than per request."""
    counting = settings.metrics.enabled
    logging_access = settings.access_log

    def finish(response: Response) -> Response:
        """Tag the answer with the request id; count it and log it."""
        state = _unproxied(g)
        if "request_id" not in state:
            return response  # a request refused before any hook ran (e.g. a malformed one)
        # Added, not set: only this hook names the header, and setting scans and rebuilds
        # the header list on every response.
        response.headers.add(REQUEST_ID_HEADER, state.request_id)
        seconds = time.perf_counter() - state.request_started
        actor = _actor(state)
        if actor is not None:
            state.log_fields["actor"] = actor
        if not (counting or logging_access):
            return response
        incoming, status = _unproxied(request), response.status_code

        def record() -> None:
            if counting:
                _count(incoming, status, seconds)
            if logging_access and access_log.isEnabledFor(logging.INFO):
                _access_line(state, status, seconds, actor)

        # Counted and logged once the answer is sent (the WSGI server closes the response
        # after writing it), as gunicorn writes its own access log: the client does not
        # wait for either. The duration is the app's, taken above.
        response.call_on_close(record)
        return response

    return finish


def _metrics_view() -> Response:
    settings: Settings = current_app.extensions["scimbridge"].settings
    expected = settings.metrics.token
    if expected is None or not expected.get_secret_value() or not settings.metrics.enabled:
        return Response("not found\n", 404, mimetype="text/plain")
    if not scrape_allowed(request.headers.get("Authorization"), expected.get_secret_value()):
        return Response(
            "a metrics bearer token is required\n",
            401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="scimbridge-metrics"'},
        )
    database: Database = current_app.extensions["scimbridge"].database
    body, content_type = exposition([queue_gauges(database)])
    return Response(body, 200, content_type=content_type, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Install the request hooks (before every blueprint's own) and ``/metrics``."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request(_finisher(app.extensions["scimbridge"].settings))
    app.add_url_rule("/metrics", "metrics", _metrics_view, methods=["GET"])
