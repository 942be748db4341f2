"""Distinguished names and search filters built from untrusted values (RFC 4514, RFC 4515).

Every value scimbridge puts into a DN or a filter goes through :func:`escape_dn_value` or
:func:`escape_filter_value`, so that a userName such as ``a,b=c`` or ``x)(uid=*`` is stored
and searched for literally. :func:`dn_key` gives the comparison form of a DN: directories
answer with their own spelling (hex escapes, other letter case), scimbridge compares keys.
"""

from __future__ import annotations

# RFC 4514 §2.4: these must be escaped anywhere in an attribute value.
_DN_SPECIALS = frozenset('"+,;<>\\=')


def escape_dn_value(value: str) -> str:
    """Escape an attribute value for use in an RDN (RFC 4514 §2.4)."""
    out = []
    last = len(value) - 1
    for position, char in enumerate(value):
        if char in _DN_SPECIALS:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        elif (position == 0 and char in " #") or (position == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def escape_filter_value(value: str) -> str:
    """Escape an assertion value for use in a search filter (RFC 4515 §3)."""
    out = []
    for char in value:
        if char in "*()\\\x00":
            out.append(f"\\{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def rdn(attribute: str, value: str) -> str:
    """Return ``attribute=value`` with the value escaped."""
    return f"{attribute}={escape_dn_value(value)}"


def child_dn(attribute: str, value: str, parent: str) -> str:
    """Return the DN of the entry named ``attribute=value`` under ``parent``."""
    return f"{rdn(attribute, value)},{parent}"


class InvalidDn(ValueError):
    """A string that is not a distinguished name."""


def split_dn(dn: str) -> list[list[tuple[str, str]]]:
    """Split a DN into RDNs, leftmost first, each a list of (attribute type, unescaped value).

    An RDN has several pairs when it is multi-valued (``cn=a+uid=b``).
    """
    rdns: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    position = 0
    length = len(dn)
    while position < length:
        equals = dn.find("=", position)
        if equals < 0:
            raise InvalidDn(f"no '=' in {dn[position:]!r}")
        attribute = dn[position:equals].strip()
        if not attribute:
            raise InvalidDn(f"empty attribute type in {dn!r}")
        position = equals + 1
        # (text, escaped) pieces: only unescaped spaces around a value are insignificant.
        value: list[tuple[str, bool]] = []
        pending = bytearray()
        while position < length and dn[position] not in ",+;":
            char = dn[position]
            escaped = False
            if char == "\\" and position + 1 < length:
                following = dn[position + 1 : position + 3]
                if len(following) == 2 and all(c in "0123456789abcdefABCDEF" for c in following):
                    # Hex escapes are UTF-8 bytes: collect them until a plain character.
                    pending.append(int(following, 16))
                    position += 3
                    continue
                char = dn[position + 1]
                escaped = True
                position += 1
            if pending:
                value.append((pending.decode("utf-8", errors="replace"), True))
                pending = bytearray()
            value.append((char, escaped))
            position += 1
        if pending:
            value.append((pending.decode("utf-8", errors="replace"), True))
        while value and value[0] == (" ", False):
            value.pop(0)
        while value and value[-1] == (" ", False):
            value.pop()
        current.append((attribute, "".join(text for text, _ in value)))
        separator = dn[position] if position < length else ","
        if separator != "+":
            rdns.append(current)
            current = []
        position += 1
    if current:
        rdns.append(current)
    return rdns


def _join(rdns: list[list[tuple[str, str]]], *, lower: bool = False) -> str:
    parts = []
    for pairs in rdns:
        rendered = [
            f"{attribute.lower() if lower else attribute}="
            f"{escape_dn_value(value.lower() if lower else value)}"
            for attribute, value in pairs
        ]
        parts.append("+".join(sorted(rendered) if lower else rendered))
    return ",".join(parts)


def dn_key(dn: str) -> str:
    """Return the comparison form of a DN: parsed, unescaped, lower-cased, escaped again.

    Naming attributes (uid, cn, ou, dc) compare case-insensitively, so two DNs that differ
    only in escaping, spacing around separators or letter case have the same key.
    """
    return _join(split_dn(dn), lower=True)


def parent_dn(dn: str) -> str:
    """Return the DN of an entry's parent (everything after the first RDN)."""
    return _join(split_dn(dn)[1:])


def first_rdn(dn: str) -> tuple[str, str]:
    """Return the (attribute type, unescaped value) of a DN's leftmost RDN (its first value)."""
    rdns = split_dn(dn)
    if not rdns:
        raise InvalidDn("empty DN")
    return rdns[0][0]
