"""A group's members as SCIM JSON text, written by the database itself.

A GET of a group with thousands of members spent most of its time turning rows into Python
objects, and those into dicts for the JSON encoder. Here the database writes each member's
entry as JSON text and joins the entries into the ``members`` array, which the response
splices in as it is. The entries have the bytes, key order and member order that the
response builds from :func:`scimbridge.store.resources.load_members`
(``tests/test_member_json.py`` compares both on random groups, on both databases).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import func
from sqlalchemy import literal_column
from sqlalchemy import select

from .dialects import joined_in_order
from .dialects import json_object_text
from .prepared import PreparedStatement
from .resources import member_display
from .resources import member_user
from .tables import group_members


def _members_json_statement(dialect_name: str) -> PreparedStatement:
    """Build the query of one group's ``members`` array (NULL when it has none).

    Parameters: ``group_pk``, and ``user_refs`` / ``group_refs``, the URL prefixes of a user
    and of a group that the member's id completes into its ``$ref``.
    """
    member_id = group_members.c.member_id
    member_type = group_members.c.member_type
    ref = (
        case(
            (member_type == "User", bindparam("user_refs", type_=String())),
            (member_type == "Group", bindparam("group_refs", type_=String())),
        )
        + member_id
    )
    fields = [("value", member_id), ("$ref", ref), ("type", member_type)]
    display = member_display()
    entry = case(
        # An empty name is no name: the entry then has no "display", as when there is none.
        (func.nullif(display, "").is_(None), json_object_text(dialect_name, fields)),
        else_=json_object_text(dialect_name, [*fields, ("display", display)]),
    )
    entries = (
        select(entry.label("entry"), member_id.label("member_id"))
        .select_from(group_members)
        .outerjoin(member_user, member_user.c.id == member_id)
        .where(group_members.c.group_pk == bindparam("group_pk", type_=Integer()))
    )
    if dialect_name == "sqlite":
        # SQLite joins the entries in the order its subquery delivers them.
        entries = entries.order_by(member_id)
    rows = entries.subquery("entries")
    joined = joined_in_order(dialect_name, rows.c.entry, rows.c.member_id, ",")
    text = literal_column("'['", String()) + joined + literal_column("']'", String())
    return PreparedStatement(select(text))


_MEMBERS_JSON = {name: _members_json_statement(name) for name in ("sqlite", "postgresql")}


def members_json(conn: Connection, group_pk: int, ref_prefixes: Mapping[str, str]) -> str | None:
    """Return the ``members`` array of a group as JSON text, or None when it has no members.

    :param ref_prefixes: per member type (``User``, ``Group``), the URL its ids are appended
        to for ``$ref``, e.g. ``https://idp.example/scim/v2/Users/``.
    """
    text: str | None = _MEMBERS_JSON[conn.dialect.name].scalar(
        conn,
        {
            "group_pk": group_pk,
            "user_refs": ref_prefixes["User"],
            "group_refs": ref_prefixes["Group"],
        },
    )
    return text
