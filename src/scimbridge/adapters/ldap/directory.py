"""The connection to the directory: the only module that speaks ldap3.

:class:`LdapDirectory` opens one connection when first used, binds, and opens it again after
the server closed it. Every ldap3 exception and error result becomes an exception of
:mod:`.errors`: :class:`LdapUnavailable` when the directory cannot be used right now,
:class:`LdapRefused` (or a subclass naming the case) when it answered an operation with an
error. Not thread-safe: give each thread its own.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal

from ldap3 import BASE
from ldap3 import LEVEL
from ldap3 import MODIFY_ADD
from ldap3 import MODIFY_DELETE
from ldap3 import MODIFY_REPLACE
from ldap3 import NONE
from ldap3 import SUBTREE
from ldap3 import Connection
from ldap3 import Server
from ldap3 import Tls
from ldap3.core.exceptions import LDAPCommunicationError
from ldap3.core.exceptions import LDAPException
from ldap3.core.exceptions import LDAPMaximumRetriesError
from ldap3.core.exceptions import LDAPResponseTimeoutError
from ldap3.core.exceptions import LDAPStartTLSError

from ...settings import LdapSettings
from .errors import ConstraintViolation
from .errors import EntryAlreadyExists
from .errors import LdapRefused
from .errors import LdapUnavailable
from .errors import NoSuchEntry
from .errors import NoSuchValue
from .errors import ObjectClassViolation
from .names import dn_key
from .names import first_rdn
from .names import parent_dn
from .names import rdn

Attributes = dict[str, list[str]]

# Permissive Modify (MS-ADTS 3.1.1.3.4.1.8; OpenLDAP honours it for adds): adding a value
# that is already there succeeds, which makes replayed member additions harmless.
_PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
_PAGED_RESULTS = "1.2.840.113556.1.4.319"

_CONNECTION_ERRORS = (
    LDAPCommunicationError,
    LDAPResponseTimeoutError,
    LDAPMaximumRetriesError,
    LDAPStartTLSError,
)
# Result codes that say the directory, not the operation, is the problem: timeLimitExceeded,
# busy, unavailable.
_UNAVAILABLE_CODES = {3, 51, 52}
_REFUSALS: dict[int, type[LdapRefused]] = {
    16: NoSuchValue,
    19: ConstraintViolation,
    32: NoSuchEntry,
    65: ObjectClassViolation,
    68: EntryAlreadyExists,
}

_STRONGER_AUTH_REQUIRED = 8

Scope = Literal["base", "one", "subtree"]
_SCOPES = {"base": BASE, "one": LEVEL, "subtree": SUBTREE}


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _attributes(raw: Mapping[str, Any]) -> Attributes:
    values: Attributes = {}
    for name, items in raw.items():
        listed = items if isinstance(items, list) else [items]
        if listed:
            values[name] = [_text(item) for item in listed]
    return values


class LdapDirectory:
    """One bound connection to the directory of the settings, reopened when lost."""

    def __init__(self, settings: LdapSettings) -> None:
        if not settings.url:
            raise ValueError("LDAP sync is off: ldap.url is not set")
        self.settings = settings
        self.url = settings.url
        self._connection: Connection | None = None

    # -- connection -------------------------------------------------------------------------

    def _server(self) -> Server:
        settings = self.settings
        tls = None
        if self.url.lower().startswith("ldaps://") or settings.start_tls:
            tls = Tls(
                validate=ssl.CERT_REQUIRED if settings.verify_tls else ssl.CERT_NONE,
                ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
            )
        return Server(
            self.url, get_info=NONE, connect_timeout=settings.connect_timeout_seconds, tls=tls
        )

    def _open(self) -> Connection:
        settings = self.settings
        password = settings.bind_password.get_secret_value() if settings.bind_password else None
        connection = Connection(
            self._server(),
            user=settings.bind_dn,
            password=password,
            # ldap3 packs this into a socket option that takes whole seconds.
            receive_timeout=max(1, math.ceil(settings.timeout_seconds)),
            auto_referrals=False,
            raise_exceptions=False,
        )
        try:
            connection.open()
            if settings.start_tls and not connection.start_tls():
                raise LdapUnavailable(f"StartTLS refused by {self.url}: {_describe(connection)}")
            if not connection.bind():
                if connection.result.get("result") == _STRONGER_AUTH_REQUIRED:
                    raise LdapUnavailable(
                        f"{self.url} refuses a simple bind without TLS (strongerAuthRequired):"
                        " use an ldaps:// ldap.url or set ldap.start_tls = true"
                    )
                raise LdapUnavailable(
                    f"bind as {settings.bind_dn or 'anonymous'} refused by {self.url}: "
                    f"{_describe(connection)}"
                )
        except LDAPException as exc:
            _discard(connection)
            raise LdapUnavailable(f"cannot reach {self.url}: {exc}") from None
        except LdapUnavailable:
            _discard(connection)
            raise
        return connection

    def __enter__(self) -> LdapDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Unbind and forget the connection; the next operation opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            _discard(connection)

    def check(self) -> None:
        """Open and bind a new connection, then close it; raise LdapUnavailable if it fails."""
        self._open().unbind()

    def _call(
        self, dn: str, action: Callable[[Connection], Any], *, reconnect: bool = True
    ) -> Connection:
        """Run one operation; return the connection holding its result and response.

        A connection that was open before the call may have been closed by the server while
        idle: the operation is tried once more on a new one (``reconnect``).
        """
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = self._open()
            connection = self._connection
            try:
                action(connection)
            except _CONNECTION_ERRORS as exc:
                self.close()
                if reused and reconnect and attempt == 1:
                    continue
                raise LdapUnavailable(f"lost the connection to {self.url}: {exc}") from None
            except LDAPException as exc:
                raise LdapRefused(-1, type(exc).__name__, str(exc), dn) from None
            code = int(connection.result["result"])
            if code == 0:
                return connection
            if code in _UNAVAILABLE_CODES:
                self.close()
                raise LdapUnavailable(f"{self.url} answered {_describe(connection)}")
            result = connection.result
            refusal = _REFUSALS.get(code, LdapRefused)
            raise refusal(code, str(result["description"]), str(result["message"] or ""), dn)
        raise AssertionError("unreachable")

    # -- operations ---------------------------------------------------------------------------

    def add(
        self, dn: str, object_classes: Sequence[str], attributes: Mapping[str, list[str]]
    ) -> None:
        """Add an entry."""
        values = {name: items for name, items in attributes.items() if items}
        self._call(dn, lambda c: c.add(dn, list(object_classes), values))

    def replace(self, dn: str, changes: Mapping[str, list[str]]) -> None:
        """Replace the values of attributes; an empty list removes the attribute."""
        if changes:
            modify = {name: [(MODIFY_REPLACE, list(items))] for name, items in changes.items()}
            self._call(dn, lambda c: c.modify(dn, modify))

    def change_values(
        self,
        dn: str,
        attribute: str,
        add: Sequence[str] = (),
        delete: Sequence[str] = (),
    ) -> None:
        """Add and delete single values of one attribute in one operation.

        Adding a value already there is harmless (permissive modify); deleting one that is
        not there raises :class:`NoSuchValue`, and the whole operation is then void.
        """
        operations: list[tuple[Any, list[str]]] = []
        if add:
            operations.append((MODIFY_ADD, list(add)))
        if delete:
            operations.append((MODIFY_DELETE, list(delete)))
        if operations:
            self._call(
                dn, lambda c: c.modify(dn, {attribute: operations}, controls=[_PERMISSIVE_MODIFY])
            )

    def set_unicode_pwd(self, dn: str, password: str) -> None:
        """Set an Active Directory account's password (``unicodePwd``; needs TLS).

        The value is the password in double quotes, UTF-16-LE encoded. A replace is an
        administrator's reset: no current password is needed. The directory's password policy
        refusal raises :class:`ConstraintViolation` (``password_policy``).
        """
        value = f'"{password}"'.encode("utf-16-le")
        self._call(dn, lambda c: c.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [value])]}))

    def rename(self, dn: str, new_dn: str) -> None:
        """Rename (and move, if the parent differs) an entry; the old RDN value is removed."""
        attribute, value = first_rdn(new_dn)
        new_rdn = rdn(attribute, value)
        new_parent = parent_dn(new_dn)
        moves = dn_key(new_parent) != dn_key(parent_dn(dn))
        self._call(
            dn,
            lambda c: c.modify_dn(
                dn, new_rdn, delete_old_dn=True, new_superior=new_parent if moves else None
            ),
        )

    def delete(self, dn: str) -> bool:
        """Delete an entry; return False when there was none."""
        try:
            self._call(dn, lambda c: c.delete(dn))
        except NoSuchEntry:
            return False
        return True

    def read(self, dn: str, attributes: Sequence[str]) -> Attributes | None:
        """Return the named attributes of an entry (those with values), or None without one."""
        try:
            connection = self._call(
                dn,
                lambda c: c.search(dn, "(objectClass=*)", BASE, attributes=list(attributes)),
            )
        except NoSuchEntry:
            return None
        for item in connection.response or []:
            if item.get("type") == "searchResEntry":
                return _attributes(item.get("attributes") or {})
        return None

    def exists(self, dn: str) -> bool:
        """Whether an entry exists."""
        return self.read(dn, ["1.1"]) is not None

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        scope: Scope = "subtree",
        page_size: int | None = None,
    ) -> Iterator[tuple[str, Attributes]]:
        """Yield (DN, attributes) of the entries a filter selects, a page at a time.

        A base that does not exist selects nothing. ``search_filter`` must have its values
        escaped (:func:`.names.escape_filter_value`).
        """
        size = page_size or self.settings.page_size
        cookie: Any = None
        first = True
        while True:

            def page(connection: Connection, cookie: Any = cookie) -> Any:
                return connection.search(
                    base,
                    search_filter,
                    _SCOPES[scope],
                    attributes=list(attributes),
                    paged_size=size,
                    paged_cookie=cookie,
                )

            try:
                # A new connection would not know the cookie: only the first page may retry.
                connection = self._call(base, page, reconnect=first)
            except NoSuchEntry:
                return
            first = False
            entries = [
                (str(item["dn"]), _attributes(item.get("attributes") or {}))
                for item in connection.response or []
                if item.get("type") == "searchResEntry"
            ]
            controls = connection.result.get("controls") or {}
            cookie = controls.get(_PAGED_RESULTS, {}).get("value", {}).get("cookie")
            yield from entries
            if not cookie:
                return

    def ensure_entries(
        self, dn: str, object_classes_by_type: Mapping[str, Sequence[str]]
    ) -> list[str]:
        """Create ``dn`` and its missing parents as containers; return the DNs created.

        The object classes of each created entry come from its RDN attribute type
        (``ou`` → organizationalUnit…); the topmost existing entry must be there already.
        """
        missing: list[str] = []
        current = dn
        while current and not self.exists(current):
            missing.append(current)
            current = parent_dn(current)
        created = []
        for container in reversed(missing):
            attribute, value = first_rdn(container)
            classes = next(
                (
                    list(items)
                    for name, items in object_classes_by_type.items()
                    if name.lower() == attribute.lower()
                ),
                None,
            )
            if classes is None:
                raise LdapRefused(
                    32,
                    "noSuchObject",
                    f"create {container} yourself: no container class for {attribute}",
                    container,
                )
            try:
                self.add(container, classes, {attribute: [value]})
            except EntryAlreadyExists:
                continue  # created meanwhile by another worker
            created.append(container)
        return created


def _discard(connection: Connection) -> None:
    """Close a connection that may be half open or already broken."""
    try:
        connection.unbind()
    except (LDAPException, OSError):
        pass  # the connection is gone either way
    socket = getattr(connection, "socket", None)
    if socket is not None:
        socket.close()


def _describe(connection: Connection) -> str:
    result = connection.result or {}
    message = result.get("message") or ""
    return (
        f"{result.get('description')} ({result.get('result')}){': ' + message if message else ''}"
    )
