"""Logging in and out, and the account page with the visitor's sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint
from flask import abort
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from ...domain.lifecycle import LoginRefused
from ...domain.lifecycle import RateLimited
from ...service.operations.metrics import instruments
from ..forms import FormErrors
from ..forms import read_fields
from ..forms import require
from ..pages import login_required
from ..pages import render_page
from ..pages import see_other
from ..visitor import Visitor
from ..visitor import clear_session_cookie
from ..visitor import current_visitor
from ..visitor import directory
from ..visitor import local_path
from ..visitor import request_info
from ..visitor import set_session_cookie

NOTICES = {
    "logged-out": "You are logged out.",
    "invitation-accepted": "Your password is set. Log in with your email address and it.",
    "password-reset": "Your password is changed and every session has ended. Log in with it.",
    "session-ended": "Your session has ended. Log in again.",
    "password-changed": "Your password is changed. Your other sessions have ended.",
    "session-closed": "The session has ended.",
    "other-sessions-closed": "Every other session has ended.",
}
"""Messages a redirect may ask a page to show (by key: no text travels in URLs)."""

_LOGIN_FIELDS = ("identifier", "password")


def _notice() -> str | None:
    return NOTICES.get(request.args.get("notice", ""))


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def login() -> Response:
    """Show the login form; on POST open a session and go on."""
    next_path = local_path(request.values.get("next"))
    if request.method == "GET":
        if current_visitor() is not None:
            return see_other(next_path or url_for("auth.account"))
        return render_page(
            "auth/login.html", errors=FormErrors(), values={}, next=next_path, notice=_notice()
        )
    errors = FormErrors()
    values = read_fields(errors, *_LOGIN_FIELDS, strip=("identifier",))
    require(errors, values, "identifier", "enter your email address or username")
    require(errors, values, "password", "enter your password")
    status = 400
    if not errors:
        try:
            result = directory().login(values["identifier"], values["password"], request_info())
        except RateLimited as exc:
            instruments().logins.labels("locked").inc()
            errors.add(None, str(exc))
            status = 429
        except LoginRefused as exc:
            instruments().logins.labels("refused").inc()
            errors.add(None, str(exc))
        else:
            instruments().logins.labels("ok").inc()
            previous = current_visitor()
            if previous is not None:
                # A new login replaces the browser's session rather than piling up another.
                directory().logout(previous.session_token)
            target = next_path or url_for("auth.account")
            if result.password_change_required:
                target = url_for("auth.password_change")
            response = see_other(target)
            set_session_cookie(response, result.session_token)
            return response
    return render_page(
        "auth/login.html",
        status,
        errors=errors,
        values={"identifier": values["identifier"]},
        next=next_path,
        notice=None,
    )


def logout() -> Response:
    """End the visitor's session."""
    visitor = current_visitor()
    if visitor is not None:
        directory().logout(visitor.session_token)
    response = see_other(url_for("auth.login", notice="logged-out"))
    clear_session_cookie(response)
    return response


def _session_rows(visitor: Visitor) -> list[dict[str, Any]]:
    return [
        {
            "id": row.id,
            "client": row.user_agent or "unknown client",
            "address": row.client_address or "unknown address",
            "started": _when(row.created),
            "last_seen": _when(row.last_seen),
            "current": row.id == visitor.session.id,
        }
        for row in directory().sessions_of(visitor.account.id)
    ]


@login_required
def account() -> Response:
    """Show who the visitor is, their role and their sessions."""
    visitor = current_visitor()
    assert visitor is not None
    role = directory().role_of(visitor.account.id)
    return render_page(
        "auth/account.html",
        account=visitor.account,
        role=role,
        sessions=_session_rows(visitor),
        notice=_notice(),
    )


@login_required
def end_session(session_id: str) -> Response:
    """End one of the visitor's own sessions."""
    visitor = current_visitor()
    assert visitor is not None
    if len(session_id) > 64:
        abort(404)
    ended = directory().end_session(visitor.account.id, session_id, visitor.actor, request_info())
    if not ended:
        abort(404)
    if session_id == visitor.session.id:
        response = see_other(url_for("auth.login", notice="logged-out"))
        clear_session_cookie(response)
        return response
    return see_other(url_for("auth.account", notice="session-closed"))


@login_required
def end_other_sessions() -> Response:
    """End every session of the visitor but this one."""
    visitor = current_visitor()
    assert visitor is not None
    directory().end_all_sessions(
        visitor.account.id, visitor.actor, request_info(), keep=visitor.session.id
    )
    return see_other(url_for("auth.account", notice="other-sessions-closed"))


def register_account_views(bp: Blueprint) -> None:
    """Add the login, logout and account routes."""
    bp.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])
    bp.add_url_rule("/account", view_func=account)
    bp.add_url_rule("/account/sessions/<session_id>/end", view_func=end_session, methods=["POST"])
    bp.add_url_rule("/account/sessions/end-others", view_func=end_other_sessions, methods=["POST"])
