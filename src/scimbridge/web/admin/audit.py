"""The audit log: every recorded change, filtered by actor, action, target and time, paged."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import request
from werkzeug.wrappers import Response

from ...service.admin_reads import AuditFilters
from ..pages import render_page
from .common import PER_PAGE
from .common import offset_of
from .common import page_number
from .common import pager
from .common import reader

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

_MAX_VALUE = 120


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def describe_changes(changes: dict[str, Any] | None) -> list[str]:
    """Turn an event's changes into short lines: ``role: member → admin``."""
    lines = []
    for key, value in (changes or {}).items():
        if isinstance(value, dict) and set(value) == {"before", "after"}:
            before = "—" if value["before"] is None else _short(value["before"])
            after = "—" if value["after"] is None else _short(value["after"])
            lines.append(f"{key}: {before} → {after}")
        else:
            lines.append(f"{key}: {_short(value)}")
    return lines


def audit_log() -> Response:
    """Show the audit log, filtered and paged."""
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
    number = page_number()
    page = reader().audit_log(filters, offset=offset_of(number), limit=PER_PAGE)
    return render_page(
        "admin/audit.html",
        page=page,
        pager=pager(page, number),
        values=values,
        date_errors={
            name: "enter a date like 2030-01-31"
            for name in ("since", "until")
            if values[name] and _day(values[name]) is None
        },
        filtered=any(values.values()),
        known_actions=KNOWN_ACTIONS,
        describe_changes=describe_changes,
    )


def register(bp: Blueprint) -> None:
    """Add the audit log page."""
    bp.add_url_rule("/audit", view_func=audit_log, endpoint="audit")
