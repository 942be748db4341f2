"""Conversions between SCIM resource models and what the store keeps of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scim2_models import Context
from scim2_models import Path

from ...domain.resources import GroupResource
from ...domain.resources import StoredResource
from ...domain.resources import UserResource
from ...store.resources import GroupColumns
from ...store.resources import UserColumns

# Comparison keys come from scim2-models' own rules (NFC, lower-case unless caseExact), so
# the indexed key columns agree with how filters and PATCH selections compare values.
_USER_NAME = Path[UserResource]("userName").resolve()
_USER_DISPLAY_NAME = Path[UserResource]("displayName").resolve()
_EMAIL_VALUE = Path[UserResource]("emails.value").resolve()
_GROUP_DISPLAY_NAME = Path[GroupResource]("displayName").resolve()

# What the document leaves out: the store manages these itself.
_NOT_IN_DOCUMENT = ("id", "meta", "groups", "members", "password")


def user_name_key(user_name: str) -> str:
    """Return the comparison form of a userName (case-insensitive)."""
    assert _USER_NAME is not None
    return str(_USER_NAME.comparable(user_name))


def group_name_key(display_name: str) -> str:
    """Return the comparison form of a group displayName (case-insensitive)."""
    assert _GROUP_DISPLAY_NAME is not None
    return str(_GROUP_DISPLAY_NAME.comparable(display_name))


def _key(binding: Any, value: str | None) -> str | None:
    return None if value is None else str(binding.comparable(value))


def document(resource: UserResource | GroupResource) -> dict[str, Any]:
    """Return the stored document: the resource as a query would return it, less store fields."""
    doc = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    for name in _NOT_IN_DOCUMENT:
        doc.pop(name, None)
    return doc


def user_columns(doc: dict[str, Any]) -> UserColumns:
    """Extract the indexed columns of a user from its stored document (see :func:`document`).

    From the document rather than the model: a PATCH applied on the document (patch_fast)
    has no model, and every other write has the document at hand.
    """
    user_name = doc["userName"]
    display_name = doc.get("displayName")
    return UserColumns(
        user_name=user_name,
        user_name_key=user_name_key(user_name),
        external_id=doc.get("externalId"),
        display_name=display_name,
        display_name_key=_key(_USER_DISPLAY_NAME, display_name),
        active=doc.get("active") is not False,
        emails=[_email_row(entry) for entry in doc.get("emails") or []],
    )


def _email_row(entry: dict[str, Any]) -> dict[str, Any]:
    value = entry.get("value")
    value = str(value) if value is not None else None
    return {
        "value": value,
        "value_key": _key(_EMAIL_VALUE, value),
        "type": entry.get("type"),
        "primary": bool(entry.get("primary")),
        "display": entry.get("display"),
    }


def group_columns(group: GroupResource) -> GroupColumns:
    """Extract the indexed columns of a group."""
    assert group.display_name is not None
    return GroupColumns(
        display_name=group.display_name,
        display_name_key=group_name_key(group.display_name),
        external_id=group.external_id,
    )


def meta(record: StoredResource, location: str) -> dict[str, Any]:
    """Return the ``meta`` attribute of a stored resource."""
    return {
        "resourceType": record.resource_type,
        "created": scim_timestamp(record.created),
        "lastModified": scim_timestamp(record.last_modified),
        "location": location,
        "version": record.etag,
    }


def scim_timestamp(value: datetime) -> str:
    """Return a UTC instant as SCIM writes dateTime values (``…Z``)."""
    return value.isoformat().replace("+00:00", "Z")


def _payload(record: StoredResource, location: str) -> dict[str, Any]:
    return {**record.doc, "id": record.id, "meta": meta(record, location or record.id)}


def user_model(record: StoredResource, location: str = "") -> UserResource:
    """Rebuild the model of a stored user (without its groups)."""
    return UserResource.model_validate(_payload(record, location))


def group_model(record: StoredResource, location: str = "") -> GroupResource:
    """Rebuild the model of a stored group (without its members)."""
    return GroupResource.model_validate(_payload(record, location))


def to_model(record: StoredResource, location: str = "") -> UserResource | GroupResource:
    """Rebuild the model of a stored user or group (without its memberships)."""
    if record.resource_type == "User":
        return user_model(record, location)
    return group_model(record, location)
