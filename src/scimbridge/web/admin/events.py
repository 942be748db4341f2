"""Audit events in words: "Password reset requested by Ada Admin", "title: Engineer → Lead".

The profile's history and the audit log show the same sentence and the same changed fields,
so an admin reads one event the same way wherever they meet it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time
from datetime import timedelta
from typing import Any

from ...service.directory.admin_reads import AuditEvent

_PHRASES = {
    "user.invited": "Invited",
    "user.invitation_resent": "Invitation resent",
    "user.invitation_cancelled": "Invitation cancelled",
    "user.invitation_accepted": "Invitation accepted",
    "user.created": "Created",
    "user.updated": "Profile changed",
    "user.role_changed": "Role changed",
    "user.role_grant_expired": "Temporary role ended",
    "user.suspended": "Suspended",
    "user.reactivated": "Reactivated",
    "user.deleted": "Deleted",
    "user.login": "Logged in",
    "user.login_failed": "Login failed",
    "user.login_refused": "Login refused",
    "user.password_changed": "Password changed",
    "user.password_reset_requested": "Password reset requested",
    "user.password_reset": "Password reset through the emailed link",
    "user.session_ended": "Session ended",
    "user.sessions_ended": "Sessions ended",
    "group.created": "Group created",
    "group.updated": "Group changed",
    "group.replaced": "Group replaced",
    "group.deleted": "Group deleted",
    "token.created": "Token created",
    "token.revoked": "Token revoked",
    "jobs.retried": "Jobs queued again",
}

# Who did these is the user the event is about: "Logged in by Nina" would say it twice.
_DONE_BY_THE_USER = {
    "user.login",
    "user.login_failed",
    "user.login_refused",
    "user.invitation_accepted",
    "user.password_reset",
}

_ACTOR_KINDS = {
    "scim": "identity provider",
    "api": "System API",
    "cli": "command line",
    "system": "scimbridge",
}

# Field names as an admin knows them; others are spelled out from their camelCase.
_FIELD_NAMES = {
    "userName": "username",
    "displayName": "display name",
    "emails": "email",
    "phoneNumbers": "phone",
    "givenName": "given name",
    "familyName": "family name",
    "externalId": "external id",
    "sessions_ended": "sessions ended",
    "links_voided": "links voided",
    "password_change_required": "must change password",
}

_MAX_VALUE = 120
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class EventWords:
    """One audit event as the pages show it."""

    sentence: str
    """What happened and who did it: "Suspended by Ada Admin"."""
    changes: list[str]
    """One line per changed field: "title: Engineer → Lead"."""


def actor_label(event: AuditEvent, names: Mapping[str, str] | None = None) -> str:
    """Name who acted: a person by display name (``names``, by id) or login, a program by kind."""
    name = (names or {}).get(event.actor_id or "") or event.actor_name or event.actor_id
    kind = _ACTOR_KINDS.get(event.actor_type)
    if kind is None:
        return name or event.actor_type
    return f"{kind} {name}" if name else kind


def describe(event: AuditEvent, names: Mapping[str, str] | None = None) -> EventWords:
    """Return the sentence and the changed fields of one event (``names``: see actor_label)."""
    phrase = _PHRASES.get(event.action) or _spelled(event.action)
    by_the_user = event.action in _DONE_BY_THE_USER and event.actor_id == event.target_id
    sentence = phrase if by_the_user else f"{phrase} by {actor_label(event, names)}"
    created = event.action.endswith(".created")
    return EventWords(sentence, describe_changes(event.changes, created=created))


def describe_changes(changes: dict[str, Any] | None, *, created: bool = False) -> list[str]:
    """Turn an event's changes into short lines: ``role: member → admin``.

    For a creation (``created``) every field is new: it shows as ``title: Engineer``.
    """
    lines: list[str] = []
    for key, value in (changes or {}).items():
        if key == "tombstone" or value is None:
            continue
        if isinstance(value, dict) and set(value) == {"before", "after"}:
            if created and value["before"] is None:
                if value["after"] is not None:
                    lines.append(f"{_field(key)}: {_value(value['after'])}")
                continue
            lines.extend(_change_lines(key, value["before"], value["after"]))
        elif key == "until" and isinstance(value, str):
            lines.append(f"until: {through(_moment(value))}")
        else:
            lines.append(f"{_field(key)}: {_value(value)}")
    return lines


def through(until: datetime | None) -> str:
    """Show when a temporary role ends as the day an admin picked: "through 13 Dec 2026".

    A role given "until" a day lasts to the end of that day, so it is stored as the next
    midnight; any other moment is shown as it is.
    """
    if until is None:
        return "—"
    if until.time() == time(0):
        return "through " + (until - timedelta(days=1)).strftime("%-d %b %Y")
    return "until " + until.strftime("%-d %b %Y %H:%M UTC")


def _change_lines(key: str, before: Any, after: Any) -> list[str]:
    # A structured attribute (the name) shows the parts that changed, not two dictionaries.
    if isinstance(before, dict | None) and isinstance(after, dict | None) and (before or after):
        old, new = before or {}, after or {}
        parts = [part for part in sorted(set(old) | set(new)) if old.get(part) != new.get(part)]
        if parts and all(not isinstance(old.get(p) or new.get(p), dict | list) for p in parts):
            return [
                f"{_field(part)}: {_value(old.get(part))} → {_value(new.get(part))}"
                for part in parts
            ]
    return [f"{_field(key)}: {_value(before)} → {_value(after)}"]


def _field(key: str) -> str:
    return _FIELD_NAMES.get(key) or _CAMEL.sub(" ", key).replace("_", " ").lower()


def _value(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, dict) and "value" in v for v in value):
        text = ", ".join(str(item["value"]) for item in value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _moment(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _spelled(action: str) -> str:
    return action.replace(".", " ").replace("_", " ").capitalize()
