"""The users table, inviting users, creating a user directly, and pending invitations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint
from flask import abort
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import UnknownRole
from ...domain.lifecycle import UserNotFound
from ...domain.lifecycle import UserStatus
from ...service.directory.admin_reads import UserSort
from ..forms import FormErrors
from ..forms import read_fields
from ..forms import require
from ..pages import render_page
from ..pages import see_other
from ..visitor import request_info
from .common import PER_PAGE
from .common import actor
from .common import add_lifecycle_error
from .common import checked_id
from .common import directory
from .common import notice_from
from .common import offset_of
from .common import page_number
from .common import pager
from .common import reader
from .common import roles
from .events import through
from .exports import csv_download

NOTICES = {
    "invited": "Invitation sent.",
    "invited-many": "{count} invitations sent.",
    "invitation-resent": "A new invitation was sent; the previous link no longer works.",
    "invitation-cancelled": "The invitation was cancelled.",
    "deleted": "The user was deleted.",
}

STATUS_LABELS = {
    UserStatus.ACTIVE.value: "Active",
    UserStatus.INVITED.value: "Invited",
    UserStatus.SUSPENDED.value: "Suspended",
}

# Each entry of the invite box is an address, or a name and an address in angle brackets
# ("Ada Lovelace <ada@example.com>"); entries are separated by commas, semicolons, spaces or
# new lines. A name holds no "@", so a bare address before it is never read as its name.
_INVITEE = re.compile(r"(?:([^<>,;\n@]+?)\s*<([^<>]*)>)|([^\s,;<>]+)")

# One form should not become a mass mailing by accident.
MAX_INVITATIONS = 50
_MAX_ADDRESS_BOX = 20_000


def _sort() -> tuple[UserSort, bool]:
    try:
        sort = UserSort(request.args.get("sort", UserSort.NAME.value))
    except ValueError:
        sort = UserSort.NAME
    return sort, request.args.get("dir") == "desc"


def _table_filters() -> tuple[str, UserStatus | None, str]:
    """Return the table's search text, status and role filters (unknown values ignored)."""
    text = request.args.get("q", "").strip()[:200]
    status_arg = request.args.get("status", "")
    status = UserStatus(status_arg) if status_arg in STATUS_LABELS else None
    role = request.args.get("role", "")
    return text, status, role if role in roles().by_name else ""


def users_table() -> Response:
    """Show the users table: search, filter by status and role, sort, page."""
    text, status, role = _table_filters()
    sort, descending = _sort()
    number = page_number()
    try:
        page = reader().user_table(
            status=status,
            role=role or None,
            text=text,
            sort=sort,
            descending=descending,
            offset=offset_of(number),
            limit=PER_PAGE,
        )
    except UnknownRole:
        # The roles file changed under a bookmarked filter: show everyone instead.
        return see_other(url_for("admin.users"))
    return render_page(
        "admin/users.html",
        page=page,
        pager=pager(page, number),
        filters={"q": text, "status": status.value if status else "", "role": role},
        export_filters={
            name: value
            for name, value in (
                ("q", text),
                ("status", status.value if status else ""),
                ("role", role),
            )
            if value
        },
        filtered=bool(text or status or role),
        sort=sort.value,
        descending=descending,
        roles=roles().roles,
        status_labels=STATUS_LABELS,
        notice=notice_from(NOTICES),
    )


_EXPORT_HEADER = [
    "id",
    "username",
    "display name",
    "given name",
    "family name",
    "email",
    "role",
    "temporary role ends",
    "status",
    "last login (UTC)",
    "created (UTC)",
]


def users_export() -> Response:
    """Download the users the table shows with its filters, as CSV, oldest first."""
    text, status, role = _table_filters()
    try:
        found = reader().export_users(status=status, role=role or None, text=text)
    except UnknownRole:
        return see_other(url_for("admin.users_export"))
    rows = (
        [
            user.id,
            user.user_name,
            user.display_name,
            user.given_name,
            user.family_name,
            user.email,
            user.role,
            through(user.role_until) if user.role_until else None,
            STATUS_LABELS.get(user.status, user.status),
            user.last_login,
            user.created,
        ]
        for user in found
    )
    return csv_download("users", _EXPORT_HEADER, rows)


def _address_box(errors: FormErrors) -> str:
    """Read the invite box: a pasted list spans lines, the one control character allowed."""
    text = request.form.get("emails", "").replace("\r\n", "\n").replace("\t", " ").strip()
    if len(text) > _MAX_ADDRESS_BOX:
        errors.add("emails", f"use at most {_MAX_ADDRESS_BOX} characters")
        return ""
    if any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in text):
        errors.add("emails", "remove the control characters from this field")
        return ""
    return text


@dataclass(frozen=True)
class Invitee:
    """One entry of the invite box: an address and, optionally, the person's name."""

    email: str
    given_name: str | None = None
    family_name: str | None = None

    def __str__(self) -> str:
        name = " ".join(p for p in (self.given_name, self.family_name) if p)
        return f"{name} <{self.email}>" if name else self.email


def _split_name(name: str) -> tuple[str | None, str | None]:
    """Split a typed name: the last word is the family name (the invitee can correct it)."""
    words = name.split()
    if not words:
        return None, None
    if len(words) == 1:
        return words[0], None
    return " ".join(words[:-1]), words[-1]


def invitees(text: str) -> list[Invitee]:
    """Read the invite box: each address once (the first entry wins), in the order typed."""
    seen: dict[str, Invitee] = {}
    for match in _INVITEE.finditer(text):
        name, bracketed, bare = match.groups()
        email = (bracketed if bare is None else bare).strip()
        if email and email.lower() not in seen:
            seen[email.lower()] = Invitee(email, *_split_name(name or ""))
    return list(seen.values())


def invite() -> Response:
    """Invite one or several addresses with a role; each gets an emailed link."""
    errors = FormErrors()
    values = {"emails": "", "role": roles().default_role}
    invited: list[str] = []
    if request.method == "POST":
        values = read_fields(errors, "role", strip=("role",))
        values["emails"] = _address_box(errors)
        require(errors, values, "emails", "enter at least one email address")
        if values["role"] not in roles().by_name:
            errors.add("role", "choose a role")
        people = invitees(values["emails"])
        if len(people) > MAX_INVITATIONS:
            errors.add("emails", f"invite at most {MAX_INVITATIONS} addresses at once")
        if not errors:
            refused: list[str] = []
            for person in people:
                try:
                    directory().invite(
                        person.email,
                        values["role"],
                        actor(),
                        request_info(),
                        given_name=person.given_name,
                        family_name=person.family_name,
                    )
                except LifecycleError as exc:
                    add_lifecycle_error(errors, exc, "emails")
                    refused.append(str(person))
                else:
                    invited.append(person.email)
            if not errors:
                many = len(invited) > 1
                return see_other(
                    url_for(
                        "admin.users",
                        notice="invited-many" if many else "invited",
                        count=len(invited) if many else None,
                        status=UserStatus.INVITED.value,
                    )
                )
            # Keep only what still needs attention in the box; the rest went out.
            values["emails"] = "\n".join(refused)
    return render_page(
        "admin/invite.html",
        400 if errors else 200,
        errors=errors,
        values=values,
        invited=invited,
        roles=roles().roles,
    )


def create() -> Response:
    """Create an active user with a temporary password (typed, or generated and shown once)."""
    errors = FormErrors()
    names = ("email", "given_name", "family_name", "role", "temporary_password")
    values = dict.fromkeys(names, "") | {"role": roles().default_role}
    if request.method == "POST":
        values = read_fields(errors, *names, strip=names[:4])
        require(errors, values, "email", "enter the user's email address")
        if values["role"] not in roles().by_name:
            errors.add("role", "choose a role")
        if not errors:
            try:
                created = directory().create_user(
                    values["email"],
                    values["given_name"] or None,
                    values["family_name"] or None,
                    values["role"],
                    values["temporary_password"] or None,
                    actor(),
                    request_info(),
                )
            except LifecycleError as exc:
                add_lifecycle_error(errors, exc, "email")
            else:
                if created.generated_password is None:
                    return see_other(
                        url_for("admin.user", user_id=created.user_id, notice="created")
                    )
                # Shown in this answer only: it is stored hashed and cannot be shown again.
                return render_page(
                    "admin/created.html",
                    201,
                    user_id=created.user_id,
                    email=values["email"],
                    password=created.generated_password,
                )
    values["temporary_password"] = ""
    return render_page(
        "admin/create.html",
        400 if errors else 200,
        errors=errors,
        values=values,
        roles=roles().roles,
    )


def resend_invitation(user_id: str) -> Response:
    """Send a new invitation link; the previous one stops working."""
    try:
        directory().resend_invitation(checked_id(user_id), actor(), request_info())
    except UserNotFound:
        abort(404)
    return see_other(_back_to("invitation-resent", user_id))


def cancel_invitation(user_id: str) -> Response:
    """Remove a user whose invitation is pending."""
    try:
        directory().cancel_invitation(checked_id(user_id), actor(), request_info())
    except UserNotFound:
        abort(404)
    return see_other(url_for("admin.users", notice="invitation-cancelled"))


def _back_to(notice: str, user_id: str) -> str:
    """Return to the page the form was on: the table (with its filters) or the profile."""
    if request.form.get("from") == "table":
        return url_for("admin.users", notice=notice, status=request.form.get("status") or None)
    return url_for("admin.user", user_id=user_id, notice=notice)


def register(bp: Blueprint) -> None:
    """Add the users table and the invite and create forms."""
    both = ["GET", "POST"]
    bp.add_url_rule("/", view_func=users_table, endpoint="users")
    bp.add_url_rule("/users", view_func=users_table, endpoint="users_list")
    bp.add_url_rule("/users.csv", view_func=users_export, endpoint="users_export")
    bp.add_url_rule("/users/invite", view_func=invite, methods=both, endpoint="invite")
    bp.add_url_rule("/users/new", view_func=create, methods=both, endpoint="create")
    bp.add_url_rule(
        "/users/<user_id>/invitation/resend",
        view_func=resend_invitation,
        methods=["POST"],
        endpoint="user_resend_invitation",
    )
    bp.add_url_rule(
        "/users/<user_id>/invitation/cancel",
        view_func=cancel_invitation,
        methods=["POST"],
        endpoint="user_cancel_invitation",
    )
