"""The user lifecycle: the rules that SCIM, the admin UI, the API and self-service go through.

Every operation changes the user, writes an audit event and queues its side effects (emails
now, directory updates later) in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from scim2_models import Name
from scim2_models import PhoneNumber

from ...domain.emails import Email
from ...domain.emails import is_email_address
from ...domain.emails import mail_address
from ...domain.enterprise import EnterpriseUser
from ...domain.lifecycle import Actor
from ...domain.lifecycle import EmailTaken
from ...domain.lifecycle import InvalidEmail
from ...domain.lifecycle import InvalidTransition
from ...domain.lifecycle import LinkInvalid
from ...domain.lifecycle import LinkPurpose
from ...domain.lifecycle import LoginRefused
from ...domain.lifecycle import PasswordRejected
from ...domain.lifecycle import RateLimited
from ...domain.lifecycle import RequestInfo
from ...domain.lifecycle import UserNotFound
from ...domain.lifecycle import UserStatus
from ...domain.resources import StoredResource
from ...domain.resources import UserResource
from ...settings import Settings
from ...store import lifecycle as accounts
from ...store import resources as store
from ...store.database import Database
from ...store.database import Transaction
from ...store.lifecycle import Account
from ...store.lifecycle import SessionRow
from ...store.resources import DuplicateKey
from ..ldap.passwords import DirectoryPasswords
from ..ldap.sync import LdapSyncQueue
from ..mail.queue import queue_email
from . import audit
from .mapping import document
from .mapping import user_columns
from .mapping import user_model
from .mapping import user_name_key
from .passwords import generate_password
from .passwords import hash_password
from .passwords import policy_violations
from .passwords import verify_password
from .role_membership import RoleMembership
from .roles import Role
from .roles import RolesConfig


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Return a hash to verify against when the account does not exist.

    The answer then takes as long whether the account exists or not.
    """
    return hash_password(secrets.token_urlsafe(16))


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LOGIN_REFUSED = "the email address or the password is not right"
"""The one answer to every refused login (a suspended account's included)."""


def _login_failures_key(account: Account | None, login_key: str) -> str:
    """Return the lockout counter of a login: per account, or per unknown name.

    An unknown name is locked out after as many failures as an account, so the lockout does
    not tell which names exist. It is hashed: the rate table's keys are short.
    """
    if account is not None:
        return f"login-failures:{account.pk}"
    return f"login-failures:unknown:{hashlib.sha256(login_key.encode()).hexdigest()}"


@dataclass
class LoginResult:
    """A successful login."""

    session_token: str
    """The cookie value; shown to nobody else, stored hashed."""
    session_id: str
    user_id: str
    password_change_required: bool


@dataclass
class CreatedUser:
    """A user created directly by an admin."""

    user_id: str
    generated_password: str | None
    """The temporary password when scimbridge generated it (shown once), else None."""


@dataclass
class ProfileChanges:
    """What an admin may edit on a user; None leaves a field as it is ("" clears it)."""

    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    phone_numbers: list[dict[str, str]] | None = None
    title: str | None = None
    department: str | None = None


class UserDirectory:
    """The lifecycle operations on users."""

    def __init__(self, database: Database, settings: Settings, roles: RolesConfig) -> None:
        self.database = database
        self.settings = settings
        self.roles = roles
        self.ldap_sync = LdapSyncQueue.from_settings(settings.ldap)
        self.passwords = DirectoryPasswords(database, settings)
        self.role_membership = RoleMembership(roles, self.ldap_sync)

    # -- links ------------------------------------------------------------------------------

    def _link_url(self, purpose: LinkPurpose, token: str) -> str:
        base = self.settings.public_url.rstrip("/")
        if purpose is LinkPurpose.INVITATION:
            return f"{base}/invitation/{token}"
        return f"{base}/password/reset/{token}"

    def issue_invitation(
        self, conn: Transaction, account: Account, now: datetime, actor: Actor
    ) -> None:
        """Void earlier invitations, store a new link and queue the invitation email."""
        if account.email is None:
            raise InvalidTransition("the user has no email address to send an invitation to")
        ttl = timedelta(hours=self.settings.lifecycle.invitation_ttl_hours)
        self._issue_link(
            conn, account, LinkPurpose.INVITATION, ttl, "invitation", now, invited_by=actor.name
        )

    def _issue_reset(self, conn: Transaction, account: Account, now: datetime) -> None:
        if account.email is None:
            return
        ttl = timedelta(minutes=self.settings.lifecycle.reset_ttl_minutes)
        self._issue_link(conn, account, LinkPurpose.PASSWORD_RESET, ttl, "password_reset", now)

    def _issue_link(
        self,
        conn: Transaction,
        account: Account,
        purpose: LinkPurpose,
        ttl: timedelta,
        template: str,
        now: datetime,
        **context: Any,
    ) -> None:
        """Void the user's live links of ``purpose``, store a new one and queue its email."""
        assert account.email is not None
        accounts.void_links(conn, account.pk, now, purpose)
        token = secrets.token_urlsafe(32)
        expires = now + ttl
        accounts.insert_link(conn, account.pk, purpose, _digest(token), now, expires)
        queue_email(
            conn,
            template,
            account.email,
            {
                "name": account.display_name,
                "link": self._link_url(purpose, token),
                "expires": expires.isoformat(timespec="minutes"),
                **context,
            },
            now,
            ordering_key=f"user:{account.id}",
            secret_keys=("link",),
        )

    def _live_link(
        self, conn: Transaction, token: str, purpose: LinkPurpose
    ) -> tuple[Account, accounts.Link]:
        """Return the account of a usable link, and the link; else raise LinkInvalid."""
        link = accounts.find_link(conn, _digest(token))
        if (
            link is None
            or link.purpose != purpose
            or link.used is not None
            or link.voided is not None
            or link.expires <= _now()
        ):
            raise LinkInvalid("this link is no longer valid; ask for a new one")
        account = accounts.account_by_pk(conn, link.user_pk)
        if account is None or account.status == UserStatus.SUSPENDED:
            raise LinkInvalid("this link is no longer valid; ask for a new one")
        return account, link

    def check_link(self, token: str, purpose: LinkPurpose) -> Account:
        """Return the account a live link belongs to (to show its form), or raise LinkInvalid."""
        with self.database.read() as conn:
            return self._live_link(conn, token, purpose)[0]

    def _use_link(self, conn: Transaction, link: accounts.Link) -> None:
        """Spend a link read by :meth:`_live_link`; a concurrent request may have spent it."""
        if not accounts.use_link(conn, link.pk, _now()):
            raise LinkInvalid("this link is no longer valid; ask for a new one")

    # -- passwords ----------------------------------------------------------------------------

    def _checked_hash(self, account: Account, password: str) -> str:
        """Return the hash of a new password, or raise PasswordRejected with every reason."""
        reasons = self.password_policy_errors(password, account)
        if reasons:
            raise PasswordRejected(reasons)
        return hash_password(password)

    def password_policy_errors(self, password: str, account: Account) -> list[str]:
        """Return why ``password`` would be refused for this account (empty when it is fine)."""
        return policy_violations(
            password,
            min_length=self.settings.lifecycle.password_min_length,
            reject_common=self.settings.lifecycle.reject_common_passwords,
            personal=(account.user_name, account.email),
        )

    # -- creating users -------------------------------------------------------------------------

    def _insert_account(
        self,
        conn: Transaction,
        email: str,
        given_name: str | None,
        family_name: str | None,
        status: UserStatus,
        password_hash: str | None,
        password_change_required: bool,
        now: datetime,
    ) -> StoredResource:
        # SCIM clients may store any string as an email (domain.emails); people here give
        # the address their mail will go to.
        if not is_email_address(email):
            raise InvalidEmail(f"“{email}” is not a valid email address")
        try:
            user = UserResource(
                user_name=email,
                emails=[Email(value=email, primary=True, type="work")],
                active=True,
            )
        except ValidationError:
            raise InvalidEmail(f"“{email}” is not a valid email address") from None
        if given_name or family_name:
            user.name = Name(given_name=given_name or None, family_name=family_name or None)
            user.display_name = " ".join(p for p in (given_name, family_name) if p)
        if accounts.account_by_login(conn, user_name_key(email)) is not None:
            raise EmailTaken(f"{email} already belongs to a user")
        try:
            doc = document(user)
            return store.insert_user(
                conn,
                str(uuid.uuid4()),
                user_columns(doc),
                doc,
                password_hash,
                now,
                status=status,
                password_change_required=password_change_required,
            )
        except DuplicateKey:
            raise EmailTaken(f"{email} already belongs to a user") from None

    def invite(
        self,
        email: str,
        role: str,
        actor: Actor,
        request: RequestInfo | None = None,
        *,
        given_name: str | None = None,
        family_name: str | None = None,
    ) -> str:
        """Create an ``invited`` user with a role and email them an invitation; return the id.

        The name is optional: the invitee can give or correct it when accepting.
        """
        target_role = self.roles.get(role)
        now = _now()
        with self.database.write() as conn:
            record = self._insert_account(
                conn, email, given_name, family_name, UserStatus.INVITED, None, False, now
            )
            self.ldap_sync.queue_user_sync(conn, record.id)
            self.role_membership.assign(conn, record.id, target_role, now)
            account = accounts.account_by_pk(conn, record.pk)
            assert account is not None
            self.issue_invitation(conn, account, now, actor)
            self._audit(
                conn,
                actor,
                "user.invited",
                record.id,
                email,
                request=request,
                now=now,
                changes={
                    "email": email,
                    "name": record.doc.get("displayName"),
                    "role": target_role.name,
                },
            )
            return record.id

    def resend_invitation(
        self, user_id: str, actor: Actor, request: RequestInfo | None = None
    ) -> None:
        """Send a new invitation link; the previous one stops working."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            if account.status != UserStatus.INVITED:
                raise InvalidTransition("only a pending invitation can be resent")
            self.issue_invitation(conn, account, now, actor)
            self._audit(
                conn,
                actor,
                "user.invitation_resent",
                account.id,
                account.user_name,
                request=request,
                now=now,
            )

    def cancel_invitation(
        self, user_id: str, actor: Actor, request: RequestInfo | None = None
    ) -> None:
        """Remove a user whose invitation is still pending."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            if account.status != UserStatus.INVITED:
                raise InvalidTransition("only a pending invitation can be cancelled")
            store.delete_by_id(conn, "User", account.id)
            self.ldap_sync.queue_user_sync(conn, account.id)
            self._audit(
                conn,
                actor,
                "user.invitation_cancelled",
                account.id,
                account.user_name,
                request=request,
                now=now,
            )

    def create_user(
        self,
        email: str,
        given_name: str | None,
        family_name: str | None,
        role: str,
        temporary_password: str | None,
        actor: Actor,
        request: RequestInfo | None = None,
    ) -> CreatedUser:
        """Create an ``active`` user who must change the temporary password at first login."""
        target_role = self.roles.get(role)
        generated = None if temporary_password else generate_password()
        password = temporary_password or generated
        assert password is not None
        now = _now()
        with self.database.write() as conn:
            probe = Account(0, "", email, UserStatus.ACTIVE, None, True, None, {})
            password_hash = (
                self._checked_hash(probe, password)
                if temporary_password
                else hash_password(password)
            )
            record = self._insert_account(
                conn, email, given_name, family_name, UserStatus.ACTIVE, password_hash, True, now
            )
            # The entry does not exist yet: the password waits, encrypted, behind its creation.
            self.passwords.deliver(conn, record.id, password, now)
            self.ldap_sync.queue_user_sync(conn, record.id)
            self.role_membership.assign(conn, record.id, target_role, now)
            self._audit(
                conn,
                actor,
                "user.created",
                record.id,
                email,
                request=request,
                now=now,
                changes={
                    "email": email,
                    "name": " ".join(p for p in (given_name, family_name) if p) or None,
                    "role": target_role.name,
                    "password_change_required": True,
                },
            )
            return CreatedUser(record.id, generated)

    # -- editing ------------------------------------------------------------------------------

    def update_profile(
        self,
        user_id: str,
        changes: ProfileChanges,
        actor: Actor,
        request: RequestInfo | None = None,
    ) -> None:
        """Edit name, email and contact details; a changed email notifies the old address."""
        now = _now()
        with self.database.write() as conn:
            record = store.get(conn, "User", user_id, for_update=True)
            if record is None:
                raise UserNotFound(f"no user {user_id}")
            user = user_model(record)
            old_email = primary_email(user)
            try:
                _apply_profile(user, changes)
            except ValidationError:
                raise InvalidEmail(f"“{changes.email}” is not a valid email address") from None
            new_email = primary_email(user)
            if new_email and new_email != old_email:
                other = accounts.account_by_login(conn, user_name_key(new_email))
                if other is not None and other.id != user_id:
                    raise EmailTaken(f"{new_email} already belongs to a user")
                # Users created by email use it as their userName: keep the two together.
                if old_email and user.user_name and user.user_name.lower() == old_email.lower():
                    user.user_name = new_email
            before = record.doc
            doc = document(user)
            try:
                saved = store.update_user(conn, record, user_columns(doc), doc, None, now)
            except DuplicateKey:
                raise EmailTaken(f"{new_email} already belongs to a user") from None
            self.ldap_sync.queue_user_sync(conn, user_id)
            self.notify_email_change(
                conn,
                user_id,
                old_email,
                new_email,
                user.display_name or user.user_name,
                now,
            )
            self._audit(
                conn,
                actor,
                "user.updated",
                user_id,
                user.user_name,
                request=request,
                now=now,
                changes=audit.document_changes(before, saved.doc),
            )

    def notify_email_change(
        self,
        conn: Transaction,
        user_id: str,
        old_email: str | None,
        new_email: str | None,
        name: str | None,
        now: datetime,
    ) -> None:
        """Tell the old address that a user's primary email changed, in the change's transaction.

        The one rule for every channel (admin UI, System API, SCIM PUT and PATCH): someone
        who loses the address learns of it there. A change of letter case only is the same
        mailbox and is not announced. ``name`` is the user's displayName, else userName.
        """
        if not old_email or (new_email or "").lower() == old_email.lower():
            return
        queue_email(
            conn,
            "email_changed",
            old_email,
            {"name": name, "new_email": new_email},
            now,
            ordering_key=f"user:{user_id}",
        )

    def role_of(self, user_id: str) -> Role:
        """Return a user's effective role."""
        with self.database.read() as conn:
            return self.role_membership.effective_role(conn, user_id)

    def change_role(
        self,
        user_id: str,
        role: str,
        actor: Actor,
        request: RequestInfo | None = None,
        *,
        until: datetime | None = None,
    ) -> None:
        """Move a user to the groups of ``role``; with ``until``, the change reverts by itself."""
        target = self.roles.get(role)
        now = _now()
        if until is not None and until <= now:
            raise InvalidTransition("a temporary role must end in the future")
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            previous = self.role_membership.effective_role(conn, user_id)
            self.role_membership.assign(conn, user_id, target, now)
            if until is not None:
                existing = accounts.get_grant(conn, account.pk)
                # A new temporary grant on top of one still running reverts to the first role.
                revert_to = existing.previous_role if existing else previous.name
                accounts.put_grant(
                    conn,
                    accounts.RoleGrant(account.pk, target.name, revert_to, until, actor.name),
                )
            else:
                accounts.delete_grant(conn, account.pk)
            self._audit(
                conn,
                actor,
                "user.role_changed",
                user_id,
                account.user_name,
                request=request,
                now=now,
                changes={
                    "role": {"before": previous.name, "after": target.name},
                    **({"until": until.isoformat()} if until else {}),
                },
            )

    def expire_role_grants(self) -> int:
        """Revert every temporary role whose time is up (audited); return how many."""
        now = _now()
        reverted = 0
        with self.database.write() as conn:
            for grant in accounts.expired_grants(conn, now):
                account = accounts.account_by_pk(conn, grant.user_pk)
                accounts.delete_grant(conn, grant.user_pk)
                if account is None:
                    continue
                role = self.roles.by_name.get(grant.previous_role) or self.roles.get(
                    self.roles.default_role
                )
                self.role_membership.assign(conn, account.id, role, now)
                self._audit(
                    conn,
                    Actor.system(),
                    "user.role_grant_expired",
                    account.id,
                    account.user_name,
                    request=None,
                    now=now,
                    changes={"role": {"before": grant.role, "after": role.name}},
                )
                reverted += 1
        return reverted

    # -- suspension and deletion -----------------------------------------------------------------

    def suspend(self, user_id: str, actor: Actor, request: RequestInfo | None = None) -> None:
        """Block login at once: end sessions, void links, keep data and history."""
        now = _now()
        with self.database.write() as conn:
            record = store.get(conn, "User", user_id, for_update=True)
            if record is None:
                raise UserNotFound(f"no user {user_id}")
            if record.status == UserStatus.SUSPENDED:
                return
            user = user_model(record)
            user.active = False
            doc = document(user)
            store.update_user(conn, record, user_columns(doc), doc, None, now)
            self.on_suspended(conn, record.pk, actor, request, now)
            self.ldap_sync.queue_user_sync(conn, user_id)

    def reactivate(self, user_id: str, actor: Actor, request: RequestInfo | None = None) -> None:
        """Allow login again; old sessions stay ended."""
        now = _now()
        with self.database.write() as conn:
            record = store.get(conn, "User", user_id, for_update=True)
            if record is None:
                raise UserNotFound(f"no user {user_id}")
            if record.status != UserStatus.SUSPENDED:
                return
            user = user_model(record)
            user.active = True
            doc = document(user)
            store.update_user(conn, record, user_columns(doc), doc, None, now)
            self.on_reactivated(conn, record.pk, actor, request, now)
            self.ldap_sync.queue_user_sync(conn, user_id)

    def on_suspended(
        self,
        conn: Transaction,
        user_pk: int,
        actor: Actor,
        request: RequestInfo | None,
        now: datetime,
        *,
        account: Account | None = None,
        changes: dict[str, Any] | None = None,
        status_written: bool = False,
    ) -> None:
        """Apply suspension to a user whose row already says ``active=false`` (SCIM or admin).

        ``account`` spares reading the user again when the caller holds it (its status must
        be the one before suspension); ``changes`` are other changes of the same write, told
        in the one ``user.suspended`` event; ``status_written`` says the caller's own UPDATE
        of the row already set the status to suspended.
        """
        account = account or accounts.account_by_pk(conn, user_pk)
        assert account is not None
        if not status_written:
            accounts.set_status(conn, user_pk, UserStatus.SUSPENDED)
        ended = accounts.delete_sessions(conn, user_pk)
        voided = accounts.void_links(conn, user_pk, now)
        if self.settings.lifecycle.send_suspension_notice and account.email:
            queue_email(
                conn,
                "account_suspended",
                account.email,
                {"name": account.display_name},
                now,
                ordering_key=f"user:{account.id}",
            )
        self._audit(
            conn,
            actor,
            "user.suspended",
            account.id,
            account.user_name,
            request=request,
            now=now,
            changes=_suspension_changes(changes, account.status, ended, voided),
        )

    def on_reactivated(
        self,
        conn: Transaction,
        user_pk: int,
        actor: Actor,
        request: RequestInfo | None,
        now: datetime,
    ) -> None:
        """Apply reactivation to a user whose row already says ``active=true``."""
        account = accounts.account_by_pk(conn, user_pk)
        assert account is not None
        # A user who never set a password goes back to waiting for an invitation.
        status = UserStatus.ACTIVE if account.password_hash else UserStatus.INVITED
        accounts.set_account_fields(conn, user_pk, status=status)
        self._audit(
            conn,
            actor,
            "user.reactivated",
            account.id,
            account.user_name,
            request=request,
            now=now,
            changes={"status": {"before": account.status, "after": status.value}},
        )

    def delete(self, user_id: str, actor: Actor, request: RequestInfo | None = None) -> None:
        """Delete a user for good; the audit trail keeps a tombstone."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            store.delete_by_id(conn, "User", user_id)
            self.ldap_sync.queue_user_sync(conn, user_id)
            self.record_deletion(conn, account, actor, request, now)

    def record_deletion(
        self,
        conn: Transaction,
        account: Account,
        actor: Actor,
        request: RequestInfo | None,
        now: datetime,
    ) -> None:
        """Write the tombstone of a deleted user (sessions and links went with the row)."""
        self._audit(
            conn,
            actor,
            "user.deleted",
            account.id,
            account.user_name,
            request=request,
            now=now,
            changes={"tombstone": {"id": account.id, "userName": account.user_name}},
        )

    # -- password resets ------------------------------------------------------------------------

    def trigger_password_reset(
        self, user_id: str, actor: Actor, request: RequestInfo | None = None
    ) -> None:
        """Email the user a reset link (an admin's action)."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            if account.status == UserStatus.SUSPENDED:
                raise InvalidTransition("reactivate the user before resetting the password")
            # A reset would set a password but leave the user invited, still unable to log in.
            if account.status == UserStatus.INVITED:
                raise InvalidTransition("the invitation is pending; resend it instead")
            if account.email is None:
                raise InvalidTransition("the user has no email address")
            self._issue_reset(conn, account, now)
            self._audit(
                conn,
                actor,
                "user.password_reset_requested",
                account.id,
                account.user_name,
                request=request,
                now=now,
            )

    def request_password_reset(self, identifier: str, request: RequestInfo) -> None:
        """Send a reset link if the address belongs to an active user; answer the same anyway.

        Rate limited per client address; the caller shows one message whatever happened.
        """
        now = _now()
        with self.database.write() as conn:
            self._limit(conn, f"address:{request.client_address}", now)
            account = accounts.account_by_login(conn, user_name_key(identifier.strip()))
            if account is None or account.status != UserStatus.ACTIVE:
                return
            # Past the per-account limit, stop sending but answer the same: refusing here
            # would tell that the address has an account.
            if accounts.count_hit(conn, f"reset:{account.pk}", self._window(now)) > 5:
                return
            self._issue_reset(conn, account, now)
            self._audit(
                conn,
                Actor("user", account.id, account.user_name),
                "user.password_reset_requested",
                account.id,
                account.user_name,
                request=request,
                now=now,
            )

    def reset_password(self, token: str, password: str, request: RequestInfo) -> str:
        """Set a new password through a reset link; every session of the user ends."""
        now = _now()
        with self.database.write() as conn:
            account, link = self._live_link(conn, token, LinkPurpose.PASSWORD_RESET)
            password_hash = self._checked_hash(account, password)
            self._use_link(conn, link)
            self._set_password(conn, account, password, password_hash, now)
            ended = accounts.delete_sessions(conn, account.pk)
            self._audit(
                conn,
                Actor("user", account.id, account.user_name),
                "user.password_reset",
                account.id,
                account.user_name,
                request=request,
                now=now,
                changes={"sessions_ended": ended},
            )
            return account.id

    def accept_invitation(
        self,
        token: str,
        password: str,
        request: RequestInfo,
        *,
        name: ProfileChanges | None = None,
    ) -> str:
        """Set the first password through an invitation link; the user becomes ``active``.

        ``name`` (its given and family names) is what the invitee filled in on the page.
        """
        now = _now()
        with self.database.write() as conn:
            account, link = self._live_link(conn, token, LinkPurpose.INVITATION)
            if account.status != UserStatus.INVITED:
                raise LinkInvalid("this invitation was already accepted")
            password_hash = self._checked_hash(account, password)
            self._use_link(conn, link)
            renamed = self._rename(conn, account.id, name, now) if name else {}
            accounts.set_account_fields(
                conn,
                account.pk,
                status=UserStatus.ACTIVE,
                password_hash=password_hash,
                password_change_required=False,
            )
            # A directory policy refusal raises here and rolls the acceptance back.
            self.passwords.deliver(conn, account.id, password, now)
            self.ldap_sync.queue_user_sync(conn, account.id)
            self._audit(
                conn,
                Actor("user", account.id, account.user_name),
                "user.invitation_accepted",
                account.id,
                account.user_name,
                request=request,
                now=now,
                changes={"status": {"before": "invited", "after": "active"}, **renamed},
            )
            return account.id

    def _rename(
        self, conn: Transaction, user_id: str, name: ProfileChanges, now: datetime
    ) -> dict[str, Any]:
        """Write given and family names onto a user; return what changed, for the audit."""
        record = store.get(conn, "User", user_id, for_update=True)
        if record is None:
            raise UserNotFound(f"no user {user_id}")
        user = user_model(record)
        _apply_profile(
            user, ProfileChanges(given_name=name.given_name, family_name=name.family_name)
        )
        doc = document(user)
        if doc == record.doc:
            return {}
        saved = store.update_user(conn, record, user_columns(doc), doc, None, now)
        return audit.document_changes(record.doc, saved.doc)

    def change_password(
        self,
        user_id: str,
        current_password: str,
        new_password: str,
        request: RequestInfo,
        *,
        keep_session: str | None = None,
    ) -> None:
        """Change one's own password (also the forced change at first login).

        Other sessions end; ``keep_session`` (the one making the change) stays.
        """
        now = _now()
        failure_key = f"password-change-failures:{user_id}"
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            # Someone holding a stolen session could otherwise guess the current password.
            failures = accounts.hits(conn, failure_key, self._window(now))
            if failures >= self.settings.lifecycle.login_attempts_per_account:
                raise RateLimited("too many failed attempts; wait a few minutes")
            wrong = account.password_hash is None or not verify_password(
                account.password_hash, current_password
            )
            if wrong:
                accounts.count_hit(conn, failure_key, self._window(now))
        if wrong:
            raise LoginRefused("the current password is not right")
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            if current_password == new_password:
                raise PasswordRejected(["choose a password different from the current one"])
            password_hash = self._checked_hash(account, new_password)
            self._set_password(conn, account, new_password, password_hash, now)
            accounts.delete_sessions(conn, account.pk, keep=keep_session)
            self._audit(
                conn,
                Actor("user", account.id, account.user_name),
                "user.password_changed",
                account.id,
                account.user_name,
                request=request,
                now=now,
            )

    def _set_password(
        self, conn: Transaction, account: Account, password: str, password_hash: str, now: datetime
    ) -> None:
        accounts.set_account_fields(
            conn, account.pk, password_hash=password_hash, password_change_required=False
        )
        # A directory that takes clear passwords (Active Directory) gets it now or encrypted
        # in the outbox; its policy refusal raises here and rolls the change back. Others get
        # the new hash through the user's sync job.
        self.passwords.deliver(conn, account.id, password, now)
        self.ldap_sync.queue_user_sync(conn, account.id)
        if account.email:
            queue_email(
                conn,
                "password_changed",
                account.email,
                {"name": account.display_name},
                now,
                ordering_key=f"user:{account.id}",
            )

    # -- login and sessions ---------------------------------------------------------------------

    def _window(self, now: datetime) -> datetime:
        minutes = self.settings.lifecycle.rate_window_minutes
        epoch_minutes = int(now.timestamp() // 60)
        return datetime.fromtimestamp((epoch_minutes - epoch_minutes % minutes) * 60, UTC)

    def _limit(self, conn: Transaction, key: str, now: datetime, limit: int | None = None) -> None:
        allowed = limit or self.settings.lifecycle.requests_per_address
        if accounts.count_hit(conn, key, self._window(now)) > allowed:
            raise RateLimited("too many attempts; wait a few minutes and try again")

    def login(self, identifier: str, password: str, request: RequestInfo) -> LoginResult:
        """Check credentials and open a session; refusals never say which part was wrong.

        Every refusal (unknown address, wrong password, suspended or invited account, right
        password or not) gets the same words, counts towards the same lockout and costs the
        same password check, so neither the answer nor its timing tells whether an account
        exists or a password was right.
        """
        now = _now()
        refusal: LoginRefused | None = None
        with self.database.write() as conn:
            self._limit(conn, f"address:{request.client_address}", now)
            login_key = user_name_key(identifier.strip())
            account = accounts.account_by_login(conn, login_key)
            failures_key = _login_failures_key(account, login_key)
            failures = accounts.hits(conn, failures_key, self._window(now))
            if failures >= self.settings.lifecycle.login_attempts_per_account:
                raise RateLimited("too many failed attempts; wait a few minutes")
            stored_hash = account.password_hash if account else None
            password_ok = verify_password(stored_hash or _dummy_hash(), password)
            usable = account is not None and account.status == UserStatus.ACTIVE
            if not (usable and stored_hash is not None and password_ok):
                refusal = LoginRefused(LOGIN_REFUSED)
                # Committed with the transaction: the failure must count even though the
                # request is refused.
                accounts.count_hit(conn, failures_key, self._window(now))
                if account is not None:
                    # The audit trail, seen by admins only, keeps the real reason.
                    action = "user.login_failed"
                    if stored_hash is not None and password_ok:
                        action = "user.login_refused"
                    self._audit_login(conn, account, action, request, now)
            else:
                assert account is not None  # usable
                token = secrets.token_urlsafe(32)
                session_id = str(uuid.uuid4())
                accounts.insert_session(
                    conn,
                    session_id,
                    account.pk,
                    _digest(token),
                    now,
                    request.client_address,
                    request.user_agent,
                )
                accounts.set_account_fields(conn, account.pk, last_login=now)
                self._audit_login(conn, account, "user.login", request, now)
        if refusal is not None:
            raise refusal
        assert account is not None
        return LoginResult(token, session_id, account.id, account.password_change_required)

    def _audit_login(
        self, conn: Transaction, account: Account, action: str, request: RequestInfo, now: datetime
    ) -> None:
        self._audit(
            conn,
            Actor("user", account.id, account.user_name),
            action,
            account.id,
            account.user_name,
            request=request,
            now=now,
        )

    def session(self, token: str) -> tuple[SessionRow, Account] | None:
        """Return the live session of a cookie and its account; None ends the visit at login.

        A session of a suspended or deleted user, or one idle or old past the limits, is
        refused (and removed).
        """
        now = _now()
        limits = self.settings.session
        with self.database.read() as conn:
            row = accounts.find_session(conn, _digest(token))
            account = accounts.account_by_pk(conn, row.user_pk) if row else None
        if row is None:
            return None
        expired = now - row.last_seen > timedelta(
            minutes=limits.idle_minutes
        ) or now - row.created > timedelta(hours=limits.lifetime_hours)
        if account is None or account.status != UserStatus.ACTIVE or expired:
            with self.database.write() as conn:
                accounts.delete_session(conn, row.id)
            return None
        # last_seen is advisory: once a minute is enough to show activity and expire sessions.
        if now - row.last_seen > timedelta(minutes=1):
            with self.database.write() as conn:
                accounts.touch_session(conn, row.id, now)
        return row, account

    def logout(self, token: str) -> None:
        """End the session of a cookie."""
        with self.database.write() as conn:
            row = accounts.find_session(conn, _digest(token))
            if row is not None:
                accounts.delete_session(conn, row.id)

    def sessions_of(self, user_id: str) -> list[SessionRow]:
        """Return a user's active sessions."""
        with self.database.read() as conn:
            account = self._account(conn, user_id)
            return accounts.list_sessions(conn, account.pk)

    def end_session(
        self, user_id: str, session_id: str, actor: Actor, request: RequestInfo | None = None
    ) -> bool:
        """End one session of a user; return whether it existed."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            ended = accounts.delete_session(conn, session_id, account.pk)
            if ended:
                self._audit(
                    conn,
                    actor,
                    "user.session_ended",
                    account.id,
                    account.user_name,
                    request=request,
                    now=now,
                    changes={"session": session_id},
                )
            return ended

    def end_all_sessions(
        self,
        user_id: str,
        actor: Actor,
        request: RequestInfo | None = None,
        *,
        keep: str | None = None,
    ) -> int:
        """End every session of a user (but ``keep``, the one asking); return how many."""
        now = _now()
        with self.database.write() as conn:
            account = self._account(conn, user_id)
            ended = accounts.delete_sessions(conn, account.pk, keep=keep)
            self._audit(
                conn,
                actor,
                "user.sessions_ended",
                account.id,
                account.user_name,
                request=request,
                now=now,
                changes={"sessions_ended": ended},
            )
            return ended

    # -- helpers -------------------------------------------------------------------------------

    def _audit(
        self,
        conn: Transaction,
        actor: Actor,
        action: str,
        user_id: str,
        user_name: str | None,
        *,
        request: RequestInfo | None,
        now: datetime | None,
        changes: dict[str, Any] | None = None,
    ) -> None:
        """Append an event about a user."""
        audit.record(
            conn,
            actor,
            action,
            target_type="User",
            target_id=user_id,
            target_name=user_name,
            changes=changes,
            request=request,
            now=now,
        )

    def account(self, user_id: str) -> Account:
        """Return a user's account, or raise UserNotFound."""
        with self.database.read() as conn:
            return self._account(conn, user_id)

    def _account(self, conn: Transaction, user_id: str) -> Account:
        account = accounts.account_by_id(conn, user_id)
        if account is None:
            raise UserNotFound(f"no user {user_id}")
        return account


def primary_email(user: UserResource) -> str | None:
    """Return the address a user's mail goes to (a value that is no address never gets mail)."""
    return mail_address({"value": e.value, "primary": e.primary} for e in user.emails or [])


def primary_email_in(doc: dict[str, Any]) -> str | None:
    """Return the address mail goes to of a stored user document (see primary_email)."""
    return mail_address(e for e in doc.get("emails") or [] if isinstance(e, dict))


def _apply_profile(user: UserResource, changes: ProfileChanges) -> None:
    """Write profile changes onto the SCIM model of a user ("" clears a field)."""
    if changes.given_name is not None or changes.family_name is not None:
        name = user.name or Name()
        if changes.given_name is not None:
            name.given_name = changes.given_name or None
        if changes.family_name is not None:
            name.family_name = changes.family_name or None
        user.name = name
        user.display_name = (
            " ".join(p for p in (name.given_name, name.family_name) if p) or user.display_name
        )
    if changes.email is not None and changes.email:
        if not is_email_address(changes.email):
            raise InvalidEmail(f"“{changes.email}” is not a valid email address")
        others = [e for e in user.emails or [] if not e.primary]
        user.emails = [Email(value=changes.email, primary=True, type="work"), *others]
    if changes.phone_numbers is not None:
        user.phone_numbers = [
            PhoneNumber(value=entry["value"], type=entry.get("type") or "work")
            for entry in changes.phone_numbers
            if entry.get("value")
        ] or None
    if changes.title is not None:
        user.title = changes.title or None
    if changes.department is not None:
        extension: Any = user[EnterpriseUser] or EnterpriseUser()
        extension.department = changes.department or None
        user[EnterpriseUser] = extension


def _suspension_changes(
    changes: dict[str, Any] | None, status: str, ended: int, voided: int
) -> dict[str, Any]:
    """Return a suspension event's changes: the write's own, then the lifecycle's.

    What the lifecycle adds holds no secret: changes already stripped of them stay marked
    so, and the event is written without walking them again under the writer lock.
    """
    merged = {
        **(changes or {}),
        "status": {"before": status, "after": UserStatus.SUSPENDED.value},
        "sessions_ended": ended,
        "links_voided": voided,
    }
    if changes is None or isinstance(changes, audit.SanitizedChanges):
        return audit.SanitizedChanges(merged)
    return merged
