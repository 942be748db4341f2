"""Error pages: every failure of a page request becomes a readable page, never a traceback.

Machine endpoints (SCIM, the System API) keep their own error formats; for them these
handlers give Werkzeug's plain answer.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from ..api.problems import http_problem
from ..domain.lifecycle import LifecycleError
from ..domain.lifecycle import RateLimited
from ..scim.errors import scim_http_error
from ..store.database import UNAVAILABLE_RETRY_AFTER
from ..store.database import DatabaseError
from ..store.database import error_summary
from ..store.database import is_unavailable
from .pages import is_page_request
from .pages import render_page

log = logging.getLogger(__name__)

_SCIM_PREFIX = "/scim/v2"
_API_PREFIX = "/api/v1"

_TITLES = {
    400: "This request cannot be handled",
    403: "Not allowed",
    404: "Page not found",
    405: "This page does not accept that",
    413: "Too much data",
    429: "Too many attempts",
}


def _http_error(exc: HTTPException) -> Response:
    # Routing errors (no route for the path or the method) reach the app, not a blueprint:
    # SCIM and the System API still answer them in their own formats.
    if request.path.startswith(_SCIM_PREFIX):
        return scim_http_error(exc)
    if request.path.startswith(_API_PREFIX):
        return http_problem(exc)
    if not is_page_request():
        return exc.get_response()
    status = exc.code or 500
    message = {
        404: "There is no page at this address. Check the link, or start again from the "
        "login page.",
        405: "Go back and use the page's own buttons.",
    }.get(status, exc.description or "")
    response = render_page(
        "error.html", status, title=_TITLES.get(status, "Something went wrong"), message=message
    )
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _lifecycle_error(exc: LifecycleError) -> Response:
    status = 429 if isinstance(exc, RateLimited) else 400
    if not is_page_request():
        plain = TooManyRequests if status == 429 else BadRequest
        return plain(str(exc)).get_response()
    return render_page(
        "error.html", status, title=_TITLES[status], message=str(exc).capitalize() + "."
    )


def _unexpected(exc: Exception) -> Response:
    # The endpoint, not the path: page paths can carry invitation and reset tokens.
    log.exception("unexpected error in %s %s", request.method, request.endpoint or "(no route)")
    if not is_page_request():
        return InternalServerError().get_response()
    return render_page(
        "error.html",
        500,
        title="Something went wrong",
        message="The problem has been logged. Try again in a moment.",
    )


def _database_error(exc: DatabaseError) -> Response:
    if not is_unavailable(exc):
        return _unexpected(exc)
    log.warning(
        "%s %s refused, database unavailable: %s",
        request.method,
        request.endpoint,
        error_summary(exc),
    )
    retry_after = str(UNAVAILABLE_RETRY_AFTER)
    if not is_page_request():
        response = ServiceUnavailable().get_response()
    else:
        response = render_page(
            "error.html",
            503,
            title="Busy right now",
            message="The service cannot reach its database at the moment. Try again in a few "
            "seconds.",
        )
    response.headers["Retry-After"] = retry_after
    return response


def init_app(app: Flask) -> None:
    """Register the error pages."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseError, _database_error)
    app.register_error_handler(LifecycleError, _lifecycle_error)
    app.register_error_handler(Exception, _unexpected)
