"""``/roles`` and ``/groups``: roles with their granting groups, groups with member counts."""

from __future__ import annotations

from flask import Blueprint
from flask import Response

from . import context
from . import models
from . import representations
from .operations import Answer
from .operations import Operation
from .operations import operation
from .paging import decode_cursor
from .paging import next_cursor
from .responses import model_response

TAG = "Roles and groups"


def register(bp: Blueprint) -> None:
    """Add the role and group operations to the blueprint."""

    @operation(
        bp,
        Operation(
            "GET",
            "/roles",
            "listRoles",
            "List roles",
            "The roles of the roles file, highest priority first, each with the groups that "
            "grant it (and those groups' member counts when they exist). A user's role is the "
            "highest one their groups grant, else the default role.",
            TAG,
            (Answer(200, "Every role.", models.RoleList),),
            scope="users:read",
        ),
    )
    def list_roles() -> Response:
        roles = context.reader().list_roles()
        return model_response(models.RoleList(items=[representations.role(r) for r in roles]))

    @operation(
        bp,
        Operation(
            "GET",
            "/groups",
            "listGroups",
            "List groups",
            "Groups oldest first, with their direct member counts and the roles they grant.",
            TAG,
            (Answer(200, "A page of groups.", models.GroupList),),
            scope="users:read",
            query=models.PageQuery,
        ),
    )
    def list_groups(query: models.PageQuery) -> Response:
        page = context.reader().list_groups(
            after=decode_cursor(query.cursor), offset=query.offset, limit=query.limit
        )
        return model_response(
            models.GroupList(
                items=[representations.group(view) for view in page.items],
                total=page.total,
                next_cursor=next_cursor(page),
            )
        )
