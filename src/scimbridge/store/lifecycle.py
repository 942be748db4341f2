"""Queries of the user lifecycle: states, emailed links, sessions, role grants, rate limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from ..domain.emails import mail_address
from .dialects import conflict_insert
from .prepared import PreparedStatement
from .tables import rate_limits
from .tables import role_grants
from .tables import sessions
from .tables import user_emails
from .tables import user_links
from .tables import users
from .timestamps import from_db
from .timestamps import to_db


@dataclass
class Account:
    """What login and lifecycle rules need to know of a user."""

    pk: int
    id: str
    user_name: str
    status: str
    password_hash: str | None
    password_change_required: bool
    last_login: datetime | None
    doc: dict[str, Any]

    @property
    def email(self) -> str | None:
        """The address mail goes to: the primary one, else the first; None without one.

        An email value that is no address (SCIM clients may write one) is never mailed.
        """
        return mail_address(self.doc.get("emails") or [])

    @property
    def display_name(self) -> str:
        """A name to greet the user with."""
        name = self.doc.get("name") or {}
        formatted = " ".join(p for p in (name.get("givenName"), name.get("familyName")) if p)
        return str(self.doc.get("displayName") or formatted or self.user_name)


_ACCOUNT_COLUMNS = (
    users.c.pk,
    users.c.id,
    users.c.user_name,
    users.c.status,
    users.c.password_hash,
    users.c.password_change_required,
    users.c.last_login,
    users.c.doc,
)


def _account(row: Sequence[Any]) -> Account:
    """Build an account from a row of ``_ACCOUNT_COLUMNS``, in that order."""
    pk, user_id, user_name, status, password_hash, change_required, last_login, doc = row
    return Account(
        pk=pk,
        id=user_id,
        user_name=user_name,
        status=status,
        password_hash=password_hash,
        password_change_required=bool(change_required),
        last_login=from_db(last_login),
        doc=doc,
    )


# Statements of the paths every suspension or login takes are built once (see
# store/resources.py for why).
_ACCOUNT_BY_ID = PreparedStatement(
    select(*_ACCOUNT_COLUMNS).where(users.c.id == bindparam("user_id"))
)
_ACCOUNT_BY_PK = PreparedStatement(
    select(*_ACCOUNT_COLUMNS).where(users.c.pk == bindparam("user_pk"))
)
_SET_STATUS = PreparedStatement(
    update(users).where(users.c.pk == bindparam("user_pk")).values(status=bindparam("status"))
)


def account_by_id(conn: Connection, user_id: str) -> Account | None:
    """Return the account of a user id."""
    row = _ACCOUNT_BY_ID.first(conn, {"user_id": user_id})
    return _account(row) if row else None


def account_by_pk(conn: Connection, user_pk: int) -> Account | None:
    """Return the account of a user's primary key."""
    row = _ACCOUNT_BY_PK.first(conn, {"user_pk": user_pk})
    return _account(row) if row else None


def set_status(conn: Connection, user_pk: int, status: str) -> None:
    """Change a user's lifecycle state."""
    _SET_STATUS.execute(conn, {"user_pk": user_pk, "status": status})


def account_by_login(conn: Connection, key: str) -> Account | None:
    """Return the account whose userName or one of whose emails has this comparison key."""
    row = conn.execute(select(*_ACCOUNT_COLUMNS).where(users.c.user_name_key == key)).first()
    if row is None:
        row = conn.execute(
            select(*_ACCOUNT_COLUMNS)
            .join(user_emails, user_emails.c.user_pk == users.c.pk)
            .where(user_emails.c.value_key == key)
            .order_by(user_emails.c.primary.desc(), users.c.pk)
        ).first()
    return _account(row) if row else None


def set_account_fields(conn: Connection, user_pk: int, **fields: Any) -> None:
    """Update lifecycle columns (status, password_hash, password_change_required, last_login)."""
    values = {
        key: (to_db(value) if isinstance(value, datetime) else value)
        for key, value in fields.items()
    }
    conn.execute(update(users).where(users.c.pk == user_pk).values(**values))


# -- links ---------------------------------------------------------------------------------------


@dataclass
class Link:
    """An emailed single-use link, as stored (never the token itself)."""

    pk: int
    user_pk: int
    purpose: str
    created: datetime
    expires: datetime
    used: datetime | None
    voided: datetime | None


def insert_link(
    conn: Connection,
    user_pk: int,
    purpose: str,
    token_hash: str,
    now: datetime,
    expires: datetime,
) -> None:
    """Store a new link."""
    conn.execute(
        insert(user_links),
        {
            "user_pk": user_pk,
            "purpose": purpose,
            "token_hash": token_hash,
            "created": to_db(now),
            "expires": to_db(expires),
        },
    )


_VOID_LINKS_STATEMENT = (
    update(user_links)
    .where(
        user_links.c.user_pk == bindparam("link_user_pk"),
        user_links.c.used.is_(None),
        user_links.c.voided.is_(None),
    )
    .values(voided=bindparam("now"))
)
_VOID_LINKS = PreparedStatement(_VOID_LINKS_STATEMENT)
_VOID_LINKS_OF_PURPOSE = PreparedStatement(
    _VOID_LINKS_STATEMENT.where(user_links.c.purpose == bindparam("link_purpose"))
)


def void_links(conn: Connection, user_pk: int, now: datetime, purpose: str | None = None) -> int:
    """Void every live link of a user (of one purpose, or all); return how many."""
    if purpose is None:
        return _VOID_LINKS.execute(conn, {"link_user_pk": user_pk, "now": to_db(now)})
    return _VOID_LINKS_OF_PURPOSE.execute(
        conn, {"link_user_pk": user_pk, "now": to_db(now), "link_purpose": purpose}
    )


def find_link(conn: Connection, token_hash: str) -> Link | None:
    """Return the link with this token digest, dead or alive."""
    row = conn.execute(select(user_links).where(user_links.c.token_hash == token_hash)).first()
    if row is None:
        return None
    return Link(
        pk=row.pk,
        user_pk=row.user_pk,
        purpose=row.purpose,
        created=from_db(row.created),
        expires=from_db(row.expires),
        used=from_db(row.used),
        voided=from_db(row.voided),
    )


def use_link(conn: Connection, link_pk: int, now: datetime) -> bool:
    """Mark a live link used; False when another request used or voided it first."""
    result = conn.execute(
        update(user_links)
        .where(
            user_links.c.pk == link_pk,
            user_links.c.used.is_(None),
            user_links.c.voided.is_(None),
        )
        .values(used=to_db(now))
    )
    return result.rowcount == 1


def latest_invitations(
    conn: Connection, user_pks: list[int]
) -> dict[int, tuple[datetime, datetime]]:
    """Return (sent, expires) of each user's latest invitation link."""
    if not user_pks:
        return {}
    rows = conn.execute(
        select(user_links.c.user_pk, user_links.c.created, user_links.c.expires)
        .where(user_links.c.user_pk.in_(user_pks), user_links.c.purpose == "invitation")
        .order_by(user_links.c.user_pk, user_links.c.pk)
    ).all()
    latest: dict[int, tuple[datetime, datetime]] = {}
    for user_pk, created, expires in rows:
        latest[user_pk] = (from_db(created), from_db(expires))
    return latest


# -- sessions ------------------------------------------------------------------------------------


@dataclass
class SessionRow:
    """A login session (never its token)."""

    id: str
    user_pk: int
    created: datetime
    last_seen: datetime
    client_address: str | None
    user_agent: str | None


def _session(row: Any) -> SessionRow:
    return SessionRow(
        id=row.id,
        user_pk=row.user_pk,
        created=from_db(row.created),
        last_seen=from_db(row.last_seen),
        client_address=row.client_address,
        user_agent=row.user_agent,
    )


def insert_session(
    conn: Connection,
    session_id: str,
    user_pk: int,
    token_hash: str,
    now: datetime,
    client_address: str | None,
    user_agent: str | None,
) -> None:
    """Store a new session."""
    conn.execute(
        insert(sessions),
        {
            "id": session_id,
            "user_pk": user_pk,
            "token_hash": token_hash,
            "created": to_db(now),
            "last_seen": to_db(now),
            "client_address": client_address,
            "user_agent": (user_agent or "")[:512] or None,
        },
    )


def find_session(conn: Connection, token_hash: str) -> SessionRow | None:
    """Return the session with this token digest."""
    row = conn.execute(select(sessions).where(sessions.c.token_hash == token_hash)).first()
    return _session(row) if row else None


def touch_session(conn: Connection, session_id: str, now: datetime) -> None:
    """Record activity on a session."""
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen=to_db(now)))


def list_sessions(conn: Connection, user_pk: int) -> list[SessionRow]:
    """Return a user's sessions, newest first."""
    rows = conn.execute(
        select(sessions).where(sessions.c.user_pk == user_pk).order_by(sessions.c.pk.desc())
    ).all()
    return [_session(row) for row in rows]


def delete_session(conn: Connection, session_id: str, user_pk: int | None = None) -> bool:
    """End one session (of this user, when given); return whether it existed."""
    condition = sessions.c.id == session_id
    if user_pk is not None:
        condition = and_(condition, sessions.c.user_pk == user_pk)
    return conn.execute(delete(sessions).where(condition)).rowcount == 1


_DELETE_SESSIONS = PreparedStatement(
    delete(sessions).where(sessions.c.user_pk == bindparam("user_pk"))
)


def delete_sessions(conn: Connection, user_pk: int, keep: str | None = None) -> int:
    """End every session of a user (but ``keep``); return how many."""
    if keep is None:
        return _DELETE_SESSIONS.execute(conn, {"user_pk": user_pk})
    condition = and_(sessions.c.user_pk == user_pk, sessions.c.id != keep)
    return conn.execute(delete(sessions).where(condition)).rowcount


def delete_stale_sessions(conn: Connection, idle_before: datetime, created_before: datetime) -> int:
    """End sessions idle or old past the limits; return how many."""
    return conn.execute(
        delete(sessions).where(
            or_(
                sessions.c.last_seen < to_db(idle_before),
                sessions.c.created < to_db(created_before),
            )
        )
    ).rowcount


# -- role grants ---------------------------------------------------------------------------------


@dataclass
class RoleGrant:
    """A temporary role."""

    user_pk: int
    role: str
    previous_role: str
    expires: datetime
    granted_by: str | None


def put_grant(conn: Connection, grant: RoleGrant) -> None:
    """Record (or replace) a user's temporary role."""
    conn.execute(delete(role_grants).where(role_grants.c.user_pk == grant.user_pk))
    conn.execute(
        insert(role_grants),
        {
            "user_pk": grant.user_pk,
            "role": grant.role,
            "previous_role": grant.previous_role,
            "expires": to_db(grant.expires),
            "granted_by": grant.granted_by,
        },
    )


def get_grant(conn: Connection, user_pk: int) -> RoleGrant | None:
    """Return a user's temporary role, if any."""
    row = conn.execute(select(role_grants).where(role_grants.c.user_pk == user_pk)).first()
    if row is None:
        return None
    return RoleGrant(row.user_pk, row.role, row.previous_role, from_db(row.expires), row.granted_by)


def expired_grants(conn: Connection, now: datetime) -> list[RoleGrant]:
    """Return the temporary roles whose time is up."""
    rows = conn.execute(select(role_grants).where(role_grants.c.expires <= to_db(now))).all()
    return [
        RoleGrant(row.user_pk, row.role, row.previous_role, from_db(row.expires), row.granted_by)
        for row in rows
    ]


def delete_grant(conn: Connection, user_pk: int) -> None:
    """Forget a user's temporary role."""
    conn.execute(delete(role_grants).where(role_grants.c.user_pk == user_pk))


# -- rate limits ---------------------------------------------------------------------------------


def count_hit(conn: Connection, key: str, window_start: datetime) -> int:
    """Count one hit on ``key`` in the window; return the hits so far, this one included."""
    statement = conflict_insert(conn.dialect.name, rate_limits).values(
        key=key, window_start=to_db(window_start), count=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=[rate_limits.c.key, rate_limits.c.window_start],
        set_={"count": rate_limits.c.count + 1},
    )
    conn.execute(statement)
    return int(
        conn.execute(
            select(rate_limits.c.count).where(
                rate_limits.c.key == key, rate_limits.c.window_start == to_db(window_start)
            )
        ).scalar_one()
    )


def hits(conn: Connection, key: str, window_start: datetime) -> int:
    """Return the hits counted on ``key`` in the window."""
    value = conn.execute(
        select(func.coalesce(func.sum(rate_limits.c.count), 0)).where(
            rate_limits.c.key == key, rate_limits.c.window_start == to_db(window_start)
        )
    ).scalar_one()
    return int(value)


def forget_old_hits(conn: Connection, before: datetime) -> None:
    """Drop counters of windows that ended."""
    conn.execute(delete(rate_limits).where(rate_limits.c.window_start < to_db(before)))
