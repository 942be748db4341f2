"""The audit log: every recorded change, filtered by actor, action, target and time, paged."""

from __future__ import annotations

from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta

from flask import Blueprint
from flask import request
from werkzeug.wrappers import Response

from ...domain.lifecycle import UserNotFound
from ...service.directory.admin_reads import AuditFilters
from ...service.directory.reads import UserView
from ..pages import render_page
from .common import PER_PAGE
from .common import offset_of
from .common import page_number
from .common import pager
from .common import reader
from .events import describe
from .exports import csv_download

KNOWN_ACTIONS = (
    "user.invited",
    "user.invitation_resent",
    "user.invitation_cancelled",
    "user.invitation_accepted",
    "user.created",
    "user.updated",
    "user.role_changed",
    "user.role_grant_expired",
    "user.suspended",
    "user.reactivated",
    "user.deleted",
    "user.login",
    "user.login_failed",
    "user.login_refused",
    "user.password_changed",
    "user.password_reset_requested",
    "user.password_reset",
    "user.session_ended",
    "user.sessions_ended",
    "group.created",
    "group.updated",
    "group.replaced",
    "group.deleted",
    "token.created",
    "token.revoked",
    "jobs.retried",
)
"""Offered as suggestions in the action filter; any action can still be typed."""


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _filters() -> tuple[dict[str, str], AuditFilters]:
    """Return the filters as typed (to show them again) and as the reader takes them."""
    values = {
        name: request.args.get(name, "").strip()[:255]
        for name in ("actor", "action", "target", "since", "until")
    }
    since, until = _day(values["since"]), _day(values["until"])
    filters = AuditFilters(
        actor=values["actor"] or None,
        action=values["action"] or None,
        target=values["target"] or None,
        since=datetime.combine(since, time(0), UTC) if since else None,
        # "Until" a day includes that day.
        until=datetime.combine(until, time(0), UTC) + timedelta(days=1) if until else None,
    )
    return values, filters


def audit_log() -> Response:
    """Show the audit log, filtered and paged."""
    values, filters = _filters()
    number = page_number()
    page = reader().audit_log(filters, offset=offset_of(number), limit=PER_PAGE)
    return render_page(
        "admin/audit.html",
        target_user=_user_named(values["target"]),
        page=page,
        pager=pager(page, number),
        values=values,
        export_filters={name: value for name, value in values.items() if value},
        actor_names=reader().actor_names(page.items),
        date_errors={
            name: "enter a date like 2030-01-31"
            for name in ("since", "until")
            if values[name] and _day(values[name]) is None
        },
        filtered=any(values.values()),
        known_actions=KNOWN_ACTIONS,
    )


def _user_named(target: str) -> UserView | None:
    """Return the user a target filter names by id (the profile's link), to say who it is."""
    if not target or len(target) > 64:
        return None
    try:
        return reader().get_user(target)
    except UserNotFound:
        return None


_EXPORT_HEADER = [
    "time (UTC)",
    "event",
    "action",
    "actor type",
    "actor id",
    "actor",
    "target type",
    "target id",
    "target",
    "changes",
    "client address",
    "request id",
]


def audit_export() -> Response:
    """Download the events the log shows with its filters, as CSV, newest first."""
    _, filters = _filters()
    rows = (
        [
            event.at,
            words.sentence,
            event.action,
            event.actor_type,
            event.actor_id,
            event.actor_name,
            event.target_type,
            event.target_id,
            event.target_name,
            "; ".join(words.changes),
            event.client_address,
            event.request_id,
        ]
        for event in reader().export_audit_log(filters)
        for words in (describe(event),)
    )
    return csv_download("audit-log", _EXPORT_HEADER, rows)


def register(bp: Blueprint) -> None:
    """Add the audit log page."""
    bp.add_url_rule("/audit", view_func=audit_log, endpoint="audit")
    bp.add_url_rule("/audit.csv", view_func=audit_export, endpoint="audit_export")
