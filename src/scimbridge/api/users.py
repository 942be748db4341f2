"""``/users``: list, read, create, edit, suspend, reactivate and delete users.

Also a user's role and password reset. Every change goes through the lifecycle service.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from flask import Blueprint
from flask import Response
from flask import current_app

from ..domain.lifecycle import UserStatus
from ..service.directory.lifecycle import ProfileChanges
from . import context
from . import models
from . import representations
from .operations import Answer
from .operations import Operation
from .operations import operation
from .paging import decode_cursor
from .paging import next_cursor
from .problems import ApiProblem
from .problems import FieldError
from .responses import empty_response
from .responses import model_response

TAG = "Users"

# Temporary roles are for weeks or months; a far-off end is a mistake (or a permanent role).
_LONGEST_TEMPORARY_ROLE = timedelta(days=5 * 366)


def user_location(user_id: str) -> str:
    """Absolute URL of a user in the System API."""
    public_url: str = current_app.extensions["scimbridge"].settings.public_url
    return f"{public_url.rstrip('/')}/api/v1/users/{user_id}"


def _user(user_id: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    view = context.reader().get_user(user_id)
    return model_response(representations.user(view), status, headers)


def register(bp: Blueprint) -> None:
    """Add the user operations to the blueprint."""

    @operation(
        bp,
        Operation(
            "GET",
            "/users",
            "listUsers",
            "List users",
            "Users oldest first, filtered by state, role and a text fragment; paged by cursor "
            "(`next_cursor`) or offset.",
            TAG,
            (Answer(200, "A page of users.", models.UserList),),
            scope="users:read",
            query=models.UserListQuery,
            problems=("unknown-role",),
        ),
    )
    def list_users(query: models.UserListQuery) -> Response:
        page = context.reader().list_users(
            status=UserStatus(query.status) if query.status else None,
            role=query.role,
            text=query.q,
            after=decode_cursor(query.cursor),
            offset=query.offset,
            limit=query.limit,
        )
        return model_response(
            models.UserList(
                items=[representations.user(view) for view in page.items],
                total=page.total,
                next_cursor=next_cursor(page),
            )
        )

    @operation(
        bp,
        Operation(
            "POST",
            "/users",
            "createUser",
            "Create a user",
            "Create an active user directly (no invitation), who must change the temporary "
            "password at first login. Without `temporary_password`, one is generated and "
            "returned once, in this answer only.",
            TAG,
            (Answer(201, "The user, created.", models.CreatedUser, ("Location",)),),
            scope="users:write",
            body=models.CreateUserRequest,
            problems=("email-taken", "unknown-role", "password-rejected"),
            idempotent=True,
            secret_fields=("temporary_password",),
        ),
    )
    def create_user(body: models.CreateUserRequest) -> Response:
        directory = context.directory()
        created = directory.create_user(
            str(body.email),
            body.given_name,
            body.family_name,
            body.role or directory.roles.default_role,
            body.temporary_password,
            context.actor(),
            context.request_info(),
        )
        view = context.reader().get_user(created.user_id)
        return model_response(
            representations.created_user(view, created.generated_password),
            201,
            {"Location": user_location(created.user_id)},
        )

    @operation(
        bp,
        Operation(
            "GET",
            "/users/{user_id}",
            "getUser",
            "Read a user",
            "One user, with their state and role.",
            TAG,
            (Answer(200, "The user.", models.User),),
            scope="users:read",
        ),
    )
    def get_user(user_id: str) -> Response:
        return _user(user_id)

    @operation(
        bp,
        Operation(
            "PATCH",
            "/users/{user_id}",
            "updateUser",
            "Edit a user's profile and contact details",
            "Members left out stay as they are; an empty string clears a name, title or "
            "department. A new email address becomes the primary one (and the userName when "
            "it was the old address); the old address is told of the change.",
            TAG,
            (Answer(200, "The user, changed.", models.User),),
            scope="users:write",
            body=models.UpdateUserRequest,
            problems=("email-taken",),
        ),
    )
    def update_user(user_id: str, body: models.UpdateUserRequest) -> Response:
        changes = ProfileChanges(
            given_name=body.given_name,
            family_name=body.family_name,
            email=str(body.email) if body.email is not None else None,
            phone_numbers=(
                [{"value": phone.value, "type": phone.type} for phone in body.phone_numbers]
                if body.phone_numbers is not None
                else None
            ),
            title=body.title,
            department=body.department,
        )
        context.directory().update_profile(
            user_id, changes, context.actor(), context.request_info()
        )
        return _user(user_id)

    @operation(
        bp,
        Operation(
            "PUT",
            "/users/{user_id}/role",
            "changeUserRole",
            "Change a user's role",
            "Moves the user between the role's granting groups. With `until`, the change is "
            "temporary: at that moment the user goes back to the role they hold now.",
            TAG,
            (Answer(200, "The user, with the new role.", models.User),),
            scope="users:write",
            body=models.RoleChangeRequest,
            problems=("unknown-role", "invalid-transition"),
        ),
    )
    def change_role(user_id: str, body: models.RoleChangeRequest) -> Response:
        if body.until is not None:
            now = datetime.now(UTC)
            if body.until <= now:
                raise ApiProblem(
                    "validation",
                    "a temporary role must end in the future",
                    [FieldError("until", "must be in the future")],
                )
            if body.until - now > _LONGEST_TEMPORARY_ROLE:
                raise ApiProblem(
                    "validation",
                    "a temporary role may last five years at most",
                    [FieldError("until", "must be within five years")],
                )
        context.directory().change_role(
            user_id, body.role, context.actor(), context.request_info(), until=body.until
        )
        return _user(user_id)

    @operation(
        bp,
        Operation(
            "POST",
            "/users/{user_id}/suspend",
            "suspendUser",
            "Suspend a user",
            "Blocks login at once, ends every session and voids pending invitation and reset "
            "links; data and history stay. Suspending a suspended user changes nothing.",
            TAG,
            (Answer(200, "The user, suspended.", models.User),),
            scope="users:write",
            idempotent=True,
        ),
    )
    def suspend_user(user_id: str) -> Response:
        context.directory().suspend(user_id, context.actor(), context.request_info())
        return _user(user_id)

    @operation(
        bp,
        Operation(
            "POST",
            "/users/{user_id}/reactivate",
            "reactivateUser",
            "Reactivate a suspended user",
            "Allows login again (old sessions stay ended); a user who never set a password goes "
            "back to `invited`. Reactivating a user who is not suspended changes nothing.",
            TAG,
            (Answer(200, "The user, reactivated.", models.User),),
            scope="users:write",
            idempotent=True,
        ),
    )
    def reactivate_user(user_id: str) -> Response:
        context.directory().reactivate(user_id, context.actor(), context.request_info())
        return _user(user_id)

    @operation(
        bp,
        Operation(
            "DELETE",
            "/users/{user_id}",
            "deleteUser",
            "Delete a user",
            "Irreversible; the audit trail keeps a tombstone. Suspending is usually preferable.",
            TAG,
            (Answer(204, "The user is deleted."),),
            scope="users:write",
        ),
    )
    def delete_user(user_id: str) -> Response:
        context.directory().delete(user_id, context.actor(), context.request_info())
        return empty_response()

    @operation(
        bp,
        Operation(
            "POST",
            "/users/{user_id}/password-reset",
            "resetUserPassword",
            "Email a user a password reset link",
            "The user receives a single-use link to set a new password; earlier reset links "
            "stop working. Refused for invited users (resend the invitation) and suspended ones.",
            TAG,
            (Answer(202, "The reset email is queued.", models.PasswordResetQueued),),
            scope="users:write",
            problems=("invalid-transition",),
            idempotent=True,
        ),
    )
    def reset_password(user_id: str) -> Response:
        context.directory().trigger_password_reset(user_id, context.actor(), context.request_info())
        view = context.reader().get_user(user_id)
        return model_response(
            models.PasswordResetQueued(user_id=view.id, email=view.email or ""), 202
        )
