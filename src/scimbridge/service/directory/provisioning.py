"""SCIM provisioning use cases: create, read, replace, patch, delete and search resources.

Each method is one transaction. Group membership is changed row by row, so a member PATCH
costs what it names, never what the group holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Protocol

from scim2_models import Context
from scim2_models import InvalidPathException
from scim2_models import InvalidValueException
from scim2_models import MutabilityException
from scim2_models import NoTargetException
from scim2_models import NotFoundException
from scim2_models import PatchOp
from scim2_models import PatchOperation
from scim2_models import PreconditionFailedException
from scim2_models import ScimFilter
from scim2_models import SearchRequest
from scim2_models import TooManyException
from scim2_models import UniquenessException
from scim2_models.path import ValuePath

from ...domain.emails import mail_address
from ...domain.lifecycle import Actor
from ...domain.lifecycle import PasswordRejected
from ...domain.lifecycle import RequestInfo
from ...domain.lifecycle import UserStatus
from ...domain.paging import FIRST_PAGE
from ...domain.paging import PagePosition
from ...domain.resources import Group
from ...domain.resources import GroupMember
from ...domain.resources import GroupResource
from ...domain.resources import PatchTolerance
from ...domain.resources import StoredResource
from ...domain.resources import UserResource
from ...store import lifecycle as accounts
from ...store import resources as store
from ...store import tombstones
from ...store.database import Database
from ...store.database import Transaction
from ...store.filters import compile_filter
from ...store.filters import compile_sort_key
from ...store.filters import compile_value_filter
from ...store.filters import user_name_eq_key
from ...store.keyset import SortKey
from ...store.lifecycle import Account
from ...store.member_json import members_json
from ...store.resources import ConcurrentUpdate
from ...store.resources import DuplicateKey
from ...store.resources import UserColumns
from ..ldap.sync import MemberDelta
from . import audit
from .create_fast import PlannedUser
from .lifecycle import UserDirectory
from .lifecycle import primary_email_in
from .mapping import document
from .mapping import group_columns
from .mapping import group_model
from .mapping import group_name_key
from .mapping import user_columns
from .mapping import user_model
from .mapping import user_name_key
from .passwords import hash_password
from .patch_fast import FastPlan
from .patch_fast import apply_fast
from .patch_fast import empty_user_name_error
from .patch_fast import plan_body
from .patch_fast import plan_patch

MAX_START_INDEX = 2**31
"""Largest ``startIndex`` a search honours; a larger one is treated as this (an empty page)."""


@dataclass
class Page:
    """One page of search results."""

    total: int
    start_index: int
    resources: list[StoredResource]


@dataclass
class CursorPage:
    """One page of a cursor-paged search (RFC 9865)."""

    total: int
    resources: list[StoredResource]
    next: PagePosition | None
    """Where the next page starts; None on the last page."""
    previous: PagePosition | None
    """Where the previous page ends; None on the first page."""


def _now() -> datetime:
    return datetime.now(UTC)


def check_if_match(record: StoredResource, if_match: str | None) -> None:
    """Refuse a write whose ``If-Match`` names another version (RFC 7644 §3.14)."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return
    # Weak comparison: a client may send the tag with or without the W/ prefix.
    current = record.etag.removeprefix("W/")
    if not any(tag.removeprefix("W/") == current for tag in tags):
        raise PreconditionFailedException(
            detail=f"resource version is {record.etag}, not {if_match}"
        )


class RequestBookkeeping(Protocol):
    """What a request records about itself, written in the transaction of its change."""

    def write(self, conn: Transaction) -> None:
        """Write the records, inside the change's transaction."""

    def committed(self) -> None:
        """Take note that the transaction carrying them has committed."""


@dataclass(frozen=True)
class Caller:
    """Who sends a SCIM request and from where: the audit trail's actor and request."""

    actor: Actor = field(default_factory=lambda: Actor("scim", None, "scim"))
    request: RequestInfo | None = None
    bookkeeping: RequestBookkeeping | None = None
    """Rides along with the change, sparing the request a transaction of its own."""


# Audit events name at most this many member ids per operation; a 10,000-member PATCH is
# recorded by its counts rather than by a 10,000-entry event.
_AUDITED_MEMBER_IDS = 50


class ProvisioningService:
    """Users and groups as SCIM clients see them.

    Lifecycle rules apply to SCIM writes as to any other: ``active=false`` suspends the user
    (sessions end, links are voided), ``active=true`` reactivates, a delete leaves an audit
    tombstone, and every write is audited with the token that made it.
    """

    def __init__(
        self,
        database: Database,
        directory: UserDirectory,
        *,
        max_patch_members: int = 10_000,
        invite_on_create: bool = False,
        fast_patch: bool = True,
        fast_create: bool = True,
        json_members: bool = True,
    ) -> None:
        """Serve SCIM writes on ``database``.

        :param fast_patch: apply the PATCH shapes IdPs send on the stored document
            (patch_fast); off, every user PATCH goes through scim2-models (the differential
            test compares both).
        :param fast_create: read the user bodies IdPs create with into their document
            (create_fast); off, every user create goes through scim2-models (the
            differential test compares both).
        :param json_members: let :meth:`get` read a group's members as JSON text when asked
            to (``member_refs``); off, they load as objects (the differential test compares
            both).
        """
        self.database = database
        self.directory = directory
        self.max_patch_members = max_patch_members
        self.invite_on_create = invite_on_create
        self.fast_patch = fast_patch
        self.fast_create = fast_create
        self.json_members = json_members

    @contextmanager
    def _write(self, caller: Caller | None) -> Iterator[Transaction]:
        """Open the write transaction of a change, carrying the caller's bookkeeping."""
        bookkeeping = caller.bookkeeping if caller is not None else None
        with self.database.write() as conn:
            yield conn
            if bookkeeping is not None:
                bookkeeping.write(conn)
        if bookkeeping is not None:
            bookkeeping.committed()

    # -- reads ------------------------------------------------------------------------------

    def get(
        self,
        resource_type: str,
        resource_id: str,
        *,
        memberships: bool = True,
        member_refs: Mapping[str, str] | None = None,
    ) -> StoredResource:
        """Return one resource; ``memberships`` loads a user's groups or a group's members.

        :param member_refs: per member type, the URL prefix of a member's ``$ref``: given, a
            group's members come as the JSON text of their SCIM array (``members_json``),
            which costs a fraction of loading them one object at a time.
        """
        with self.database.read() as conn:
            if not memberships:
                return self._require(conn, resource_type, resource_id)
            if resource_type == "Group" and member_refs is not None and self.json_members:
                record = self._require(conn, resource_type, resource_id)
                record.members_json = members_json(conn, record.pk, member_refs)
                return record
            found = store.get_with_memberships(conn, resource_type, resource_id)
            if found is None:
                raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
            if resource_type == "User":
                _load_invitations(conn, [found])
            return found

    def search(
        self,
        resource_type: str,
        request: SearchRequest[Any],
        *,
        default_count: int,
        max_count: int,
        memberships: bool = True,
        strict: bool = True,
    ) -> Page:
        """Return one page of the resources a search request selects, in a stable order."""
        where, sort = self._where_and_sort(resource_type, request, strict)
        order_by = []
        if sort is not None:
            key = sort.expr
            order_by.append(key.desc().nulls_last() if sort.descending else key.asc().nulls_last())
        # Past every row a page is empty anyway; the bound keeps OFFSET a 64-bit integer.
        start_index = min(max(request.start_index or 1, 1), MAX_START_INDEX)
        count = min(request.count if request.count is not None else default_count, max_count)
        with self.database.read() as conn:
            total, records = store.search(
                conn, resource_type, where, order_by, start_index - 1, max(count, 0)
            )
            if memberships:
                self._load_memberships(conn, records)
        return Page(total, start_index, records)

    def search_user_name(self, user_name: str, *, default_count: int, max_count: int) -> Page:
        """Return the page of ``filter=userName eq "<user_name>"`` alone, its filter unparsed.

        The same page :meth:`search` returns for that request: first page, default count,
        store order, groups loaded.
        """
        key = user_name_eq_key(user_name)
        count = min(default_count, max_count)
        with self.database.read() as conn:
            total, records = store.search_user_name(conn, key, max(count, 0))
            self._load_memberships(conn, records)
        return Page(total, 1, records)

    def search_from(
        self,
        resource_type: str,
        request: SearchRequest[Any],
        position: PagePosition,
        count: int,
        *,
        memberships: bool = True,
    ) -> CursorPage:
        """Return the page of a search that starts at ``position`` (RFC 9865 cursor paging).

        Keyset paging in SQL over the sort key and the store key: a walk page by page meets
        every resource that exists throughout exactly once, while others come and go.
        """
        where, sort = self._where_and_sort(resource_type, request, strict=True)
        with self.database.read() as conn:
            total, rows = store.search_after(conn, resource_type, where, sort, position, count + 1)
            more = len(rows) > count
            rows = rows[:count]
            if position.backward:
                rows.reverse()
            records = [record for record, _ in rows]
            if memberships:
                self._load_memberships(conn, records)
        if not rows:
            # Nothing from here on; going back, everything lies ahead: restart from the top.
            return CursorPage(total, [], FIRST_PAGE if position.backward else None, None)
        first = PagePosition(rows[0][1], rows[0][0].pk, backward=True)
        last = PagePosition(rows[-1][1], rows[-1][0].pk)
        if position.backward:
            return CursorPage(total, records, last, first if more else None)
        return CursorPage(total, records, last if more else None, None if position.start else first)

    def _where_and_sort(
        self, resource_type: str, request: SearchRequest[Any], strict: bool
    ) -> tuple[Any, SortKey | None]:
        """Compile a search's filter and ``sortBy`` to SQL."""
        dialect = self.database.dialect
        where = (
            compile_filter(request.filter, resource_type, dialect, strict=strict)
            if request.filter is not None
            else None
        )
        model = UserResource if resource_type == "User" else GroupResource
        binding = request.sort_binding(model)
        if binding is None:
            return where, None
        key = compile_sort_key(binding, resource_type, dialect)
        if key is None:
            return where, None
        return where, SortKey(key, str(request.sort_order or "ascending") == "descending")

    # -- users ------------------------------------------------------------------------------

    def _deliver_password(
        self, conn: Transaction, user_id: str, password: str, now: datetime
    ) -> None:
        """Hand a SCIM ``password`` to a directory that takes clear passwords (400 if refused)."""
        try:
            self.directory.passwords.deliver(conn, user_id, password, now)
        except PasswordRejected as exc:
            raise _scim_password_refusal(exc) from None

    def create_user(self, user: UserResource, caller: Caller | None = None) -> StoredResource:
        """Create a user from its validated model; 409 uniqueness when the userName is taken.

        With ``invite_on_create``, a user sent without a password and with an email address is
        ``invited`` and gets an invitation to set a local password.
        """
        if user.active is None:
            user.active = True
        # Everything but the statements is computed before the write transaction: the
        # database has one writer at a time, and model work would hold it up.
        return self._create_user(_PreparedUser.of(user), caller or Caller())

    def create_user_document(
        self, planned: PlannedUser, caller: Caller | None = None
    ) -> StoredResource:
        """Create a user from a body create_fast read (as :meth:`create_user` would)."""
        return self._create_user(_PreparedUser.of_planned(planned), caller or Caller())

    def _create_user(self, prepared: _PreparedUser, caller: Caller) -> StoredResource:
        """Store a new user, queue its directory sync, invite it if due, audit it."""
        active = prepared.doc.get("active") is not False
        invite = (
            self.invite_on_create
            and prepared.password_hash is None
            and active
            and mail_address(prepared.doc.get("emails") or []) is not None
        )
        status = UserStatus.INVITED if invite else UserStatus.ACTIVE
        if not active:
            status = UserStatus.SUSPENDED
        changes = audit.creation_changes(status.value, prepared.doc)
        user_name = prepared.columns.user_name
        now = _now()
        with self._write(caller) as conn:
            try:
                record = store.insert_user(
                    conn,
                    str(uuid.uuid4()),
                    prepared.columns,
                    prepared.doc,
                    prepared.password_hash,
                    now,
                    status=status,
                )
            except DuplicateKey:
                raise UniquenessException(
                    detail=f"userName {user_name!r} is already taken"
                ) from None
            if prepared.password is not None:
                self._deliver_password(conn, record.id, prepared.password, now)
            self.directory.ldap_sync.queue_user_sync(conn, record.id)
            if invite:
                account = accounts.account_by_pk(conn, record.pk)
                assert account is not None
                self.directory.issue_invitation(conn, account, now, caller.actor)
            audit.record(
                conn,
                caller.actor,
                "user.created",
                target_type="User",
                target_id=record.id,
                target_name=user_name,
                changes=changes,
                request=caller.request,
                now=now,
            )
            record.memberships = []
            return record

    def replace_user(
        self,
        resource_id: str,
        user: UserResource,
        if_match: str | None = None,
        caller: Caller | None = None,
        tolerance: PatchTolerance | None = None,
    ) -> StoredResource:
        """Replace a user's attributes (PUT); ``tolerance`` decides which emails it may add."""
        with self._write(caller) as conn:
            record = self._require(conn, "User", resource_id, for_update=True)
            check_if_match(record, if_match)
            previous = user_model(record)
            user.replace(previous)
            _admit_new_emails(tolerance, _email_values(previous), user)
            try:
                prepared = _PreparedUser.of(user)
                record = self._write_prepared(conn, record, prepared, caller or Caller())
            except ConcurrentUpdate:
                raise PreconditionFailedException(detail="the user changed meanwhile") from None
            self._load_memberships(conn, [record])
            return record

    def patch_user_request(
        self,
        resource_id: str,
        body: dict[str, Any],
        if_match: str | None = None,
        tolerance: PatchTolerance | None = None,
        caller: Caller | None = None,
    ) -> StoredResource:
        """Apply a PATCH request body (normalised by the client's profile) to a user.

        A body in the shapes patch_fast knows skips scim2-models' PatchOp validation (it
        accepts only what that validation accepts); any other body is validated here, with
        its errors, and applied by patch_user.
        """
        plan = plan_body(body) if self.fast_patch else None
        if plan is None:
            return self.patch_user(
                resource_id, _validated_patch(body, tolerance), if_match, tolerance, caller
            )
        return self._patch_user(resource_id, _UserPatch(plan, body), if_match, tolerance, caller)

    def patch_user(
        self,
        resource_id: str,
        patch: PatchOp[Any],
        if_match: str | None = None,
        tolerance: PatchTolerance | None = None,
        caller: Caller | None = None,
    ) -> StoredResource:
        """Apply a validated PATCH to a user (see _patch_user)."""
        plan = plan_patch(patch) if self.fast_patch else None
        return self._patch_user(
            resource_id, _UserPatch(plan, None, patch), if_match, tolerance, caller
        )

    def _patch_user(
        self,
        resource_id: str,
        patch: _UserPatch,
        if_match: str | None,
        tolerance: PatchTolerance | None,
        caller: Caller | None,
    ) -> StoredResource:
        """Apply a PATCH to a user; a PATCH that changes nothing keeps the version.

        The PATCH is applied to the version read, outside the write transaction, and written
        only if that version is still current (the UPDATE checks it): the costly model work
        then runs beside other writers instead of holding the database's single writer. A
        write that lost the race is redone on the new version; with If-Match it gets 412.
        After a few lost races the PATCH is applied inside the write transaction, which
        always wins: a user under heavy concurrent change is never refused.
        """
        caller = caller or Caller()
        for _ in range(_OPTIMISTIC_ATTEMPTS):
            with self.database.read() as conn:
                record = self._require(conn, "User", resource_id)
                # A user PATCH never changes memberships: read them with the user, outside
                # the write transaction.
                self._load_memberships(conn, [record])
            check_if_match(record, if_match)
            prepared = self._patched(record, patch, tolerance)
            if prepared is None:
                return record
            # The audit diff of the version read, compared before the writer is taken.
            changes = audit.update_changes(record.doc, prepared.doc)
            try:
                with self._write(caller) as conn:
                    saved = self._write_prepared(conn, record, prepared, caller, changes)
            except ConcurrentUpdate:
                if if_match is not None:
                    raise PreconditionFailedException(detail="the user changed meanwhile") from None
            else:
                saved.memberships = record.memberships
                if saved.status == UserStatus.INVITED:
                    with self.database.read() as conn:
                        _load_invitations(conn, [saved])
                return saved
        with self._write(caller) as conn:
            record = self._require(conn, "User", resource_id, for_update=True)
            check_if_match(record, if_match)
            prepared = self._patched(record, patch, tolerance)
            if prepared is not None:
                record = self._write_prepared(conn, record, prepared, caller)
            self._load_memberships(conn, [record])
            return record

    def _patched(
        self, record: StoredResource, patch: _UserPatch, tolerance: PatchTolerance | None
    ) -> _PreparedUser | None:
        """Apply a PATCH to a user read; return what to store, or None when nothing changed.

        The shapes patch_fast knows are applied on the document; any other PATCH goes
        through scim2-models' User model, the reference behaviour.
        """
        if patch.plan is not None:
            fast = apply_fast(record.doc, patch.plan, tolerance)
            if fast is not None:
                return _PreparedUser.of_document(fast.doc) if fast.changed else None
        user = user_model(record)
        if not _apply_patch(patch.validated(tolerance), user, tolerance):
            return None
        return _PreparedUser.of(user)

    def _write_prepared(
        self,
        conn: Transaction,
        record: StoredResource,
        prepared: _PreparedUser,
        caller: Caller,
        changes: audit.SanitizedChanges | None = None,
    ) -> StoredResource:
        """Write the prepared new version of a user; ConcurrentUpdate if ``record`` is stale.

        ``changes`` are the audit changes from ``record`` to ``prepared`` when the caller
        computed them before the transaction (see audit.update_changes).
        """
        user_name = prepared.columns.user_name
        becomes_inactive = prepared.doc.get("active") is False
        now = _now()
        was_active = record.doc.get("active", True) is not False
        before = record.doc
        password_hash = prepared.password_hash
        suspends = was_active and becomes_inactive
        try:
            saved = store.update_user(
                conn,
                record,
                prepared.columns,
                prepared.doc,
                password_hash,
                now,
                status=UserStatus.SUSPENDED.value if suspends else None,
            )
        except DuplicateKey:
            raise UniquenessException(detail=f"userName {user_name!r} is already taken") from None
        if changes is None:
            changes = audit.update_changes(before, saved.doc)
        if password_hash is not None:
            changes["password"] = "set"
            if prepared.password is not None:
                self._deliver_password(conn, saved.id, prepared.password, now)
        if before.get("emails") != saved.doc.get("emails"):
            # Same emails, same address: spares validating every address twice per write.
            self.directory.notify_email_change(
                conn,
                saved.id,
                primary_email_in(before),
                primary_email_in(saved.doc),
                saved.doc.get("displayName") or user_name,
                now,
            )
        # SCIM active is the suspension switch: both ways go through the lifecycle rules.
        if suspends:
            # One event tells the whole write: the suspension and what else changed with it.
            self.directory.on_suspended(
                conn,
                saved.pk,
                caller.actor,
                caller.request,
                now,
                account=_account_of(record),
                changes=changes,
                status_written=True,
            )
            saved.status = UserStatus.SUSPENDED
            self.directory.ldap_sync.queue_user_sync(conn, saved.id)
            return saved
        audit.record(
            conn,
            caller.actor,
            "user.updated",
            target_type="User",
            target_id=saved.id,
            target_name=user_name,
            changes=changes,
            request=caller.request,
            now=now,
        )
        if not was_active and not becomes_inactive:
            self.directory.on_reactivated(conn, saved.pk, caller.actor, caller.request, now)
            refreshed = store.get(conn, "User", saved.id)
            saved.status = refreshed.status if refreshed else saved.status
        self.directory.ldap_sync.queue_user_sync(conn, saved.id)
        return saved

    # -- groups -----------------------------------------------------------------------------

    def create_group(self, group: GroupResource, caller: Caller | None = None) -> StoredResource:
        """Create a group with its initial members; 409 when the displayName is taken."""
        caller = caller or Caller()
        now = _now()
        members = list(group.members or [])
        group.members = None
        with self._write(caller) as conn:
            wanted = self._resolve_members(conn, members)
            try:
                record = store.insert_group(
                    conn, str(uuid.uuid4()), group_columns(group), document(group), now
                )
            except DuplicateKey:
                raise UniquenessException(
                    detail=f"group {group.display_name!r} already exists"
                ) from None
            store.add_members(conn, record.pk, wanted, _displays(members))
            # The new entry gets every member the group has when the job runs.
            self.directory.ldap_sync.queue_group_sync(conn, record.id)
            self._audit_group(
                conn,
                caller,
                "group.created",
                record.id,
                group.display_name,
                {"displayName": group.display_name, **_members_audit("add", list(wanted))},
                now,
            )
            self._load_memberships(conn, [record])
            return record

    def replace_group(
        self,
        resource_id: str,
        group: GroupResource,
        if_match: str | None = None,
        caller: Caller | None = None,
    ) -> StoredResource:
        """Replace a group (PUT): its attributes and its whole member list."""
        members = list(group.members or [])
        group.members = None
        with self._write(caller) as conn:
            record = self._require(conn, "Group", resource_id, for_update=True)
            check_if_match(record, if_match)
            group.replace(group_model(record))
            wanted = self._resolve_members(conn, members)
            before = record.doc
            ldap_sync = self.directory.ldap_sync
            previous = ldap_sync.current_members(conn, record.pk)
            store.remove_members(conn, record.pk, None)
            store.add_members(conn, record.pk, wanted, _displays(members))
            record = self._write_group(conn, record, group)
            ldap_sync.queue_group_sync(conn, record.id)
            ldap_sync.queue_membership_change(
                conn,
                record.id,
                [member_id for member_id in wanted if member_id not in previous],
                [member_id for member_id in previous if member_id not in wanted],
            )
            self._audit_group(
                conn,
                caller or Caller(),
                "group.replaced",
                record.id,
                group.display_name,
                {
                    **audit.document_changes(before, record.doc),
                    **_members_audit("replace", list(wanted)),
                },
                record.last_modified,
            )
            self._load_memberships(conn, [record])
            return record

    def patch_group(
        self,
        resource_id: str,
        patch: PatchOp[Any],
        if_match: str | None = None,
        tolerance: PatchTolerance | None = None,
        caller: Caller | None = None,
        *,
        memberships: bool = True,
    ) -> StoredResource:
        """Apply a PATCH to a group; member operations touch only the members they name."""
        operations = patch.operations or []
        # Split before the write transaction: it needs no database, and every other writer
        # waits while the transaction holds the writer lock (a hundred members: 0.13 ms).
        splits = [self._split_ahead(operation) for operation in operations]
        with self._write(caller) as conn:
            record = self._require(conn, "Group", resource_id, for_update=True)
            check_if_match(record, if_match)
            attribute_operations: list[PatchOperation[Any]] = []
            member_operations: list[dict[str, Any]] = []
            changed = False
            delta = MemberDelta()
            for operation, split in zip(operations, splits, strict=True):
                member_change, rest = split()
                if member_change is not None:
                    changed |= member_change(conn, record, delta)
                    member_operations.append(_operation_audit(operation))
                if rest is not None:
                    attribute_operations.append(rest)
            before = record.doc
            group: GroupResource | None = None
            if attribute_operations:
                model = group_model(record)
                attribute_patch = PatchOp[Group](operations=attribute_operations)
                if _apply_patch(attribute_patch, model, tolerance):
                    group = model
            if group is not None:
                record = self._write_group(conn, record, group)
                self.directory.ldap_sync.queue_group_sync(conn, record.id)
            elif changed:
                record = self._bump_group(conn, record)
            if delta:
                self.directory.ldap_sync.queue_member_delta(conn, record.id, delta)
            if group is not None or changed:
                changes = audit.document_changes(before, record.doc)
                if member_operations:
                    changes["members"] = member_operations
                self._audit_group(
                    conn,
                    caller or Caller(),
                    "group.updated",
                    record.id,
                    record.doc.get("displayName"),
                    changes,
                    record.last_modified,
                )
            if memberships:
                self._load_memberships(conn, [record])
            return record

    def _write_group(
        self, conn: Transaction, record: StoredResource, group: GroupResource
    ) -> StoredResource:
        group.members = None
        if not group.display_name:
            # A PATCH may leave it empty, which validation of a whole resource never sees.
            raise InvalidValueException(detail="displayName is required and must not be empty")
        try:
            return store.update_group(conn, record, group_columns(group), document(group), _now())
        except DuplicateKey:
            raise UniquenessException(
                detail=f"group {group.display_name!r} already exists"
            ) from None
        except ConcurrentUpdate:
            raise PreconditionFailedException(detail="the group changed meanwhile") from None

    def _audit_group(
        self,
        conn: Transaction,
        caller: Caller,
        action: str,
        group_id: str,
        name: str | None,
        changes: dict[str, Any],
        now: datetime,
    ) -> None:
        audit.record(
            conn,
            caller.actor,
            action,
            target_type="Group",
            target_id=group_id,
            target_name=name,
            changes=changes,
            request=caller.request,
            now=now,
        )

    def _bump_group(self, conn: Transaction, record: StoredResource) -> StoredResource:
        try:
            return store.update_group(conn, record, None, None, _now())
        except ConcurrentUpdate:
            raise PreconditionFailedException(detail="the group changed meanwhile") from None

    # Applies a member operation; notes what it changed in the MemberDelta for LDAP sync.
    _MemberChange = Callable[[Transaction, StoredResource, MemberDelta], bool]

    _Split = tuple[_MemberChange | None, PatchOperation[Any] | None]

    def _split_ahead(self, operation: PatchOperation[Any]) -> Callable[[], _Split]:
        """Split an operation now; return what gives the split, or raises its error, later.

        The error is raised where the split used to run, after the group was found and its
        ETag checked and after the operations before it: the same answer as before.
        """
        try:
            split = self._split_member_operation(operation)
        except Exception as exc:
            error = exc

            def refuse() -> ProvisioningService._Split:
                raise error

            return refuse
        return lambda: split

    def _split_member_operation(
        self, operation: PatchOperation[Any]
    ) -> tuple[_MemberChange | None, PatchOperation[Any] | None]:
        """Separate what an operation does to ``members`` from what it does to the rest."""
        op = operation.op.value
        path = operation.path
        if path is None:
            value = operation.value
            if not isinstance(value, dict):
                return None, operation
            member_key = next((key for key in value if key.lower() == "members"), None)
            if member_key is None:
                return None, operation
            rest = {key: item for key, item in value.items() if key != member_key}
            change = self._member_values_change(op, None, value[member_key])
            remaining = PatchOperation[Group](op=operation.op, value=rest) if rest else None
            return change, remaining
        attr, _, sub = path.attr.lower().partition(".")
        if attr == "members" and sub:
            # Members live in their own rows, outside the document the attribute operations
            # patch: a sub-attribute path would otherwise succeed without changing anything.
            if sub in {"value", "$ref", "type"}:
                raise MutabilityException(detail=f"members.{sub} is immutable")
            raise InvalidPathException(
                detail=f"{path} cannot be patched; remove the member and add it again"
            )
        if attr != "members":
            return None, operation
        node = path.ast
        if isinstance(node, ValuePath):
            return self._member_selection_change(op, path, node, operation.value), None
        return self._member_values_change(op, path, operation.value), None

    def _member_values_change(self, op: str, path: Any, value: Any) -> _MemberChange:
        """Add, replace or remove the members listed in ``value``."""
        if op == "remove" and value is None:

            def remove_all(conn: Transaction, record: StoredResource, delta: MemberDelta) -> bool:
                delta.remove(self.directory.ldap_sync.current_members(conn, record.pk))
                return store.remove_members(conn, record.pk, None) > 0

            return remove_all
        entries = value if isinstance(value, list) else [value]
        if len(entries) > self.max_patch_members:
            raise TooManyException(detail=f"at most {self.max_patch_members} members per operation")
        ids = [_member_id(entry) for entry in entries]
        if op == "remove":

            def remove(conn: Transaction, record: StoredResource, delta: MemberDelta) -> bool:
                delta.remove(ids)
                return store.remove_members(conn, record.pk, ids) > 0

            return remove
        displays = _entry_displays(entries)

        def add(conn: Transaction, record: StoredResource, delta: MemberDelta) -> bool:
            wanted = self._resolve_ids(conn, ids)
            removed = 0
            if op == "replace":
                previous = self.directory.ldap_sync.current_members(conn, record.pk)
                delta.remove(member_id for member_id in previous if member_id not in wanted)
                removed = store.remove_members(conn, record.pk, None)
            delta.add(wanted)
            return store.add_members(conn, record.pk, wanted, displays) > 0 or removed > 0

        return add

    def _member_selection_change(
        self, op: str, path: Any, node: ValuePath, value: Any
    ) -> _MemberChange:
        """Apply an operation on ``members[<filter>]``: remove, or replace the selection."""
        selection = ScimFilter[Group](f"{node.attr_path}[{node.val_filter}]")
        predicate = compile_value_filter(selection, node, "Group", self.database.dialect)

        def change(conn: Transaction, record: StoredResource, delta: MemberDelta) -> bool:
            matched = store.members_matching(conn, record.pk, predicate)
            if op == "remove":
                delta.remove(matched)
                return store.remove_members(conn, record.pk, matched) > 0
            if not matched:
                # RFC 7644 §3.5.2.3 and §3.12: a filter that yields no match is noTarget.
                raise NoTargetException(detail=f"{path} matches no member")
            entries = value if isinstance(value, list) else [value]
            entries = [entry for entry in entries if entry is not None]
            wanted = self._resolve_ids(conn, [_member_id(entry) for entry in entries])
            removed = store.remove_members(conn, record.pk, matched)
            added = store.add_members(conn, record.pk, wanted, _entry_displays(entries))
            delta.remove(matched)
            delta.add(wanted)
            return added > 0 or removed > 0

        return change

    def _resolve_members(self, conn: Transaction, members: list[GroupMember]) -> dict[str, str]:
        ids = [member.value for member in members if member.value]
        return self._resolve_ids(conn, ids)

    def _resolve_ids(self, conn: Transaction, ids: list[str]) -> dict[str, str]:
        """Map member ids to their resource type; refuse an id that names nothing."""
        found = store.resource_types_of(conn, ids)
        unknown = [member_id for member_id in ids if member_id not in found]
        if unknown:
            raise InvalidValueException(
                detail=f"members name unknown resources: {', '.join(sorted(set(unknown))[:5])}"
            )
        return {member_id: found[member_id] for member_id in ids}

    # -- both ---------------------------------------------------------------------------------

    def delete(
        self,
        resource_type: str,
        resource_id: str,
        if_match: str | None = None,
        caller: Caller | None = None,
    ) -> None:
        """Delete a user or group and the memberships naming it; audit keeps a tombstone."""
        caller = caller or Caller()
        now = _now()
        action = "user.deleted" if resource_type == "User" else "group.deleted"
        event = audit.event_columns(
            caller.actor, action, resource_type, resource_id, caller.request, now
        )
        with self._write(caller) as conn:
            if if_match is None:
                # Without a precondition there is nothing to compare: the row, its
                # memberships and its tombstone go in one statement where the database can.
                name = tombstones.delete_with_tombstone(conn, resource_type, resource_id, event)
                if name is None:
                    raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
            else:
                record = self._require(conn, resource_type, resource_id, for_update=True)
                check_if_match(record, if_match)
                store.delete_resource(conn, record)
                name = record.doc.get("userName") or record.doc.get("displayName")
                audit.record(
                    conn,
                    caller.actor,
                    action,
                    target_type=resource_type,
                    target_id=resource_id,
                    target_name=name,
                    changes=tombstones.tombstone_changes(resource_id, name),
                    request=caller.request,
                    now=now,
                )
            if resource_type == "User":
                self.directory.ldap_sync.queue_user_sync(conn, resource_id)
            else:
                self.directory.ldap_sync.queue_group_sync(conn, resource_id)

    def user_name_exists(self, user_name: str) -> bool:
        """Whether a userName is taken (case-insensitive)."""
        with self.database.read() as conn:
            return store.user_name_taken(conn, user_name_key(user_name))

    def group_name_exists(self, display_name: str) -> bool:
        """Whether a group displayName is taken (case-insensitive)."""
        with self.database.read() as conn:
            return store.group_name_taken(conn, group_name_key(display_name))

    def _require(
        self, conn: Transaction, resource_type: str, resource_id: str, *, for_update: bool = False
    ) -> StoredResource:
        record = store.get(conn, resource_type, resource_id, for_update=for_update)
        if record is None:
            raise NotFoundException(detail=f"{resource_type} {resource_id} not found")
        return record

    def _load_memberships(self, conn: Transaction, records: list[StoredResource]) -> None:
        if not records:
            return
        if records[0].resource_type == "User":
            store.load_groups_of(conn, records)
            _load_invitations(conn, records)
        else:
            store.load_members(conn, records)


@dataclass
class _UserPatch:
    """A user PATCH: the fast path's plan when it has one, and scim2-models' PatchOp."""

    plan: FastPlan | None
    body: dict[str, Any] | None
    """The normalised request body, validated only if the model path needs it."""
    patch: PatchOp[Any] | None = None

    def validated(self, tolerance: PatchTolerance | None) -> PatchOp[Any]:
        """Return the PatchOp, validating the body the first time."""
        if self.patch is None:
            assert self.body is not None
            self.patch = _validated_patch(self.body, tolerance)
        return self.patch


_USER_PATCH = PatchOp[UserResource]


def _validated_patch(body: dict[str, Any], tolerance: PatchTolerance | None) -> PatchOp[Any]:
    """Validate a user PATCH body under the client's policy (its errors are the client's)."""
    policy = tolerance.policy if tolerance is not None else None
    return _USER_PATCH.model_validate(
        body, scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=policy
    )


# How often a PATCH is redone outside the write transaction when another writer changed the
# user between its read and its write, before it is applied inside the transaction.
_OPTIMISTIC_ATTEMPTS = 3


@dataclass
class _PreparedUser:
    """What a user write stores, computed before the write transaction opens."""

    columns: UserColumns
    doc: dict[str, Any]
    password_hash: str | None
    password: str | None = field(default=None, repr=False)
    """The clear password, for a directory that takes only that (never stored)."""

    @classmethod
    def of(cls, user: UserResource) -> _PreparedUser:
        """Hash a new password (argon2 is slow on purpose) and build the row of ``user``."""
        if not (user.user_name or "").strip():
            # A PATCH may leave it empty, which validation of a whole resource never sees.
            raise empty_user_name_error()
        password = user.password or None
        password_hash = hash_password(password) if password else None
        if user.password is not None:
            # An assignment re-runs the model's validators (validate_assignment): only clear
            # a password that is there.
            user.password = None
        doc = document(user)
        return cls(user_columns(doc), doc, password_hash, password)

    @classmethod
    def of_planned(cls, planned: PlannedUser) -> _PreparedUser:
        """Hash the password of a body create_fast read, and build its row."""
        password = planned.password
        password_hash = hash_password(password) if password else None
        return cls(user_columns(planned.doc), planned.doc, password_hash, password)

    @classmethod
    def of_document(cls, doc: dict[str, Any]) -> _PreparedUser:
        """Build the row of a user document patched in place (it carries no password)."""
        if not str(doc.get("userName") or "").strip():
            raise empty_user_name_error()
        return cls(user_columns(doc), doc, None)


def _scim_password_refusal(exc: PasswordRejected) -> InvalidValueException:
    """Return the SCIM 400 of a password the directory's policy refused."""
    return InvalidValueException(detail=f"password: {exc}")


def _account_of(record: StoredResource) -> Account:
    """Return the lifecycle view of a user record just read (no password hash needed)."""
    return Account(
        pk=record.pk,
        id=record.id,
        user_name=str(record.doc.get("userName", "")),
        status=record.status or UserStatus.ACTIVE,
        password_hash=None,
        password_change_required=record.password_change_required,
        last_login=record.last_login,
        doc=record.doc,
    )


def _load_invitations(conn: Transaction, records: list[StoredResource]) -> None:
    """Attach the pending invitation's dates to invited users (shown by the lifecycle schema)."""
    invited = [record for record in records if record.status == UserStatus.INVITED]
    if not invited:
        return
    latest = accounts.latest_invitations(conn, [record.pk for record in invited])
    for record in invited:
        record.invitation = latest.get(record.pk)


def _apply_patch(patch: PatchOp[Any], resource: Any, tolerance: PatchTolerance | None) -> bool:
    """Apply a PATCH under the client's policy; retry a filter that matched nothing if allowed."""
    policy = tolerance.policy if tolerance else None
    # Only the email values are kept aside: a PATCH is on the hot path, a copy is not free.
    before = _email_values(resource) if tolerance is not None else None
    try:
        changed = patch.patch(resource, policy)
    except NoTargetException as exc:
        retry = tolerance.unmatched_filter_policy if tolerance else None
        if retry is None:
            raise
        tolerance.note_unmatched_filter(exc.detail)  # type: ignore[union-attr]
        changed = patch.patch(resource, retry)
    if changed and before is not None:
        _admit_new_emails(tolerance, before, resource)
    return changed


def _admit_new_emails(
    tolerance: PatchTolerance | None, before: list[str] | None, after: Any
) -> None:
    """Let the client's profile judge the email values a write adds to ``before`` (users)."""
    if tolerance is None or before is None:
        return
    kept = set(before)
    tolerance.admit_email_values(value for value in _email_values(after) if value not in kept)


def _email_values(resource: Any) -> list[str]:
    emails = getattr(resource, "emails", None) or []
    return [str(email.value) for email in emails if email.value is not None]


def _members_audit(op: str, member_ids: list[str]) -> dict[str, Any]:
    """Describe a member change for the audit trail, bounded in size."""
    if not member_ids:
        return {}
    return {
        "members": [
            {
                "op": op,
                "count": len(member_ids),
                "ids": member_ids[:_AUDITED_MEMBER_IDS],
            }
        ]
    }


def _operation_audit(operation: PatchOperation[Any]) -> dict[str, Any]:
    """Describe one member operation of a PATCH as the client sent it, bounded in size."""
    entry: dict[str, Any] = {"op": operation.op.value}
    if operation.path is not None:
        entry["path"] = str(operation.path)
    value = operation.value
    entries = value if isinstance(value, list) else [value] if value is not None else []
    ids = [
        item.get("value")
        for item in entries
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    ]
    if ids:
        entry["count"] = len(ids)
        entry["ids"] = ids[:_AUDITED_MEMBER_IDS]
    return entry


def _member_id(entry: Any) -> str:
    """Return the id a member value names (its first key spelled ``value`` in any case).

    Refuse anything else. Plain loops: a PATCH adding a hundred members runs this and
    :func:`_entry_displays` once per member, where a generator per entry cost more than the
    lookup itself.
    """
    if isinstance(entry, dict):
        for key, item in entry.items():
            if key.lower() == "value":
                if isinstance(item, str) and item:
                    return item
                break
    raise InvalidValueException(detail=f"member entries need a 'value' id, got {entry!r}")


def _displays(members: list[GroupMember]) -> dict[str, str]:
    return {member.value: member.display for member in members if member.value and member.display}


def _entry_displays(entries: list[Any]) -> dict[str, str]:
    """Return the display names that raw member entries carry, by member id.

    Keys compare in any letter case; of two spellings of one key, the last counts.
    """
    displays = {}
    for entry in entries:
        if isinstance(entry, dict):
            value = display = None
            for key, item in entry.items():
                name = str(key).lower()
                if name == "value":
                    value = item
                elif name == "display":
                    display = item
            if isinstance(display, str) and isinstance(value, str):
                displays[value] = display
    return displays
