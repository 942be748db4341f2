"""Who is visiting a page: the login session behind the cookie, looked up once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import current_app
from flask import g
from flask import request
from werkzeug.wrappers import Response

from ..domain.lifecycle import Actor
from ..domain.lifecycle import RequestInfo
from ..domain.lifecycle import request_id_of
from ..service.directory.lifecycle import UserDirectory
from ..settings import Settings

if TYPE_CHECKING:
    # Types only: the pages reach the store through UserDirectory, never directly.
    from ..store.lifecycle import Account
    from ..store.lifecycle import SessionRow


# Session tokens are 43 characters; anything much longer is not one of ours.
_MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True)
class Visitor:
    """A logged-in visitor."""

    session_token: str
    session: SessionRow
    account: Account

    @property
    def actor(self) -> Actor:
        """The visitor acting on their own account, as the audit trail names them."""
        return Actor("user", self.account.id, self.account.user_name)


def directory() -> UserDirectory:
    """Return the lifecycle service of the running app."""
    found: UserDirectory = current_app.extensions["scimbridge"].directory
    return found


def settings() -> Settings:
    """Return the settings of the running app."""
    found: Settings = current_app.extensions["scimbridge"].settings
    return found


def load_visitor() -> None:
    """Find the session of the request's cookie; an unusable cookie is dropped in the answer."""
    g.visitor = None
    token = request.cookies.get(settings().session.cookie_name)
    if not token:
        return
    found = directory().session(token) if len(token) <= _MAX_TOKEN_LENGTH else None
    if found is None:
        g.forget_session_cookie = True
        return
    g.visitor = Visitor(token, *found)


def current_visitor() -> Visitor | None:
    """Return the logged-in visitor, or None."""
    visitor: Visitor | None = g.get("visitor")
    return visitor


def request_info() -> RequestInfo:
    """Describe the current request for the audit trail and rate limits."""
    if "request_id" not in g:
        g.request_id = request_id_of(request.headers.get("X-Request-Id"))
    return RequestInfo(
        request_id=g.request_id,
        client_address=request.remote_addr,
        user_agent=request.user_agent.string or None,
    )


def secure_cookies() -> bool:
    """Whether cookies are for HTTPS only (the public URL is https)."""
    return settings().public_url.lower().startswith("https://")


def set_session_cookie(response: Response, token: str) -> None:
    """Give the browser its session cookie (for the browser session; the server expires it)."""
    response.set_cookie(
        settings().session.cookie_name,
        token,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
    )
    g.forget_session_cookie = False


def clear_session_cookie(response: Response) -> None:
    """Make the browser forget its session cookie."""
    response.delete_cookie(
        settings().session.cookie_name,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
    )


def local_path(target: str | None) -> str | None:
    """Return ``target`` when it is a path on this site (a safe ``next``), else None."""
    if not target or len(target) > 2048 or not target.startswith("/"):
        return None
    # "//host" and "/\\host" are read by browsers as another site.
    if target.startswith(("//", "/\\")) or any(c in target for c in "\\\r\n\t\x00"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
