"""``/users/{user_id}/sessions``: see a user's login sessions, end one or all of them."""

from __future__ import annotations

from flask import Blueprint
from flask import Response

from . import context
from . import models
from . import representations
from .operations import Answer
from .operations import Operation
from .operations import operation
from .problems import ApiProblem
from .responses import empty_response
from .responses import model_response

TAG = "Sessions"


def register(bp: Blueprint) -> None:
    """Add the session operations to the blueprint."""

    @operation(
        bp,
        Operation(
            "GET",
            "/users/{user_id}/sessions",
            "listUserSessions",
            "List a user's sessions",
            "The user's active login sessions, newest first (never their tokens).",
            TAG,
            (Answer(200, "The sessions.", models.SessionList),),
            scope="users:read",
        ),
    )
    def list_sessions(user_id: str) -> Response:
        rows = context.directory().sessions_of(user_id)
        return model_response(
            models.SessionList(items=[representations.session(row) for row in rows])
        )

    @operation(
        bp,
        Operation(
            "DELETE",
            "/users/{user_id}/sessions",
            "endAllUserSessions",
            "End every session of a user",
            "The user is logged out everywhere at once.",
            TAG,
            (Answer(200, "How many sessions ended.", models.SessionsEnded),),
            scope="sessions:write",
        ),
    )
    def end_all_sessions(user_id: str) -> Response:
        ended = context.directory().end_all_sessions(
            user_id, context.actor(), context.request_info()
        )
        return model_response(models.SessionsEnded(ended=ended))

    @operation(
        bp,
        Operation(
            "DELETE",
            "/users/{user_id}/sessions/{session_id}",
            "endUserSession",
            "End one session of a user",
            "The browser holding that session is logged out.",
            TAG,
            (Answer(204, "The session ended."),),
            scope="sessions:write",
        ),
    )
    def end_session(user_id: str, session_id: str) -> Response:
        if not context.directory().end_session(
            user_id, session_id, context.actor(), context.request_info()
        ):
            raise ApiProblem("not-found", f"user {user_id} has no session {session_id}")
        return empty_response()
