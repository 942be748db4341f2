"""``scimbridge users …`` and ``scimbridge audit``: the System API's user management from a shell.

The commands work on the database directly, through the same lifecycle service as the API, the
admin UI and SCIM (same rules, audit events and emails). Tables for people by default;
``--json`` prints what the System API would answer, for scripts.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

import click
from pydantic import BaseModel
from pydantic import ValidationError

from ..api import representations
from ..domain.lifecycle import Actor
from ..domain.lifecycle import LifecycleError
from ..domain.lifecycle import UserStatus
from ..domain.resources import accept_internal_email_domains
from ..service.directory.lifecycle import UserDirectory
from ..service.directory.reads import DirectoryReader
from ..service.directory.reads import UserView
from ..service.directory.roles import load_roles
from ..settings import Settings
from .data import existing_database


@dataclass
class _Directory:
    """The services a command works with."""

    changes: UserDirectory
    reads: DirectoryReader


@contextmanager
def _directory() -> Iterator[_Directory]:
    settings = Settings()
    database = existing_database(settings)
    try:
        accept_internal_email_domains()
        roles = load_roles(settings.roles.file)
        yield _Directory(UserDirectory(database, settings, roles), DirectoryReader(database, roles))
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()


def _actor(command: str) -> Actor:
    """Return the person at the shell, as the audit trail names them."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = None
    return Actor("cli", login, f"scimbridge {command}")


def _echo_json(value: BaseModel | dict[str, Any]) -> None:
    body = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under headers, columns aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _user_rows(views: Sequence[UserView]) -> list[list[str]]:
    return [
        [
            view.id,
            view.email or view.user_name,
            view.display_name or "-",
            view.status,
            view.role + (f" until {_when(view.role_until)}" if view.role_until else ""),
            _when(view.last_login),
        ]
        for view in views
    ]


_USER_HEADERS = ("ID", "EMAIL", "NAME", "STATUS", "ROLE", "LAST LOGIN")


def _show_user(view: UserView) -> None:
    fields = [
        ("id", view.id),
        ("userName", view.user_name),
        ("email", view.email or "-"),
        ("name", view.display_name or "-"),
        ("status", view.status),
        ("role", view.role + (f" until {_when(view.role_until)}" if view.role_until else "")),
        ("title", view.title or "-"),
        ("department", view.department or "-"),
        ("phone numbers", ", ".join(phone.value for phone in view.phone_numbers) or "-"),
        ("must change password", "yes" if view.password_change_required else "no"),
        ("last login", _when(view.last_login)),
        ("created", _when(view.created)),
    ]
    if view.status == UserStatus.INVITED:
        fields.append(("invitation expires", _when(view.invitation_expires)))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        click.echo(f"{name.ljust(width)}  {value}")


_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (as the System API).")


@click.group()
def users() -> None:
    """Users: list, show, invite, create, suspend, reactivate, delete, reset, sessions.

    USER is a user's id, userName or email address.
    """


@users.command("list")
@click.option("--status", type=click.Choice([s.value for s in UserStatus]), help="Only this state.")
@click.option("--role", help="Only users holding this role.")
@click.option("--search", help="Fragment of the name, userName or email (any letter case).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@_JSON
def users_list(
    status: str | None,
    role: str | None,
    search: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List users, oldest first."""
    with _directory() as directory:
        page = directory.reads.list_users(
            status=UserStatus(status) if status else None,
            role=role,
            text=search,
            offset=offset,
            limit=limit,
        )
    if as_json:
        _echo_json(
            {
                "items": [representations.user(v).model_dump(mode="json") for v in page.items],
                "total": page.total,
            }
        )
        return
    _table(_USER_HEADERS, _user_rows(page.items))
    shown = f"{offset + 1}-{offset + len(page.items)}" if page.items else "none"
    click.echo(f"({shown} of {page.total})")


@users.command("show")
@click.argument("user")
@_JSON
def users_show(user: str, as_json: bool) -> None:
    """Show one user."""
    with _directory() as directory:
        view = directory.reads.find_user(user)
    if as_json:
        _echo_json(representations.user(view))
    else:
        _show_user(view)


@users.command("invite")
@click.argument("emails", nargs=-1, required=True)
@click.option("--role", help="Role of the invited users (default: the default role).")
@_JSON
def users_invite(emails: tuple[str, ...], role: str | None, as_json: bool) -> None:
    """Invite people by email; each gets a link to set their password."""
    outcomes: list[dict[str, Any]] = []
    with _directory() as directory:
        actor = _actor("users invite")
        for email in emails:
            try:
                user_id = directory.changes.invite(
                    email.strip(), role or directory.changes.roles.default_role, actor
                )
            except LifecycleError as exc:
                outcomes.append({"email": email, "invitation": None, "error": str(exc)})
                continue
            except ValidationError:
                outcomes.append(
                    {"email": email, "invitation": None, "error": "not a valid email address"}
                )
                continue
            invitation = representations.invitation(directory.reads.get_user(user_id))
            outcomes.append(
                {"email": email, "invitation": invitation.model_dump(mode="json"), "error": None}
            )
    if as_json:
        _echo_json({"results": outcomes})
    else:
        for outcome in outcomes:
            if outcome["error"]:
                click.echo(f"{outcome['email']}: not invited: {outcome['error']}", err=True)
            else:
                click.echo(f"{outcome['email']}: invited ({outcome['invitation']['id']})")
    if any(outcome["error"] for outcome in outcomes):
        raise SystemExit(1)


@users.command("create")
@click.argument("email")
@click.option("--given-name", help="Given name.")
@click.option("--family-name", help="Family name.")
@click.option("--role", help="Role (default: the default role).")
@_JSON
def users_create(
    email: str, given_name: str | None, family_name: str | None, role: str | None, as_json: bool
) -> None:
    """Create an active user; the temporary password is printed once, as the last line.

    The user must change it at the first login.
    """
    with _directory() as directory:
        try:
            created = directory.changes.create_user(
                email.strip(),
                given_name,
                family_name,
                role or directory.changes.roles.default_role,
                None,
                _actor("users create"),
            )
        except ValidationError:
            raise click.ClickException(f"{email!r} is not a valid email address") from None
        view = directory.reads.get_user(created.user_id)
    if as_json:
        _echo_json(representations.created_user(view, created.generated_password))
        return
    click.echo(f"user {view.email} created ({view.id}, role {view.role}); temporary password:")
    click.echo(created.generated_password)


def _change_state(command: str, user: str, suspend: bool) -> None:
    with _directory() as directory:
        view = directory.reads.find_user(user)
        actor = _actor(f"users {command}")
        if suspend:
            directory.changes.suspend(view.id, actor)
        else:
            directory.changes.reactivate(view.id, actor)
        after = directory.reads.get_user(view.id)
    click.echo(f"{after.email or after.user_name}: {after.status}")


@users.command("suspend")
@click.argument("user")
def users_suspend(user: str) -> None:
    """Suspend a user: login blocked, sessions ended, links voided; data kept."""
    _change_state("suspend", user, suspend=True)


@users.command("reactivate")
@click.argument("user")
def users_reactivate(user: str) -> None:
    """Let a suspended user log in again."""
    _change_state("reactivate", user, suspend=False)


@users.command("delete")
@click.argument("user")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def users_delete(user: str, yes: bool) -> None:
    """Delete a user for good (the audit trail keeps a tombstone)."""
    with _directory() as directory:
        view = directory.reads.find_user(user)
        label = view.email or view.user_name
        if not yes:
            click.confirm(f"Delete {label} for good?", abort=True)
        directory.changes.delete(view.id, _actor("users delete"))
    click.echo(f"{label}: deleted")


@users.command("reset-password")
@click.argument("user")
def users_reset_password(user: str) -> None:
    """Email a user a password reset link."""
    with _directory() as directory:
        view = directory.reads.find_user(user)
        directory.changes.trigger_password_reset(view.id, _actor("users reset-password"))
    click.echo(f"{view.email}: reset link sent")


@users.command("sessions")
@click.argument("user")
@click.option("--end", "end_id", metavar="SESSION_ID", help="End this session.")
@click.option("--end-all", is_flag=True, help="End every session of the user.")
@_JSON
def users_sessions(user: str, end_id: str | None, end_all: bool, as_json: bool) -> None:
    """List a user's sessions, or end one or all of them."""
    if end_id and end_all:
        raise click.UsageError("give --end SESSION_ID or --end-all, not both")
    with _directory() as directory:
        view = directory.reads.find_user(user)
        actor = _actor("users sessions")
        if end_all:
            ended = directory.changes.end_all_sessions(view.id, actor)
            click.echo(f"{ended} session(s) ended")
            return
        if end_id:
            if not directory.changes.end_session(view.id, end_id, actor):
                raise click.ClickException(
                    f"{view.email or view.user_name} has no session {end_id}"
                )
            click.echo(f"session {end_id} ended")
            return
        rows = directory.changes.sessions_of(view.id)
    if as_json:
        _echo_json({"items": [representations.session(r).model_dump(mode="json") for r in rows]})
        return
    _table(
        ("ID", "STARTED", "LAST SEEN", "ADDRESS", "BROWSER"),
        [
            [
                row.id,
                _when(row.created),
                _when(row.last_seen),
                row.client_address or "-",
                (row.user_agent or "-")[:40],
            ]
            for row in rows
        ],
    )


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command()
@click.option("--user", help="Events about this user (id, userName or email).")
@click.option("--actor", help="Events by this actor (id or name, e.g. an API token's name).")
@click.option("--action", help="Events of this action, e.g. user.suspended.")
@click.option("--since", help="Events at or after (ISO 8601; UTC when no offset).")
@click.option("--until", help="Events before (ISO 8601; UTC when no offset).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@_JSON
def audit(
    user: str | None,
    actor: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Show the audit trail, newest first."""
    with _directory() as directory:
        user_id = target = None
        if user is not None:
            try:
                user_id = directory.reads.find_user(user).id
            except LifecycleError:
                target = user  # a deleted user: their events remain, by id or address
        page = directory.reads.audit_events(
            user_id=user_id,
            target=target,
            actor=actor,
            action=action,
            since=_moment(since),
            until=_moment(until),
            offset=offset,
            limit=limit,
        )
    events = [representations.audit_event(event) for event in page.items]
    if as_json:
        _echo_json({"items": [e.model_dump(mode="json") for e in events], "total": page.total})
        return
    _table(
        ("AT", "ACTOR", "ACTION", "TARGET", "CHANGES"),
        [
            [
                _when(event.at),
                f"{event.actor.type}:{event.actor.name or event.actor.id or '-'}",
                event.action,
                event.target.name or event.target.id or "-",
                json.dumps(event.changes, ensure_ascii=False)[:60] if event.changes else "",
            ]
            for event in events
        ],
    )
    click.echo(f"({len(events)} of {page.total})")


COMMANDS = (users, audit)
