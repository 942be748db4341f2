"""The admin User Directory at ``/admin``: users, groups and roles, provisioning, outbox, audit.

Only visitors whose role grants the ``admin`` permission get in: the guard below runs before
every view, GET or POST, so no action is reachable without it. Each change goes through the
lifecycle service (``UserDirectory``) or a service of its own, with the admin as the actor.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import Flask
from flask import abort
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from ...service.clients.token_admin import TokenAdmin
from ...service.directory.admin_reads import AdminReader
from ...service.outbox.status import OutboxStatus
from ..pages import allow_page_scripts
from ..pages import see_other
from ..visitor import current_visitor
from . import audit
from . import groups
from . import profile
from . import provisioning
from . import status
from . import users
from .common import AdminState
from .common import directory
from .common import roles
from .common import url_with
from .events import describe as describe_event
from .events import through

ADMIN_PERMISSION = "admin"
"""The permission (in ``config/roles.yaml``) that opens the User Directory."""

bp = Blueprint("admin", __name__, url_prefix="/admin")

_SECTIONS = {
    "users": ("users", "user", "invite", "create", "delete_user"),
    "groups": ("groups", "group"),
    "provisioning": ("provisioning",),
    "status": ("status",),
    "audit": ("audit",),
}


@bp.before_request
def _admins_only() -> ResponseReturnValue | None:
    allow_page_scripts()
    visitor = current_visitor()
    if visitor is None:
        back = request.full_path.removesuffix("?") if request.method == "GET" else None
        return see_other(url_for("auth.login", next=back))
    # Read on every request: a role taken away takes effect on the next click.
    role = directory().role_of(visitor.account.id)
    if ADMIN_PERMISSION not in role.permissions:
        abort(
            403,
            description="Your role does not open the User Directory. If you need it, ask an "
            "administrator to change your role.",
        )
    return None


def _section() -> str:
    view = (request.endpoint or "").removeprefix("admin.")
    for section, views in _SECTIONS.items():
        if view in views or view.startswith(tuple(v + "_" for v in views)):
            return section
    return ""


@bp.app_template_filter("moment")
def _moment(value: datetime | None, missing: str = "—") -> str:
    """Show a moment in UTC, to the minute."""
    if value is None:
        return missing
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("duration")
def _duration(value: timedelta | None) -> str:
    """Show an age like "3 min 20 s" or "2 h 5 min"."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"


@bp.app_template_filter("through")
def _through(value: datetime | None) -> str:
    """Show when a temporary role ends as the day picked: "through 13 Dec 2026"."""
    return through(value)


@bp.app_template_filter("thousands")
def _thousands(value: int) -> str:
    return f"{value:,}"


@bp.context_processor
def _admin_context() -> dict[str, Any]:
    return {
        "section": _section(),
        "url_with": url_with,
        "describe_event": describe_event,
        # The names alone: descriptions would be cut off in the dropdown (see ui.role_help).
        "role_names": [
            (role.name, role.name) for role in sorted(roles().roles, key=lambda r: -r.priority)
        ],
    }


users.register(bp)
profile.register(bp)
groups.register(bp)
provisioning.register(bp)
status.register(bp)
audit.register(bp)


def init_app(app: Flask) -> None:
    """Mount the admin pages."""
    services = app.extensions["scimbridge"]
    app.extensions["scimbridge_admin"] = AdminState(
        reader=AdminReader(services.database, services.roles),
        outbox=OutboxStatus(services.database),
        tokens=TokenAdmin(services.tokens, services.database),
    )
    app.register_blueprint(bp)
