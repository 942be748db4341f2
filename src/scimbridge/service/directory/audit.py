"""Writing the audit trail: one event per change, in the transaction of the change."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from ...domain.lifecycle import Actor
from ...domain.lifecycle import RequestInfo
from ...store import audit as audit_store
from ...store.database import Transaction

# Attributes whose values never enter an event, whatever the action.
_SECRET_KEYS = {"password", "password_hash", "token", "token_hash", "secret"}


class SanitizedChanges(dict[str, Any]):
    """An event's changes already stripped of secrets (see :func:`creation_changes`).

    A create's changes are its whole document: stripping them before the write transaction
    opens keeps that work out of the time the database's one writer is held.
    """


def record(
    conn: Transaction,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    target_name: str | None = None,
    changes: dict[str, Any] | None = None,
    request: RequestInfo | None = None,
    now: datetime | None = None,
) -> None:
    """Append an event describing ``action`` (e.g. ``user.suspended``)."""
    event = event_columns(actor, action, target_type, target_id, request, now)
    event["target_name"] = target_name
    if not changes:
        event["changes"] = None
    elif isinstance(changes, SanitizedChanges):
        event["changes"] = dict(changes)
    else:
        event["changes"] = _without_secrets(changes)
    audit_store.append(conn, event)


def event_columns(
    actor: Actor,
    action: str,
    target_type: str | None,
    target_id: str | None,
    request: RequestInfo | None,
    now: datetime | None,
) -> dict[str, Any]:
    """Return an event's columns but its target name and changes."""
    request = request or RequestInfo()
    return {
        "at": now or datetime.now(UTC),
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "request_id": request.request_id,
        "client_address": request.client_address,
    }


def document_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Return ``{attribute: {"before": …, "after": …}}`` for the top-level keys that differ."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        if key == "schemas" or key.lower() in _SECRET_KEYS:
            continue
        if before.get(key) != after.get(key):
            changed[key] = {"before": before.get(key), "after": after.get(key)}
    return changed


def update_changes(before: dict[str, Any], after: dict[str, Any]) -> SanitizedChanges:
    """Return :func:`document_changes` already stripped of secrets, as :func:`record` would.

    Computed before the write transaction opens, the comparison and the stripping stay out
    of the time the database's one writer is held.
    """
    return SanitizedChanges(_without_secrets(document_changes(before, after)))


def creation_changes(status: str, doc: dict[str, Any]) -> SanitizedChanges:
    """Return a create's changes, already stripped of secrets: its status and whole document.

    The same as the secret-free ``{"status": status, **document_changes({}, doc)}``, for a
    fraction of its cost: a create compares nothing, and a value holding no secret (every
    value, in practice) goes in as it is rather than copied. The event is written in the
    transaction of the create, before anything could change the document it shares values
    with.
    """
    changes: dict[str, Any] = {"status": status}
    for key in sorted(doc):
        value = doc[key]
        if key == "schemas" or key.lower() in _SECRET_KEYS or value is None:
            continue
        changes[key] = {
            "before": None,
            "after": _without_secrets(value) if _holds_secret(value) else value,
        }
    return SanitizedChanges(changes)


def _holds_secret(value: Any) -> bool:
    """Whether a secret key appears anywhere inside ``value``."""
    # Plain loops: this runs on every create, and generator expressions cost more here.
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in _SECRET_KEYS or _holds_secret(item):
                return True
    elif isinstance(value, list):
        for item in value:
            if _holds_secret(item):
                return True
    return False


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_secrets(item)
            for key, item in value.items()
            if str(key).lower() not in _SECRET_KEYS
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value
