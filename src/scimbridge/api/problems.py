"""Errors of the System API as RFC 9457 problem details, and the one place exceptions become them.

Each kind of refusal has a stable ``type`` URI under :data:`PROBLEM_BASE`; programs branch on
it, people read ``title`` and ``detail``. Validation problems list the fields at fault.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint
from flask import Response
from flask import g
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..domain.lifecycle import EmailTaken
from ..domain.lifecycle import InvalidEmail
from ..domain.lifecycle import InvalidTransition
from ..domain.lifecycle import LifecycleError
from ..domain.lifecycle import PasswordRejected
from ..domain.lifecycle import RateLimited
from ..domain.lifecycle import UnknownRole
from ..domain.lifecycle import UserNotFound
from ..service.clients.idempotency import IdempotencyKeyInProgress
from ..service.clients.idempotency import IdempotencyKeyReused
from ..store.database import UNAVAILABLE_RETRY_AFTER
from ..store.database import DatabaseError
from ..store.database import error_summary
from ..store.database import is_unavailable
from .responses import json_response

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://scimbridge.dev/problems/"
"""Prefix of every problem ``type``; the URIs name problems, they need not resolve."""

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """One kind of refusal."""

    slug: str
    status: int
    title: str
    description: str
    """When it happens, for the reference documentation."""

    @property
    def uri(self) -> str:
        """The ``type`` member of its problem documents."""
        return PROBLEM_BASE + self.slug


def _types(*types: ProblemType) -> dict[str, ProblemType]:
    return {problem.slug: problem for problem in types}


PROBLEM_TYPES = _types(
    ProblemType(
        "malformed-request",
        400,
        "The request cannot be read",
        "The body is not valid JSON, or a header is malformed.",
    ),
    ProblemType(
        "unauthorized",
        401,
        "A valid API token is required",
        "No bearer token, an unknown or revoked one, or a SCIM token (SCIM and API tokens "
        "are distinct).",
    ),
    ProblemType(
        "insufficient-scope",
        403,
        "The token lacks the scope this operation needs",
        "The token is valid but was not created with the scope the operation names.",
    ),
    ProblemType(
        "not-found",
        404,
        "No such resource",
        "No user, invitation or session with this id, or no such endpoint.",
    ),
    ProblemType(
        "method-not-allowed",
        405,
        "This endpoint does not accept this method",
        "The `Allow` header lists the methods it accepts.",
    ),
    ProblemType(
        "not-acceptable",
        406,
        "No acceptable response type",
        "The `Accept` header rules out `application/json` (with or without `charset=utf-8`).",
    ),
    ProblemType(
        "email-taken",
        409,
        "The email address belongs to another user",
        "Creating, inviting or editing would give two users the same address or userName.",
    ),
    ProblemType(
        "invalid-transition",
        409,
        "The user's state does not allow this",
        "For example resending the invitation of an active user, or resetting the password of "
        "a suspended one.",
    ),
    ProblemType(
        "idempotency-key-in-progress",
        409,
        "A request with this idempotency key is still being answered",
        "Retry once the first request has finished.",
    ),
    ProblemType(
        "payload-too-large",
        413,
        "The request body is too large",
        "The body exceeds the configured maximum (`SCIM__MAX_PAYLOAD_BYTES`).",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Request bodies must be JSON",
        "A body was sent with a `Content-Type` other than `application/json`.",
    ),
    ProblemType(
        "validation",
        422,
        "The request is not valid",
        "A parameter or body member is missing, of the wrong type or out of range; "
        "`errors` names each field and what is wrong with it.",
    ),
    ProblemType(
        "unknown-role",
        422,
        "No such role",
        "The role is not defined in the roles file; `GET /roles` lists the roles.",
    ),
    ProblemType(
        "password-rejected",
        422,
        "The password breaks the password policy",
        "`errors` lists each rule the temporary password breaks.",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "The idempotency key was used with a different request",
        "A key identifies one request: send a new key for a different body.",
    ),
    ProblemType(
        "rate-limited",
        429,
        "Too many requests",
        "Wait before trying again (`Retry-After` says how long, in seconds).",
    ),
    ProblemType(
        "service-unavailable",
        503,
        "The database cannot answer right now",
        "It is locked by another program, unreachable or out of connections. Retry after "
        "the `Retry-After` seconds.",
    ),
    ProblemType(
        "internal-error",
        500,
        "Internal error",
        "Unexpected; the server log has the details. Never expected in normal operation.",
    ),
)


@dataclass(frozen=True)
class FieldError:
    """One field at fault."""

    field: str
    message: str


class ApiProblem(Exception):
    """A refusal to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.type = PROBLEM_TYPES[slug]
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem_body(problem: ApiProblem) -> dict[str, Any]:
    """Return the problem document of a refusal."""
    body: dict[str, Any] = {
        "type": problem.type.uri,
        "title": problem.type.title,
        "status": problem.type.status,
        "detail": problem.detail,
    }
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    return body


def problem_response(problem: ApiProblem) -> Response:
    """Answer with a problem document."""
    return json_response(
        problem_body(problem),
        problem.type.status,
        problem.headers,
        mimetype=PROBLEM_MEDIA_TYPE,
    )


def field_name(location: tuple[str | int, ...], root: str = "body") -> str:
    """Name a field by its path in the request (``invitations.0.email``)."""
    return ".".join(str(part) for part in location) or root


def validation_problem(exc: ValidationError, root: str = "body") -> ApiProblem:
    """Turn a pydantic validation failure into a ``validation`` problem naming each field."""
    errors = [
        FieldError(field_name(tuple(error["loc"]), root), error["msg"])
        for error in exc.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(dict.fromkeys(error.field for error in errors))
    return ApiProblem("validation", f"invalid value in: {fields}", errors)


def lifecycle_problem(exc: LifecycleError) -> ApiProblem:
    """Map a refusal of the lifecycle service to its problem."""
    detail = str(exc)
    if isinstance(exc, UserNotFound):
        return ApiProblem("not-found", detail)
    if isinstance(exc, EmailTaken):
        return ApiProblem("email-taken", detail, [FieldError("email", detail)])
    if isinstance(exc, InvalidEmail):
        return ApiProblem("validation", detail, [FieldError("email", detail)])
    if isinstance(exc, PasswordRejected):
        return ApiProblem(
            "password-rejected",
            detail,
            [FieldError("temporary_password", reason) for reason in exc.reasons],
        )
    if isinstance(exc, UnknownRole):
        return ApiProblem("unknown-role", detail, [FieldError("role", detail)])
    if isinstance(exc, RateLimited):
        return ApiProblem("rate-limited", detail, headers={"Retry-After": "60"})
    if isinstance(exc, InvalidTransition):
        return ApiProblem("invalid-transition", detail)
    # Other refusals (links, logins) belong to end-user pages; none is expected here.
    return ApiProblem("invalid-transition", detail)


_HTTP_SLUGS = {
    400: "malformed-request",
    401: "unauthorized",
    403: "insufficient-scope",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def http_problem(exc: HTTPException) -> Response:
    """Answer a Werkzeug HTTP error (routing, body size) with a problem document."""
    status = exc.code or 500
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    slug = _HTTP_SLUGS.get(status)
    if slug is None:
        # A status with no problem type of its own: RFC 9457's "about:blank".
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": exc.name,
            "status": status,
            "detail": exc.description or exc.name,
        }
        return json_response(body, status, headers, mimetype=PROBLEM_MEDIA_TYPE)
    return problem_response(ApiProblem(slug, exc.description or exc.name, headers=headers))


def register_error_handlers(bp: Blueprint) -> None:
    """Make every error raised under the blueprint answer with a problem document."""

    @bp.errorhandler(ApiProblem)
    def _problem(exc: ApiProblem) -> Response:
        return problem_response(exc)

    @bp.errorhandler(LifecycleError)
    def _lifecycle(exc: LifecycleError) -> Response:
        return problem_response(lifecycle_problem(exc))

    @bp.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return problem_response(validation_problem(exc))

    @bp.errorhandler(IdempotencyKeyReused)
    def _key_reused(exc: IdempotencyKeyReused) -> Response:
        return problem_response(
            ApiProblem(
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request",
                [FieldError("Idempotency-Key", "already used with a different request")],
            )
        )

    @bp.errorhandler(IdempotencyKeyInProgress)
    def _key_in_progress(exc: IdempotencyKeyInProgress) -> Response:
        return problem_response(
            ApiProblem(
                "idempotency-key-in-progress",
                "the first request with this Idempotency-Key is still being answered",
                headers={"Retry-After": "1"},
            )
        )

    @bp.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return http_problem(exc)

    @bp.errorhandler(DatabaseError)
    def _database_error(exc: DatabaseError) -> Response:
        if not is_unavailable(exc):
            return _unexpected(exc)
        log.warning("System API request refused, database unavailable: %s", error_summary(exc))
        return problem_response(
            ApiProblem(
                "service-unavailable",
                "the database is busy or unreachable; retry shortly",
                headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
            )
        )

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error in a System API request")
        return problem_response(
            ApiProblem("internal-error", "internal error; the server log has the details")
        )
