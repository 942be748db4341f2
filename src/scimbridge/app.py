"""``create_app``: the one place where scimbridge is wired together."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api
from . import scim
from . import web
from .domain.resources import accept_internal_email_domains
from .service.clients.rate_limits import TokenRateLimiter
from .service.clients.tokens import TokenService
from .service.directory.lifecycle import UserDirectory
from .service.directory.provisioning import ProvisioningService
from .service.directory.roles import RolesConfig
from .service.directory.roles import load_roles
from .service.ldap.status import DirectoryHealth
from .service.operations.readiness import readiness
from .service.operations.secret_key import load_secret_key
from .settings import Settings
from .store.database import Database
from .store.database import database_for
from .web import observability
from .worker import lane_kinds


@dataclass
class Services:
    """What the web layer reaches through ``app.extensions["scimbridge"]``."""

    settings: Settings
    database: Database
    roles: RolesConfig
    directory: UserDirectory
    provisioning: ProvisioningService
    tokens: TokenService
    rate_limiter: TokenRateLimiter


class ScimbridgeFlask(Flask):
    """Flask, with the sync-or-async check of each hook and view made once, not per request.

    Flask asks ``inspect.iscoroutinefunction`` of every before/after hook and of the view on
    every request; on a SCIM GET that was a tenth of the time spent outside the view.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._made_sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return Flask's answer for ``func``, remembered for the functions registered."""
        try:
            return self._made_sync[func]
        except KeyError:
            pass
        except TypeError:  # an unhashable callable: ask Flask each time
            return super().ensure_sync(func)
        made = super().ensure_sync(func)
        # Hooks and views are registered once, so a few dozen keys. A closure made anew on
        # every call would be a new key each time: past the limit Flask is asked as before.
        if len(self._made_sync) < _MADE_SYNC_LIMIT:
            self._made_sync[func] = made
        return made


_MADE_SYNC_LIMIT = 1024
_NOSNIFF_LOWER = "x-content-type-options"


def create_app(settings: Settings | None = None, database: Database | None = None) -> Flask:
    """Build the WSGI application."""
    accept_internal_email_domains()
    settings = settings or Settings()
    database = database or database_for(settings)
    app = ScimbridgeFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.scim.max_payload_bytes
    if settings.server.proxy_hops:
        hops = settings.server.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    roles = load_roles(settings.roles.file)
    directory = UserDirectory(database, settings, roles)
    app.extensions["scimbridge"] = Services(
        settings=settings,
        database=database,
        roles=roles,
        directory=directory,
        provisioning=ProvisioningService(
            database,
            directory,
            max_patch_members=settings.scim.max_patch_members,
            invite_on_create=settings.lifecycle.on_scim_create == "invite",
        ),
        tokens=TokenService(database),
        rate_limiter=TokenRateLimiter(settings.rate_limit, database),
    )
    secret_key = load_secret_key(settings, database)
    # First: its hooks give every request (SCIM, API, pages) its id before their own hooks run.
    observability.init_app(app)
    scim.init_app(app, secret_key)
    api.init_app(app)
    web.init_app(app, secret_key)

    @app.after_request
    def _nosniff(response: Response) -> Response:
        # JSON answers (SCIM, the System API, errors) must never be sniffed into HTML.
        # A scan of the few headers, where Headers.setdefault raises and catches an HTTP
        # exception whenever the header is missing (on nearly every response).
        headers = response.headers
        if not any(name.lower() == _NOSNIFF_LOWER for name, _ in headers):
            headers.add("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    directory_health = DirectoryHealth(settings.ldap) if settings.ldap.enabled else None
    lanes = lane_kinds(settings)
    app.extensions["scimbridge.directory_health"] = directory_health

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        # An unreachable directory only degrades: SCIM writes queue up meanwhile.
        report, serving = readiness(database, directory_health, lanes)
        return jsonify(report), 200 if serving else 503

    logging.getLogger(__name__).debug("scimbridge app created for %s", settings.public_url)
    return app
