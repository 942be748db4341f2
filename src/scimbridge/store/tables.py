"""Table definitions: the schema Alembic migrates and every query uses.

Filterable attributes live in indexed columns; the rest of a resource is one JSON document
(its SCIM representation without ``id``, ``meta``, ``groups``, ``members`` and ``password``).
Columns ending in ``_key`` hold the comparison form of a case-insensitive value (NFC,
lower-cased), so equality filters and uniqueness use a plain index on every database.
"""

from __future__ import annotations

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import Text
from sqlalchemy import false
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Document = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    # A monotonic integer key gives list endpoints a cheap, stable default order.
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("user_name", String(255), nullable=False),
    Column("user_name_key", String(255), nullable=False, unique=True),
    Column("external_id", String(255)),
    Column("display_name", String(255)),
    Column("display_name_key", String(255), index=True),
    Column("primary_email_key", String(320), index=True),
    Column("active", Boolean, nullable=False, default=True, index=True),
    Column("password_hash", String(255)),
    # Lifecycle: "invited", "active" or "suspended" (SCIM active=false), see domain.lifecycle.
    Column(
        "status", String(16), nullable=False, default="active", server_default="active", index=True
    ),
    Column(
        "password_change_required", Boolean, nullable=False, default=False, server_default=false()
    ),
    Column("last_login", Timestamp),
    Column("created", Timestamp, nullable=False, index=True),
    Column("last_modified", Timestamp, nullable=False, index=True),
    Column("version", Integer, nullable=False, default=1),
    Column("doc", Document, nullable=False),
    Index("ix_users_external_id", "external_id"),
)

user_emails = Table(
    "user_emails",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("value", String(320)),
    Column("value_key", String(320), index=True),
    Column("type", String(64)),
    Column("primary", Boolean, nullable=False, default=False),
    Column("display", String(255)),
)

groups = Table(
    "groups",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("display_name_key", String(255), nullable=False, unique=True),
    Column("external_id", String(255)),
    Column("created", Timestamp, nullable=False, index=True),
    Column("last_modified", Timestamp, nullable=False, index=True),
    Column("version", Integer, nullable=False, default=1),
    Column("doc", Document, nullable=False),
    Index("ix_groups_external_id", "external_id"),
)

# One row per direct membership. ``member_id`` names a user or a group (``member_type``), so a
# member PATCH is one insert or delete per value, whatever the size of the group.
group_members = Table(
    "group_members",
    metadata,
    Column("group_pk", Integer, ForeignKey("groups.pk", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(36), primary_key=True),
    Column("member_type", String(16), nullable=False),
    # The display name the client sent with the member, if any; shown back as it was given.
    Column("display", String(255)),
    Index("ix_group_members_member_id", "member_id"),
    # On SQLite the rows live in their primary key's b-tree: a group's members are read in
    # order without a table lookup per row (migration 0008).
    sqlite_with_rowid=False,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    # SHA-256 of the token: tokens are 256-bit random strings, so a fast hash is enough and
    # keeps the per-request check cheap.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, default="scim"),
    Column("profile", String(16), nullable=False, default="strict"),
    # Space-separated scopes of a System API token (``users:read users:write``…); SCIM
    # tokens have none.
    Column("scopes", Text),
    Column("created", Timestamp, nullable=False),
    Column("last_used", Timestamp),
    Column("note", Text),
)

# -- user lifecycle -----------------------------------------------------------------------------

# Lifecycle fields live beside the SCIM row of the user (users.status, etc.): they are filtered
# and shown in lists, and they change in the same transactions as the SCIM attributes.

# Single-use links sent by email: invitations and password resets. Only the SHA-256 of the
# token is kept; ``used`` or ``voided`` makes a link dead before it expires.
user_links = Table(
    "user_links",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", Timestamp, nullable=False),
    Column("expires", Timestamp, nullable=False),
    Column("used", Timestamp),
    Column("voided", Timestamp),
    Index("ix_user_links_user_pk_purpose", "user_pk", "purpose"),
)

# Server-side login sessions; the cookie holds a random token whose SHA-256 is ``token_hash``.
sessions = Table(
    "sessions",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
    Column("client_address", String(64)),
    Column("user_agent", String(512)),
    Index("ix_sessions_user_pk", "user_pk"),
)

# Temporary role grants: the user holds ``role`` until ``expires``, then goes back to
# ``previous_role``; the reversal is audited.
role_grants = Table(
    "role_grants",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("role", String(64), nullable=False),
    Column("previous_role", String(64), nullable=False),
    Column("expires", Timestamp, nullable=False, index=True),
    Column("granted_by", String(255)),
)

# Append-only record of every change. No foreign key: events outlive what they describe.
audit_events = Table(
    "audit_events",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False, index=True),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(64)),
    Column("actor_name", String(255)),
    Column("action", String(64), nullable=False, index=True),
    Column("target_type", String(16)),
    Column("target_id", String(64), index=True),
    # Indexed for the admin audit log, which finds a deleted user by the name they had.
    Column("target_name", String(255), index=True),
    Column("changes", Document),
    Column("request_id", String(64)),
    Column("client_address", String(64)),
)

# Fixed-window counters for rate limits, shared by every worker process.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("window_start", Timestamp, primary_key=True),
    Column("count", Integer, nullable=False),
)

# -- transactional outbox ------------------------------------------------------------------------

PENDING_CONDITION = "status IN ('queued', 'running', 'retrying')"
"""SQL of "the job is still to be applied", literal so that the database matches it with the
partial index below (a bound parameter would not)."""

# One row per side effect (an email to send, an LDAP change to apply), committed in the same
# transaction as the change that causes it. ``ordering_key`` (e.g. ``user:<id>``) keeps the
# jobs about one entry in commit order.
jobs = Table(
    "jobs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ordering_key", String(128), nullable=False),
    Column("payload", Document, nullable=False),
    Column("status", String(16), nullable=False, default="queued"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("available_at", Timestamp, nullable=False),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column("last_error", Text),
    Index("ix_jobs_status_available_at", "status", "available_at"),
    Index("ix_jobs_ordering_key_pk", "ordering_key", "pk"),
    # A lane claims the oldest due jobs of its kind: walking this index in primary-key order
    # stops after a batch, however many jobs of other kinds (or done ones) the table holds.
    Index(
        "ix_jobs_pending_kind_pk",
        "kind",
        "pk",
        sqlite_where=text(PENDING_CONDITION),
        postgresql_where=text(PENDING_CONDITION),
    ),
)

# Answers to System API requests that carried an Idempotency-Key, so that a retried request
# gets the first answer instead of acting twice. Keys are scoped by token.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("token_name", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Document),
    Column("headers", Document),
    Column("created", Timestamp, nullable=False, index=True),
)

# -- LDAP sync -------------------------------------------------------------------------------------

# What scimbridge last wrote to the directory for each user and group: the DN (so a rename or
# a delete finds the entry after the resource changed or is gone) and the managed attributes
# (so a change modifies only what differs, without reading the entry first).
ldap_entries = Table(
    "ldap_entries",
    metadata,
    Column("resource_type", String(16), primary_key=True),
    Column("resource_id", String(36), primary_key=True),
    Column("dn", Text, nullable=False),
    # The DN's comparison form (parsed, lower-cased): finds the other resource that holds
    # the same entry after a rename took its name.
    Column("dn_key", String(1024), nullable=False, index=True),
    Column("attributes", Document, nullable=False),
    # SHA-256 of the password value written, never the value itself.
    Column("password_digest", String(64)),
    # Groups: whether the entry holds the empty-group placeholder member; and, after a write
    # of the whole member list, the newest job of the group it already contains and when it
    # was written (pks alone could be reused once old jobs are purged).
    Column("placeholder", Boolean, nullable=False, default=False, server_default=false()),
    Column("members_as_of", Integer, nullable=False, default=0, server_default="0"),
    Column("members_written", Timestamp),
    Column("written", Timestamp, nullable=False),
)

# DNs scimbridge sent to the directory as an entry's new name (an add, a rename) whose outcome
# no record says yet. A row is committed before the operation goes out and deleted with the
# record that settles it; a name left here may hold the entry (the answer was lost, or the
# records of its batch were never committed), so later jobs look for the entry there too.
ldap_unconfirmed_dns = Table(
    "ldap_unconfirmed_dns",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("dn_key", String(1024), primary_key=True),
    Column("resource_type", String(16), nullable=False),
    Column("dn", Text, nullable=False),
    Column("sent", Timestamp, nullable=False),
)

# -- SCIM client deviations ---------------------------------------------------------------------

# How often each token's client sent each known deviation from RFC 7644 (see scim/quirks.py),
# counted once per request: ``tolerated`` under the token's profile, or ``refused`` by it.
# Admins read it to pick the right profile for a client; it is written only when a request
# met a deviation, so ordinary requests cost nothing.
client_deviations = Table(
    "client_deviations",
    metadata,
    Column("token_name", String(128), primary_key=True),
    Column("deviation", String(64), primary_key=True),
    Column("tolerated", Integer, nullable=False, default=0, server_default="0"),
    Column("refused", Integer, nullable=False, default=0, server_default="0"),
    Column("first_seen", Timestamp, nullable=False),
    # Not indexed: every deviating request moves it, and the table holds a few rows a token.
    Column("last_seen", Timestamp, nullable=False),
)
