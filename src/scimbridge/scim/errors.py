"""The one place where every failure of a SCIM request becomes a SCIM ``Error``."""

from __future__ import annotations

import logging

from flask import Blueprint
from flask import Response
from pydantic import ValidationError
from scim2_models import Error
from scim2_models import SCIMException
from werkzeug.exceptions import HTTPException

from ..store.database import UNAVAILABLE_RETRY_AFTER
from ..store.database import DatabaseError
from ..store.database import error_summary
from ..store.database import is_unavailable
from .responses import error_response

log = logging.getLogger(__name__)

# scimType values RFC 7644 §3.12 defines; other pydantic-derived keywords are dropped.
_SCIM_TYPES = {
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
    # RFC 9865 §2.4 (cursor paging).
    "invalidCursor",
    "expiredCursor",
    "invalidCount",
}


class UnsupportedMediaType(SCIMException):
    """The request body is not JSON (415)."""

    status = 415
    _default_detail = "request bodies must be application/scim+json or application/json"


class NotAcceptable(SCIMException):
    """The client accepts no media type SCIM responses come in (406)."""

    status = 406
    _default_detail = (
        "responses are application/scim+json or application/json (charset utf-8); "
        "the Accept header lists neither"
    )


class TooManyRequests(SCIMException):
    """The token is over its rate limit (429); ``Retry-After`` says when to try again."""

    status = 429
    _default_detail = "this token made too many requests; retry later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


def scim_error_from_validation(exc: ValidationError) -> Error:
    """Turn a pydantic validation failure of a SCIM payload into one SCIM Error."""
    errors = Error.from_validation_errors(exc)
    error = errors[0]
    if error.scim_type and error.scim_type not in _SCIM_TYPES:
        error.scim_type = "invalidValue"
    if len(errors) > 1:
        error.detail = "; ".join(each.detail or "" for each in errors)
    return error


def scim_http_error(exc: HTTPException) -> Response:
    """Answer a Werkzeug HTTP error (routing, method, body size) with a SCIM ``Error``.

    The app's own handler calls this too, for the errors routing raises before the SCIM
    blueprint is known (a method no route of the path takes, a path no route matches).
    """
    status = exc.code or 500
    headers = dict(exc.get_headers())
    headers.pop("Content-Type", None)
    log.info("SCIM request refused: %s %s", status, exc.name)
    return error_response(Error(status=status, detail=exc.description), headers)


def register_error_handlers(bp: Blueprint) -> None:
    """Make every error raised under the blueprint answer with a SCIM ``Error``."""

    @bp.errorhandler(SCIMException)
    def _scim_exception(exc: SCIMException) -> Response:
        # One short line: the detail, never the request or a statement (it may be large).
        log.info("SCIM request refused: %s %s %s", exc.status, exc.scim_type, str(exc)[:200])
        headers = {"WWW-Authenticate": 'Bearer realm="scim"'} if exc.status == 401 else None
        if isinstance(exc, TooManyRequests):
            # Entra ID and Okta pause the job for Retry-After, then retry the request.
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.to_error(), headers)

    @bp.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        error = scim_error_from_validation(exc)
        log.info("SCIM request refused: %s %s %s", error.status, error.scim_type, exc.title)
        return error_response(error)

    bp.register_error_handler(HTTPException, scim_http_error)

    @bp.errorhandler(DatabaseError)
    def _database_error(exc: DatabaseError) -> Response:
        if not is_unavailable(exc):
            return _unexpected(exc)
        log.warning("SCIM request refused, database unavailable: %s", error_summary(exc))
        # IdPs retry a 503 later (Entra and Okta both do) rather than give up on the change.
        return error_response(
            Error(status=503, detail="the database is busy or unreachable; retry shortly"),
            {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, DatabaseError):
            # The driver's words, not the statement: a statement can run to hundreds of KB.
            log.error("unexpected database error in a SCIM request: %s", error_summary(exc))
            return error_response(Error(status=500, detail="internal error; see the server log"))
        log.exception("unexpected error in a SCIM request")
        return error_response(Error(status=500, detail="internal error; see the server log"))
