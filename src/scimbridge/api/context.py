"""What a System API request works with: its token, actor, request facts and the services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask import g
from flask import request

from ..domain.lifecycle import Actor
from ..domain.lifecycle import RequestInfo
from ..service.clients.idempotency import IdempotencyKeys
from ..service.clients.tokens import TokenService
from ..service.directory.lifecycle import UserDirectory
from ..service.directory.reads import DirectoryReader
from ..store.tokens import TokenInfo
from .problems import ApiProblem

# Session tokens and API tokens are 43 characters; anything much longer is not one of ours.
_MAX_TOKEN_LENGTH = 256

REALM = 'Bearer realm="scimbridge-api"'


@dataclass
class ApiState:
    """What the System API keeps in ``app.extensions["scimbridge_api"]``."""

    reader: DirectoryReader
    idempotency: IdempotencyKeys
    document: dict[str, Any] | None = None
    """The OpenAPI document, built on first use."""


def state() -> ApiState:
    """Return the System API's services."""
    found: ApiState = current_app.extensions["scimbridge_api"]
    return found


def directory() -> UserDirectory:
    """Return the lifecycle service every change goes through."""
    found: UserDirectory = current_app.extensions["scimbridge"].directory
    return found


def reader() -> DirectoryReader:
    """Return the read side of the directory."""
    return state().reader


def _tokens() -> TokenService:
    found: TokenService = current_app.extensions["scimbridge"].tokens
    return found


def request_id() -> str:
    """Return the request's id, which the app's first hook set and its last one answers.

    See ``web/observability.py``: the caller's ``X-Request-ID`` when usable, else a new one.
    """
    found: str = g.request_id
    return found


def authenticate() -> None:
    """Find the API token of the request, or refuse it (401)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise ApiProblem(
            "unauthorized", "an API bearer token is required", headers={"WWW-Authenticate": REALM}
        )
    info = _tokens().authenticate(value, kind="api") if len(value) <= _MAX_TOKEN_LENGTH else None
    if info is None:
        raise ApiProblem(
            "unauthorized",
            "the bearer token is not a valid API token",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    g.api_token = info
    throttled = current_app.extensions["scimbridge"].rate_limiter.hit("api", info.name)
    if throttled is not None:
        raise ApiProblem(
            "rate-limited",
            "this token made too many requests; retry later",
            headers={"Retry-After": str(throttled.retry_after)},
        )


def token() -> TokenInfo:
    """Return the token of the current request."""
    found: TokenInfo = g.api_token
    return found


def require_scope(scope: str) -> None:
    """Refuse the request (403) unless its token has ``scope``."""
    if scope not in token().scopes:
        raise ApiProblem(
            "insufficient-scope",
            f"this operation needs a token with the {scope} scope",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
        )


def actor() -> Actor:
    """Return the token acting, as the audit trail names it."""
    name = token().name
    return Actor("api", name, name)


def request_info() -> RequestInfo:
    """Describe the request for the audit trail."""
    return RequestInfo(
        request_id=request_id(),
        client_address=request.remote_addr,
        user_agent=request.user_agent.string or None,
    )
