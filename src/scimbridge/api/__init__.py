"""The System API at ``/api/v1``: programmatic user management, described by OpenAPI 3.1.

Thin views over the lifecycle service (every change) and the directory reader (every list);
see ``operations.py`` for what all operations share and ``openapi.py`` for the document.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

from ..negotiation import negotiate
from ..negotiation import offers
from ..service.clients.idempotency import IdempotencyKeys
from ..service.directory.reads import DirectoryReader
from . import audit
from . import groups
from . import invitations
from . import sessions
from . import users
from .context import ApiState
from .context import authenticate
from .context import state
from .openapi import build_document
from .operations import OPERATIONS
from .operations import AnyPathConverter
from .operations import ResourceIdConverter
from .problems import PROBLEM_TYPES
from .problems import ApiProblem
from .problems import register_error_handlers
from .reference import reference_context
from .responses import JSON_MEDIA_TYPE
from .responses import empty_response
from .responses import json_response

bp = Blueprint("api", __name__, url_prefix="/api/v1", template_folder="templates")

_PUBLIC_ENDPOINTS = {"api.openapi_document", "api.reference", "api.reference_css", "api.not_found"}
# Pages that are not JSON, served whatever the Accept header says.
_NOT_JSON_ENDPOINTS = {"api.reference", "api.reference_css"}
_JSON_OFFERS = offers(JSON_MEDIA_TYPE)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Only the reference's own stylesheet; no script of any kind.
_REFERENCE_POLICY = (
    "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _allowed_methods() -> list[str]:
    """Return the methods the request's path accepts (none for an unknown path)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != "api.not_found":
            allowed.append(method)
    return sorted(allowed)


@bp.before_request
def _authenticate() -> Response | None:
    if request.method == "OPTIONS":
        # Flask's own answer would list the catch-all route's methods too.
        allowed = _allowed_methods()
        if not allowed:
            raise ApiProblem("not-found", "no such endpoint")
        response = empty_response()
        response.headers["Allow"] = ", ".join([*allowed, "OPTIONS"])
        return response
    if request.endpoint not in _NOT_JSON_ENDPOINTS:
        _negotiate()
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    authenticate()
    return None


def _negotiate() -> None:
    """Keep the JSON form the client accepts (RFC 9110 §12.5.1), or answer 406."""
    chosen = negotiate(request.accept_mimetypes, _JSON_OFFERS)
    if chosen is None:
        raise ApiProblem("not-acceptable", "this API answers in application/json")
    g.api_media_type = chosen


@bp.after_request
def _tag_response(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    chosen = g.get("api_media_type")
    if chosen is not None and response.mimetype == JSON_MEDIA_TYPE:
        response.content_type = chosen
    return response


def document() -> dict[str, Any]:
    """Return the OpenAPI document of this app (built once)."""
    api = state()
    if api.document is None:
        public_url: str = current_app.extensions["scimbridge"].settings.public_url
        api.document = build_document(OPERATIONS, public_url)
    return api.document


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """Serve the OpenAPI document (no token needed)."""
    response = json_response(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/docs")
def reference() -> Response:
    """Serve the API reference, rendered on the server from the OpenAPI document."""
    html = render_template("api/reference.html", **reference_context(document(), PROBLEM_TYPES))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _REFERENCE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/docs.css")
def reference_css() -> Response:
    """Serve the reference's stylesheet."""
    css = files(__package__).joinpath("static/reference.css").read_text()
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/", defaults={"unknown": ""}, methods=list(_METHODS))
@bp.route("/<any_path:unknown>", methods=list(_METHODS))
def not_found(unknown: str) -> Response:
    """Answer unknown paths with 404, and known paths with another method with 405."""
    allowed = _allowed_methods()
    if allowed:
        raise ApiProblem(
            "method-not-allowed",
            f"{request.method} is not allowed here; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiProblem("not-found", f"no endpoint /api/v1/{unknown[:100]}")


users.register(bp)
invitations.register(bp)
sessions.register(bp)
audit.register(bp)
groups.register(bp)
register_error_handlers(bp)


def init_app(app: Flask) -> None:
    """Mount the System API."""
    services = app.extensions["scimbridge"]
    app.extensions["scimbridge_api"] = ApiState(
        reader=DirectoryReader(services.database, services.roles),
        idempotency=IdempotencyKeys(services.database),
    )
    app.url_map.converters["resource_id"] = ResourceIdConverter
    app.url_map.converters["any_path"] = AnyPathConverter
    app.register_blueprint(bp)
