"""Setting passwords: accepting an invitation, changing, forgetting and resetting one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import LinkInvalid
from ...domain.lifecycle import LinkPurpose
from ...domain.lifecycle import LoginRefused
from ...domain.lifecycle import PasswordRejected
from ...domain.lifecycle import RateLimited
from ...domain.lifecycle import UserStatus
from ...service.directory.lifecycle import ProfileChanges
from ..forms import FormErrors
from ..forms import read_fields
from ..forms import require
from ..pages import login_required
from ..pages import render_page
from ..pages import see_other
from ..visitor import clear_session_cookie
from ..visitor import current_visitor
from ..visitor import directory
from ..visitor import request_info

if TYPE_CHECKING:
    from ...store.lifecycle import Account

# Emailed tokens are 43 characters; a longer one is refused without a look-up.
_MAX_TOKEN_LENGTH = 128

_NEW_PASSWORD_FIELDS = ("new_password", "confirmation")


def _link_invalid(message: str = "This link is no longer valid.") -> Response:
    return render_page("auth/link_invalid.html", 410, message=message)


def _live_account(token: str, purpose: LinkPurpose) -> Account | None:
    if len(token) > _MAX_TOKEN_LENGTH:
        return None
    try:
        account = directory().check_link(token, purpose)
    except LinkInvalid:
        return None
    if purpose is LinkPurpose.INVITATION and account.status != UserStatus.INVITED:
        return None
    return account


def _check_new_password(errors: FormErrors, values: dict[str, str], account: Account) -> None:
    """Refuse a new password before the service does, so every reason shows at once."""
    require(errors, values, "new_password", "choose a new password")
    if "new_password" in errors.fields:
        return
    for reason in directory().password_policy_errors(values["new_password"], account):
        errors.add("new_password", reason)
    if values["confirmation"] != values["new_password"]:
        errors.add("confirmation", "the two passwords are not the same")


def _add_refusal(errors: FormErrors, exc: LifecycleError) -> None:
    if isinstance(exc, PasswordRejected):
        for reason in exc.reasons:
            errors.add("new_password", reason)
    elif isinstance(exc, LoginRefused):
        errors.add("current_password", str(exc))
    else:
        errors.add(None, str(exc))


def _link_password_form(
    token: str,
    purpose: LinkPurpose,
    template: str,
    dead_link: str,
    set_password: Callable[[str], Response],
    other_fields: tuple[str, ...] = (),
) -> Response:
    """Show the new-password form of an emailed link; on POST set the password through it.

    ``set_password`` applies the new password (it raises the service's refusals) and returns
    the answer to a success. ``other_fields`` are read (trimmed) and checked along with it.
    """
    account = _live_account(token, purpose)
    if account is None:
        return _link_invalid(dead_link)
    errors = FormErrors()
    if request.method == "POST":
        values = read_fields(errors, *_NEW_PASSWORD_FIELDS, *other_fields, strip=other_fields)
        _check_new_password(errors, values, account)
        if not errors:
            try:
                return set_password(values["new_password"])
            except LinkInvalid:
                return _link_invalid(dead_link)
            except LifecycleError as exc:
                _add_refusal(errors, exc)
    return render_page(template, 400 if errors else 200, account=account, errors=errors)


def invitation(token: str) -> Response:
    """Show the set-password form of an invitation; on POST activate the account."""

    def accept(password: str) -> Response:
        # The invitee confirms or corrects the name the admin typed (or gives one).
        name = ProfileChanges(
            given_name=request.form.get("given_name", "").strip(),
            family_name=request.form.get("family_name", "").strip(),
        )
        directory().accept_invitation(token, password, request_info(), name=name)
        return see_other(url_for("auth.login", notice="invitation-accepted"))

    return _link_password_form(
        token,
        LinkPurpose.INVITATION,
        "auth/invitation.html",
        "This invitation link is no longer valid.",
        accept,
        other_fields=("given_name", "family_name"),
    )


@login_required
def password_change() -> Response:
    """Change one's own password; also the forced change of a temporary password."""
    visitor = current_visitor()
    assert visitor is not None
    errors = FormErrors()
    if request.method == "POST":
        values = read_fields(errors, "current_password", *_NEW_PASSWORD_FIELDS)
        require(errors, values, "current_password", "enter your current password")
        _check_new_password(errors, values, visitor.account)
        if not errors:
            try:
                directory().change_password(
                    visitor.account.id,
                    values["current_password"],
                    values["new_password"],
                    request_info(),
                    keep_session=visitor.session.id,
                )
            except LifecycleError as exc:
                _add_refusal(errors, exc)
            else:
                return see_other(url_for("auth.account", notice="password-changed"))
    return render_page(
        "auth/password_change.html",
        400 if errors else 200,
        errors=errors,
        forced=visitor.account.password_change_required,
    )


def password_forgot() -> Response:
    """Ask for a reset link; the answer is the same whether the address is known or not."""
    errors = FormErrors()
    if request.method == "POST":
        values = read_fields(errors, "email", strip=("email",))
        require(errors, values, "email", "enter your email address")
        if not errors:
            try:
                directory().request_password_reset(values["email"], request_info())
            except RateLimited as exc:
                return render_page("error.html", 429, title="Too many attempts", message=str(exc))
            return render_page("auth/password_forgot_sent.html")
    return render_page("auth/password_forgot.html", 400 if errors else 200, errors=errors)


def password_reset(token: str) -> Response:
    """Show the new-password form of a reset link; on POST set it and end every session."""

    def reset(password: str) -> Response:
        directory().reset_password(token, password, request_info())
        response = see_other(url_for("auth.login", notice="password-reset"))
        clear_session_cookie(response)
        return response

    return _link_password_form(
        token,
        LinkPurpose.PASSWORD_RESET,
        "auth/password_reset.html",
        "This password reset link is no longer valid.",
        reset,
    )


def register_password_views(bp: Blueprint) -> None:
    """Add the invitation and password routes."""
    both = ["GET", "POST"]
    bp.add_url_rule("/invitation/<token>", view_func=invitation, methods=both)
    bp.add_url_rule("/password/change", view_func=password_change, methods=both)
    bp.add_url_rule("/password/forgot", view_func=password_forgot, methods=both)
    bp.add_url_rule("/password/reset/<token>", view_func=password_reset, methods=both)
