"""A user's profile: details, role, password reset, sessions, suspension, deletion, history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import abort
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from ...domain.lifecycle import InvalidTransition
from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import UserNotFound
from ...domain.lifecycle import UserStatus
from ...service.directory.lifecycle import ProfileChanges
from ...service.directory.reads import UserView
from ..forms import FormErrors
from ..forms import read_fields
from ..forms import require
from ..pages import render_page
from ..pages import see_other
from ..visitor import request_info
from .clients import client_label
from .common import actor
from .common import add_lifecycle_error
from .common import admin_visitor
from .common import checked_id
from .common import directory
from .common import notice_from
from .common import reader
from .common import roles
from .common import state
from .users import STATUS_LABELS

NOTICES = {
    "created": "The user is created. They must choose a new password at their first login.",
    "profile-saved": "The profile is saved.",
    "role-changed": "The role is changed.",
    "reset-sent": "A password reset link is on its way to the user's email address.",
    "invitation-resent": "A new invitation was sent; the previous link no longer works.",
    "session-ended": "The session has ended: that browser must log in again.",
    "sessions-ended": "Every session of the user has ended.",
    "suspended": "The user is suspended: they cannot log in, and every session has ended.",
    "reactivated": "The user is active again and can log in.",
    "status-unchanged": "The status is unchanged.",
}

_PROFILE_FIELDS = (
    "given_name",
    "family_name",
    "email",
    "work_phone",
    "mobile_phone",
    "title",
    "department",
)


def _user(user_id: str) -> UserView:
    try:
        return reader().get_user(checked_id(user_id))
    except UserNotFound:
        abort(404)


def _phone(view: UserView, kind: str) -> str:
    return next((p.value for p in view.phone_numbers if (p.type or "work") == kind), "")


def _profile_values(view: UserView) -> dict[str, str]:
    return {
        "given_name": view.given_name or "",
        "family_name": view.family_name or "",
        "email": view.email or "",
        "work_phone": _phone(view, "work"),
        "mobile_phone": _phone(view, "mobile"),
        "title": view.title or "",
        "department": view.department or "",
    }


def _session_rows(user_id: str) -> list[dict[str, Any]]:
    current = admin_visitor().session.id
    return [
        {
            "id": row.id,
            "client": client_label(row.user_agent),
            "user_agent": row.user_agent or "",
            "address": row.client_address or "unknown address",
            "started": row.created,
            "last_seen": row.last_seen,
            "current": row.id == current,
        }
        for row in directory().sessions_of(user_id)
    ]


def _profile_page(
    view: UserView,
    status: int = 200,
    *,
    profile_errors: FormErrors | None = None,
    profile_values: dict[str, str] | None = None,
    role_errors: FormErrors | None = None,
    role_values: dict[str, str] | None = None,
    alert: str | None = None,
) -> Response:
    history = reader().history_of(view.id)
    return render_page(
        "admin/user.html",
        status,
        user=view,
        is_self=view.id == admin_visitor().account.id,
        sessions=_session_rows(view.id),
        history=history,
        actor_names=reader().actor_names(history.items),
        sync_refusals=state().outbox.parked_sync_of_user(view.id),
        profile_errors=profile_errors or FormErrors(),
        profile_values=profile_values or _profile_values(view),
        role_errors=role_errors or FormErrors(),
        role_values=role_values or {"role": view.role, "until": ""},
        roles=roles().roles,
        status_labels=STATUS_LABELS,
        alert=alert,
        notice=notice_from(NOTICES),
        tomorrow=(datetime.now(UTC).date() + timedelta(days=1)).isoformat(),
    )


def show(user_id: str) -> Response:
    """Show a user's profile page."""
    return _profile_page(_user(user_id))


def _back(user_id: str, notice: str) -> Response:
    return see_other(url_for("admin.user", user_id=user_id, notice=notice))


def _act(user_id: str, notice: str, action: Callable[[UserView], object]) -> Response:
    """Run an action on a user; a refusal shows on the profile, next to what was tried."""
    view = _user(user_id)
    try:
        action(view)
    except LifecycleError as exc:
        return _profile_page(view, 400, alert=str(exc))
    return _back(view.id, notice)


def save_profile(user_id: str) -> Response:
    """Save name, email and contact details."""
    view = _user(user_id)
    errors = FormErrors()
    values = read_fields(errors, *_PROFILE_FIELDS, strip=_PROFILE_FIELDS)
    require(errors, values, "email", "enter an email address")
    if not errors:
        kept_phones = [
            {"value": p.value, "type": p.type or ""}
            for p in view.phone_numbers
            if (p.type or "work") not in ("work", "mobile")
        ]
        phones = [
            {"value": values["work_phone"], "type": "work"},
            {"value": values["mobile_phone"], "type": "mobile"},
            *kept_phones,
        ]
        changes = ProfileChanges(
            given_name=values["given_name"],
            family_name=values["family_name"],
            email=values["email"],
            phone_numbers=[phone for phone in phones if phone["value"]],
            title=values["title"],
            department=values["department"],
        )
        try:
            directory().update_profile(view.id, changes, actor(), request_info())
        except LifecycleError as exc:
            add_lifecycle_error(errors, exc, "email")
        else:
            return _back(view.id, "profile-saved")
    return _profile_page(view, 400, profile_errors=errors, profile_values=values)


def _end_of(day: str) -> datetime:
    """Return when a temporary role given "until" this day ends: the end of the day, UTC."""
    return datetime.combine(date.fromisoformat(day), time(0), UTC) + timedelta(days=1)


def change_role(user_id: str) -> Response:
    """Give the user another role, for good or until a date."""
    view = _user(user_id)
    errors = FormErrors()
    values = read_fields(errors, "role", "until", strip=("role", "until"))
    if values["role"] not in roles().by_name:
        errors.add("role", "choose a role")
    until = None
    if values["until"]:
        try:
            until = _end_of(values["until"])
        except ValueError:
            errors.add("until", "enter a date like 2030-01-31")
    if not errors:
        try:
            directory().change_role(view.id, values["role"], actor(), request_info(), until=until)
        except InvalidTransition as exc:
            errors.add("until", str(exc))
        except LifecycleError as exc:
            errors.add("role", str(exc))
        else:
            return _back(view.id, "role-changed")
    return _profile_page(view, 400, role_errors=errors, role_values=values)


def reset_password(user_id: str) -> Response:
    """Email the user a password reset link."""
    return _act(
        user_id,
        "reset-sent",
        lambda view: directory().trigger_password_reset(view.id, actor(), request_info()),
    )


def end_session(user_id: str, session_id: str) -> Response:
    """End one session of the user."""

    def end(view: UserView) -> None:
        if not directory().end_session(view.id, checked_id(session_id), actor(), request_info()):
            raise InvalidTransition("that session has already ended")

    return _act(user_id, "session-ended", end)


def end_all_sessions(user_id: str) -> Response:
    """End every session of the user (but the admin's own, on their own profile)."""
    keep = admin_visitor().session.id
    return _act(
        user_id,
        "sessions-ended",
        lambda view: directory().end_all_sessions(view.id, actor(), request_info(), keep=keep),
    )


def _not_self(view: UserView, what: str) -> None:
    if view.id == admin_visitor().account.id:
        raise InvalidTransition(f"you cannot {what} your own account; ask another administrator")


def suspend(user_id: str) -> Response:
    """Block the user's login at once and end their sessions."""

    def act(view: UserView) -> None:
        _not_self(view, "suspend")
        directory().suspend(view.id, actor(), request_info())

    return _act(user_id, "suspended", act)


def reactivate(user_id: str) -> Response:
    """Let a suspended user log in again."""
    return _act(
        user_id,
        "reactivated",
        lambda view: directory().reactivate(view.id, actor(), request_info()),
    )


def set_status(user_id: str) -> Response:
    """Set the status from the profile's Status control: the same suspend and reactivate."""
    wanted = request.form.get("status", "")

    def act(view: UserView) -> None:
        if wanted == UserStatus.SUSPENDED.value:
            _not_self(view, "suspend")
            directory().suspend(view.id, actor(), request_info())
        elif wanted == UserStatus.ACTIVE.value:
            directory().reactivate(view.id, actor(), request_info())
        else:
            raise InvalidTransition("choose Active or Suspended")

    view = _user(user_id)
    if wanted == view.status:
        return _back(view.id, "status-unchanged")
    notice = "suspended" if wanted == UserStatus.SUSPENDED.value else "reactivated"
    return _act(user_id, notice, act)


def delete(user_id: str) -> Response:
    """Confirm, then delete the user for good."""
    view = _user(user_id)
    alert = None
    if request.method == "POST":
        try:
            _not_self(view, "delete")
            directory().delete(view.id, actor(), request_info())
        except LifecycleError as exc:
            alert = str(exc)
        else:
            return see_other(url_for("admin.users", notice="deleted"))
    return render_page(
        "admin/user_delete.html",
        400 if alert else 200,
        user=view,
        alert=alert,
        suspended=view.status == UserStatus.SUSPENDED.value,
    )


def register(bp: Blueprint) -> None:
    """Add the profile page and its actions."""
    prefix = "/users/<user_id>"
    bp.add_url_rule(prefix, view_func=show, endpoint="user")
    for path, view_func, endpoint in (
        ("/profile", save_profile, "user_save_profile"),
        ("/role", change_role, "user_change_role"),
        ("/password-reset", reset_password, "user_reset_password"),
        ("/sessions/<session_id>/end", end_session, "user_end_session"),
        ("/sessions/end-all", end_all_sessions, "user_end_all_sessions"),
        ("/suspend", suspend, "user_suspend"),
        ("/reactivate", reactivate, "user_reactivate"),
        ("/status", set_status, "user_set_status"),
    ):
        bp.add_url_rule(prefix + path, view_func=view_func, methods=["POST"], endpoint=endpoint)
    bp.add_url_rule(
        prefix + "/delete", view_func=delete, methods=["GET", "POST"], endpoint="delete_user"
    )
