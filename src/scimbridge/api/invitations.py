"""``/invitations``: invite one or many people, list pending invitations, resend or cancel one.

An invitation is an ``invited`` user: its id is the user's id.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from pydantic import ValidationError

from ..domain.lifecycle import LifecycleError
from ..domain.lifecycle import UserStatus
from ..service.directory.reads import UserView
from . import context
from . import models
from . import representations
from .operations import Answer
from .operations import Operation
from .operations import operation
from .paging import decode_cursor
from .paging import next_cursor
from .problems import ApiProblem
from .problems import lifecycle_problem
from .problems import problem_body
from .problems import validation_problem
from .responses import empty_response
from .responses import model_response
from .users import user_location

TAG = "Invitations"


def _pending(invitation_id: str) -> UserView:
    view = context.reader().get_user(invitation_id)
    if view.status != UserStatus.INVITED:
        raise ApiProblem("not-found", f"user {invitation_id} has no pending invitation")
    return view


def _invite(request: models.InvitationRequest) -> models.Invitation:
    directory = context.directory()
    user_id = directory.invite(
        str(request.email),
        request.role or directory.roles.default_role,
        context.actor(),
        context.request_info(),
    )
    return representations.invitation(context.reader().get_user(user_id))


def register(bp: Blueprint) -> None:
    """Add the invitation operations to the blueprint."""

    @operation(
        bp,
        Operation(
            "GET",
            "/invitations",
            "listInvitations",
            "List pending invitations",
            "Invited users who have not accepted yet, oldest first; `expired` ones need a resend.",
            TAG,
            (Answer(200, "A page of pending invitations.", models.InvitationList),),
            scope="users:read",
            query=models.InvitationListQuery,
        ),
    )
    def list_invitations(query: models.InvitationListQuery) -> Response:
        page = context.reader().list_users(
            status=UserStatus.INVITED,
            text=query.q,
            after=decode_cursor(query.cursor),
            offset=query.offset,
            limit=query.limit,
        )
        return model_response(
            models.InvitationList(
                items=[representations.invitation(view) for view in page.items],
                total=page.total,
                next_cursor=next_cursor(page),
            )
        )

    @operation(
        bp,
        Operation(
            "POST",
            "/invitations",
            "inviteUser",
            "Invite someone",
            "Creates an `invited` user with the role and emails them a link to set their "
            "password. The `Location` is the user's.",
            TAG,
            (Answer(201, "The invitation, sent.", models.Invitation, ("Location",)),),
            scope="invitations:write",
            body=models.InvitationRequest,
            problems=("email-taken", "unknown-role"),
            idempotent=True,
        ),
    )
    def invite(body: models.InvitationRequest) -> Response:
        invitation = _invite(body)
        return model_response(invitation, 201, {"Location": user_location(invitation.id)})

    @operation(
        bp,
        Operation(
            "POST",
            "/invitations/batch",
            "inviteUsers",
            "Invite several people",
            "Each invitation is sent or refused on its own: the answer lists, in order, the "
            "invitation or the problem of each.",
            TAG,
            (Answer(200, "The outcome of each invitation.", models.InvitationBatchResult),),
            scope="invitations:write",
            body=models.InvitationBatchRequest,
            idempotent=True,
        ),
    )
    def invite_many(body: models.InvitationBatchRequest) -> Response:
        outcomes = []
        for request in body.invitations:
            email = str(request.email)
            try:
                invitation = _invite(request)
            except LifecycleError as exc:
                problem = models.Problem(**problem_body(lifecycle_problem(exc)))
                outcomes.append(
                    models.InvitationOutcome(email=email, invitation=None, problem=problem)
                )
            except ValidationError as exc:
                problem = models.Problem(**problem_body(validation_problem(exc)))
                outcomes.append(
                    models.InvitationOutcome(email=email, invitation=None, problem=problem)
                )
            else:
                outcomes.append(
                    models.InvitationOutcome(email=email, invitation=invitation, problem=None)
                )
        return model_response(models.InvitationBatchResult(results=outcomes))

    @operation(
        bp,
        Operation(
            "GET",
            "/invitations/{invitation_id}",
            "getInvitation",
            "Read a pending invitation",
            "404 once the invitation is accepted or cancelled.",
            TAG,
            (Answer(200, "The invitation.", models.Invitation),),
            scope="users:read",
        ),
    )
    def get_invitation(invitation_id: str) -> Response:
        return model_response(representations.invitation(_pending(invitation_id)))

    @operation(
        bp,
        Operation(
            "POST",
            "/invitations/{invitation_id}/resend",
            "resendInvitation",
            "Resend an invitation",
            "Emails a new link; the previous one stops working.",
            TAG,
            (Answer(200, "The invitation, sent again.", models.Invitation),),
            scope="invitations:write",
            problems=("invalid-transition",),
            idempotent=True,
        ),
    )
    def resend_invitation(invitation_id: str) -> Response:
        context.directory().resend_invitation(
            invitation_id, context.actor(), context.request_info()
        )
        return model_response(representations.invitation(_pending(invitation_id)))

    @operation(
        bp,
        Operation(
            "DELETE",
            "/invitations/{invitation_id}",
            "cancelInvitation",
            "Cancel an invitation",
            "Removes the invited user; their link stops working.",
            TAG,
            (Answer(204, "The invitation is cancelled."),),
            scope="invitations:write",
            problems=("invalid-transition",),
        ),
    )
    def cancel_invitation(invitation_id: str) -> Response:
        context.directory().cancel_invitation(
            invitation_id, context.actor(), context.request_info()
        )
        return empty_response()
