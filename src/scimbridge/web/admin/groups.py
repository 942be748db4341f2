"""Groups and roles: the configured roles (read-only), groups with member counts, members."""

from __future__ import annotations

from flask import Blueprint
from flask import abort
from werkzeug.wrappers import Response

from ...service.directory.admin_reads import GroupNotFound
from ..pages import render_page
from .common import PER_PAGE
from .common import checked_id
from .common import offset_of
from .common import page_number
from .common import pager
from .common import reader
from .users import STATUS_LABELS


def groups_page() -> Response:
    """Roles from the roles file, then every group, paged."""
    number = page_number()
    page = reader().group_page(offset=offset_of(number), limit=PER_PAGE)
    return render_page(
        "admin/groups.html",
        roles=reader().list_roles(),
        page=page,
        pager=pager(page, number),
    )


def group_page(group_id: str) -> Response:
    """One group and its direct members, paged."""
    try:
        group = reader().group(checked_id(group_id))
    except GroupNotFound:
        abort(404)
    number = page_number()
    members = reader().group_members(group, offset=offset_of(number), limit=PER_PAGE)
    return render_page(
        "admin/group.html",
        group=group,
        members=members,
        pager=pager(members, number),
        status_labels=STATUS_LABELS,
    )


def register(bp: Blueprint) -> None:
    """Add the groups and roles pages."""
    bp.add_url_rule("/groups", view_func=groups_page, endpoint="groups")
    bp.add_url_rule("/groups/<group_id>", view_func=group_page, endpoint="group")
