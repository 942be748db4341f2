"""What the admin views share: the services, the acting admin, paging, notices, form errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from flask import abort
from flask import current_app
from flask import request
from flask import url_for

from ...domain.lifecycle import Actor
from ...domain.lifecycle import EmailTaken
from ...domain.lifecycle import InvalidEmail
from ...domain.lifecycle import LifecycleError
from ...domain.lifecycle import PasswordRejected
from ...domain.lifecycle import UnknownRole
from ...service.clients.token_admin import TokenAdmin
from ...service.directory.admin_reads import AdminReader
from ...service.directory.lifecycle import UserDirectory
from ...service.directory.reads import Page
from ...service.directory.roles import RolesConfig
from ...service.outbox.status import OutboxStatus
from ...settings import Settings
from ..forms import FormErrors
from ..visitor import Visitor
from ..visitor import current_visitor

PER_PAGE = 50

# Page numbers far past any real listing are refused rather than turned into huge offsets.
_MAX_PAGE = 100_000

T = TypeVar("T")


@dataclass
class AdminState:
    """What the admin pages keep in ``app.extensions["scimbridge_admin"]``."""

    reader: AdminReader
    outbox: OutboxStatus
    tokens: TokenAdmin


def state() -> AdminState:
    """Return the admin services of the running app."""
    found: AdminState = current_app.extensions["scimbridge_admin"]
    return found


def reader() -> AdminReader:
    """Return the read side of the directory."""
    return state().reader


def directory() -> UserDirectory:
    """Return the lifecycle service: every change to a user goes through it."""
    found: UserDirectory = current_app.extensions["scimbridge"].directory
    return found


def roles() -> RolesConfig:
    """Return the configured roles."""
    found: RolesConfig = current_app.extensions["scimbridge"].roles
    return found


def settings() -> Settings:
    """Return the settings of the running app."""
    found: Settings = current_app.extensions["scimbridge"].settings
    return found


def admin_visitor() -> Visitor:
    """Return the logged-in admin (the blueprint's guard has checked the permission)."""
    visitor = current_visitor()
    assert visitor is not None
    return visitor


def actor() -> Actor:
    """Return the acting admin, as the audit trail names them."""
    visitor = admin_visitor()
    return Actor("admin", visitor.account.id, visitor.account.user_name)


def checked_id(value: str) -> str:
    """Refuse an id far longer than any real one without looking it up."""
    if len(value) > 64:
        abort(404)
    return value


# -- paging ---------------------------------------------------------------------------------


def page_number() -> int:
    """Return the requested page (1 when absent or unreadable)."""
    try:
        number = int(request.args.get("page", "1"))
    except ValueError:
        return 1
    return min(max(number, 1), _MAX_PAGE)


def offset_of(number: int) -> int:
    """Return the first row of a page."""
    return (number - 1) * PER_PAGE


@dataclass
class Pager:
    """Where a page stands in its listing, with links to its neighbours."""

    number: int
    first: int
    """1-based position of the first row shown (0 when none)."""
    last: int
    total: int
    previous_url: str | None
    next_url: str | None

    @property
    def pages(self) -> int:
        """How many pages the listing has."""
        return max(1, -(-self.total // PER_PAGE))


def pager(page: Page[T], number: int) -> Pager:
    """Describe a page of ``PER_PAGE`` rows for the paging links."""
    first = offset_of(number) + 1 if page.items else 0
    return Pager(
        number=number,
        first=first,
        last=offset_of(number) + len(page.items),
        total=page.total,
        previous_url=url_with(page=number - 1 if number > 2 else None) if number > 1 else None,
        next_url=url_with(page=number + 1) if page.has_more else None,
    )


def url_with(**changes: Any) -> str:
    """Return this page's URL with some query arguments changed (None removes one)."""
    arguments: dict[str, Any] = dict(request.args.items())
    # A notice belongs to the answer of one action, not to the links of the page showing it.
    arguments.pop("notice", None)
    arguments.pop("count", None)
    for name, value in changes.items():
        if value is None or value == "":
            arguments.pop(name, None)
        else:
            arguments[name] = value
    assert request.endpoint is not None
    return url_for(request.endpoint, **(request.view_args or {}), **arguments)


# -- messages -------------------------------------------------------------------------------


def notice_from(messages: Mapping[str, str]) -> str | None:
    """Return the message a redirect asked for (by key, so no text travels in URLs)."""
    key = request.args.get("notice", "")
    message = messages.get(key)
    if message is None:
        return None
    count = request.args.get("count", "")
    return message.format(count=int(count) if count.isdigit() else 1)


def add_lifecycle_error(errors: FormErrors, exc: LifecycleError, email_field: str) -> None:
    """Put a refusal of the lifecycle service next to the field it is about."""
    if isinstance(exc, EmailTaken | InvalidEmail):
        errors.add(email_field, str(exc))
    elif isinstance(exc, UnknownRole):
        errors.add("role", str(exc))
    elif isinstance(exc, PasswordRejected):
        for reason in exc.reasons:
            errors.add("temporary_password", reason)
    else:
        errors.add(None, str(exc))
