"""The SCIM 2.0 endpoint at ``/scim/v2`` (RFC 7643 / RFC 7644)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from scim2_models import Context
from scim2_models import InvalidValueException
from scim2_models import NotFoundException
from scim2_models import NotImplementedException
from scim2_models import SearchRequest
from scim2_models import UnauthorizedException
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed

from ..domain.resources import Group
from ..domain.resources import UserResource
from ..service.clients.deviations import record_client_deviations
from ..service.directory.provisioning import MAX_START_INDEX
from .bulk import register_bulk_view
from .cursors import CursorCodec
from .discovery import register_discovery_views
from .errors import TooManyRequests
from .errors import register_error_handlers
from .filter_cost import check_filter
from .paths import CanonicalScimPaths
from .quirks import ClientProfile
from .quirks import normalize_filter
from .requests import check_accept
from .requests import json_body
from .requests import scim_limits
from .responses import SCIM_MEDIA_TYPE
from .responses import scim_response
from .views import list_resources
from .views import register_resource_views

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
_PREFIX = "/scim/v2"

# Discovery documents hold nothing secret, and IdPs read them before a token is configured.
_PUBLIC_ENDPOINTS = {"ServiceProviderConfig", "ResourceTypes", "Schemas"}


@bp.before_request
def _authenticate() -> None:
    # Runs on every SCIM request: the proxies are resolved once, headers read from the
    # WSGI environ (the same values, without the case-insensitive header mapping).
    incoming, state = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    environ = incoming.environ
    check_accept(environ.get("HTTP_ACCEPT", "*/*"), state)
    path = incoming.path
    if "\x00" in path or b"%00" in incoming.query_string:
        # PostgreSQL cannot compare text holding NUL: refuse it before any query.
        raise InvalidValueException(detail="the URL holds a NUL character")
    first_segment = path.removeprefix(_PREFIX).lstrip("/").split("/", 1)[0]
    if first_segment in _PUBLIC_ENDPOINTS and incoming.method == "GET":
        return
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedException(detail="a bearer token is required")
    services = current_app.extensions["scimbridge"]
    info = services.tokens.authenticate(token.strip())
    if info is None:
        raise UnauthorizedException(detail="the bearer token is not valid")
    throttled = services.rate_limiter.hit("scim", info.name)
    if throttled is not None:
        raise TooManyRequests(throttled.retry_after)
    state.scim_token = info
    state.client_profile = ClientProfile(info.name, info.profile)


@bp.after_request
def _finish_response(response: Response) -> Response:
    """Label the response with the media type asked for; count deviations left uncounted.

    One hook for both: each hook costs a call and its proxy look-ups on every request.
    """
    state = g._get_current_object()
    # Every SCIM body is JSON; name it as the client asked for it (RFC 9110 §12.5.1).
    chosen = state.get("scim_media_type")
    if chosen is not None and chosen != SCIM_MEDIA_TYPE and response.mimetype == SCIM_MEDIA_TYPE:
        response.content_type = chosen
    # Deviations a write did not count in its own transaction (see operations.py) are
    # counted here: after the request (SCIM errors and bulk included), and only when one
    # was met, so ordinary requests write nothing more.
    profile: ClientProfile | None = state.get("client_profile")
    if profile is None or not profile.has_uncounted():
        return response
    tolerated, refused = profile.uncounted()
    if tolerated or refused:
        record_client_deviations(
            current_app.extensions["scimbridge"].database, profile.token_name, tolerated, refused
        )
    return response


@bp.post("/.search")
def root_search() -> Response:
    """Search users and groups at once (RFC 7644 §3.4.3); results list users first."""
    body = json_body()
    if any(key.lower() == "cursor" for key in body):
        raise InvalidValueException(
            detail="cursor paging is offered on /Users/.search and /Groups/.search, "
            "not across resource types"
        )
    for key, value in body.items():
        if key.lower() == "filter" and isinstance(value, str):
            check_filter(value, scim_limits())
            body[key] = normalize_filter(value, UserResource, g.client_profile)
    query: SearchRequest[Any] = SearchRequest[UserResource | Group].model_validate(
        body, scim_ctx=Context.SEARCH_REQUEST
    )
    settings = current_app.extensions["scimbridge"].settings
    start = min(max(query.start_index or 1, 1), MAX_START_INDEX)
    count = min(
        query.count if query.count is not None else settings.scim.default_page_size,
        settings.scim.max_page_size,
    )
    resources: list[dict[str, Any]] = []
    total = 0
    typed_requests: tuple[tuple[str, Any], ...] = (
        ("User", SearchRequest[UserResource]),
        ("Group", SearchRequest[Group]),
    )
    for resource_type, request_class in typed_requests:
        typed = request_class.model_validate(
            {
                **query.model_dump(scim_ctx=Context.SEARCH_REQUEST),
                "startIndex": max(start - total, 1),
                "count": max(count - len(resources), 0),
            },
            scim_ctx=Context.SEARCH_REQUEST,
        )
        page = list_resources(resource_type, typed, strict=False)
        resources.extend(page["Resources"])
        total += page["totalResults"]
    return scim_response(
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


@bp.route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def me() -> Response:
    """``/Me`` needs user-bound tokens, which scimbridge does not issue (yet)."""
    raise NotImplementedException(detail="/Me is not supported: tokens belong to clients")


@bp.route("/<path:unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found(unknown: str) -> Response:
    """Answer unknown paths with 404, and known paths with an unsupported method with 405."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != "scim.not_found":
            allowed.add(method)
    if allowed:
        raise MethodNotAllowed(valid_methods=sorted(allowed))
    raise NotFoundException(detail=f"no endpoint /{unknown}")


register_resource_views(bp)
register_bulk_view(bp)
register_discovery_views(bp)
register_error_handlers(bp)


def init_app(app: Flask, secret_key: bytes) -> None:
    """Mount the SCIM endpoint, reachable under any letter case and with a trailing slash.

    ``secret_key`` signs the cursors of cursor paging.
    """
    settings = app.extensions["scimbridge"].settings
    app.extensions["scimbridge_cursors"] = CursorCodec(
        secret_key, settings.scim.cursor_timeout_seconds
    )
    app.register_blueprint(bp)
    app.wsgi_app = CanonicalScimPaths(app.wsgi_app, bp.url_prefix or "")  # type: ignore[method-assign]
