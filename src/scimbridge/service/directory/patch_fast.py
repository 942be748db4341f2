"""A user PATCH applied directly on the stored document: the fast path of the shapes IdPs send.

Why it exists: the general way to PATCH a user rebuilds scim2-models' User from the stored
document, applies the PatchOp through it and dumps the result back. That round trip is most
of the CPU a PATCH costs, while identity providers send a handful of shapes over and over
(Entra's ``replace active "False"``, ``name.givenName``, ``emails[type eq "work"].value``,
enterprise attributes, path-less value objects). Those shapes are applied here on the
document, a plain dict, in microseconds.

scim2-models stays the oracle. This module handles only operations whose outcome it
reproduces exactly (same document, same errors, same "changed or not"), and answers
``None`` for anything else, so the caller falls back to scim2-models for the whole PATCH.
A body it plans is one scim2-models' PatchOp validation accepts too (see plan_body); path
syntax, read-only targets and removal of required attributes are left to that validation.
``tests/test_scim_patch_fast.py`` generates users and PATCH bodies and checks that both paths
agree; a shape added here needs a generator there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from scim2_models import Address
from scim2_models import InvalidValueException
from scim2_models import Name
from scim2_models import NoTargetException
from scim2_models import PatchOp
from scim2_models import Path
from scim2_models import PhoneNumber

from ...domain.emails import Email
from ...domain.enterprise import ENTERPRISE_SCHEMA
from ...domain.enterprise import EnterpriseUser
from ...domain.enterprise import Manager
from ...domain.resources import PatchTolerance
from ...domain.resources import UserResource

_CORE_SCHEMA = str(UserResource.__schema__)


def _scim_names(model: Any) -> list[str]:
    """Return a model's attribute names in the order a dump writes them."""
    return [str(model._scim_name(name)) for name in model.model_fields]


# Attribute names as a dump writes them, by container: a document written here keeps the
# key order of one scim2-models writes, so both paths store the same JSON.
DUMP_ORDER: dict[tuple[str, ...], list[str]] = {
    (): _scim_names(UserResource),
    ("name",): _scim_names(Name),
    (ENTERPRISE_SCHEMA,): _scim_names(EnterpriseUser),
    (ENTERPRISE_SCHEMA, "manager"): _scim_names(Manager),
    ("emails",): _scim_names(Email),
    ("phoneNumbers",): _scim_names(PhoneNumber),
    ("addresses",): _scim_names(Address),
}

# The single-valued attributes handled here, by lower-cased path, with the Python type their
# value must have. Anything a model would coerce or check further (profileUrl is a URI,
# "yes" reads as true) is left to scim2-models.
_STRING_CORE: tuple[str, ...] = ("userName", "displayName", "nickName", "title", "userType")
_STRING_CORE += ("preferredLanguage", "locale", "timezone", "externalId")
_ENTERPRISE_STRINGS = ("employeeNumber", "costCenter", "organization", "division", "department")
_NAME_PARTS = tuple(DUMP_ORDER[("name",)])

_LEAVES: dict[str, tuple[tuple[str, ...], type]] = {}
for _attribute in _STRING_CORE:
    _LEAVES[_attribute.lower()] = ((_attribute,), str)
_LEAVES["active"] = (("active",), bool)
for _part in _NAME_PARTS:
    _LEAVES[f"name.{_part}".lower()] = (("name", _part), str)
for _attribute in _ENTERPRISE_STRINGS:
    _LEAVES[f"{ENTERPRISE_SCHEMA}:{_attribute}".lower()] = ((ENTERPRISE_SCHEMA, _attribute), str)
_LEAVES[f"{ENTERPRISE_SCHEMA}:manager.value".lower()] = (
    (ENTERPRISE_SCHEMA, "manager", "value"),
    str,
)

# Complex single-valued attributes whose value object is written key by key (RFC 7644
# §3.5.2.3 keeps the sub-attributes it leaves out), with the leaves its keys may name.
_COMPLEX: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "name": ("name", ("name",), tuple(part.lower() for part in _NAME_PARTS)),
    f"{ENTERPRISE_SCHEMA}:manager".lower(): (
        f"{ENTERPRISE_SCHEMA}:manager",
        (ENTERPRISE_SCHEMA, "manager"),
        ("value",),
    ),
}
"""Path (lower-cased) -> (path as written here, keys in the document, lower-cased sub-keys)."""

# Multi-valued attributes selected by ``attr[type eq "…"].sub``, with their string sub-attributes.
_MULTI: dict[str, tuple[str, tuple[str, ...]]] = {
    "emails": ("emails", ("value", "display")),
    "phonenumbers": ("phoneNumbers", ("value", "display")),
    "addresses": (
        "addresses",
        ("formatted", "streetaddress", "locality", "region", "postalcode", "country"),
    ),
}
_SUB_NAMES = {name.lower(): name for names in DUMP_ORDER.values() for name in names}
_TYPE_FILTER = re.compile(r'(\w+)\[type eq "([^"\\]*)"\](?:\.(\w+))?', re.IGNORECASE)

_type_key = Path[UserResource]("emails.type").resolve()
assert _type_key is not None
_TYPE_COMPARABLE: Callable[[str], Any] = _type_key.comparable


@dataclass(frozen=True)
class _Set:
    """Write (or with None, unassign) one single-valued leaf."""

    keys: tuple[str, ...]
    value: Any


@dataclass(frozen=True)
class _Selected:
    """Write a sub-attribute of the entries ``attr[type eq "…"]`` selects, or remove them."""

    attribute: str
    type_value: str
    sub: str | None
    value: Any
    remove: bool


_Write = _Set | _Selected


@dataclass
class FastPatch:
    """What the fast path made of a PATCH: the new document, and whether it changed."""

    doc: dict[str, Any]
    changed: bool


FastPlan = list[list[_Write]]
"""The writes of each operation of a PATCH the fast path takes."""

_PATCH_SCHEMAS = [str(PatchOp.__schema__)]
_OPERATION_KEYS = {"op", "path", "value"}


def plan_body(body: dict[str, Any]) -> FastPlan | None:
    """Plan a PATCH request body (normalised by the client's profile); None if no fast shape.

    A body the plan accepts is one scim2-models' PatchOp validation accepts too: exactly
    ``schemas`` and ``Operations``, lower-case ops, a value for every add and replace, and
    only paths and attributes known here. Anything else is left to that validation.
    """
    if body.keys() != {"schemas", "Operations"} or body["schemas"] != _PATCH_SCHEMAS:
        return None
    operations = body["Operations"]
    if not isinstance(operations, list) or not operations:
        return None
    plan: FastPlan = []
    for operation in operations:
        if not isinstance(operation, dict) or not operation.keys() <= _OPERATION_KEYS:
            return None
        op, path = operation.get("op"), operation.get("path")
        if op not in ("add", "replace", "remove") or not isinstance(path, str | None):
            return None
        if op != "remove" and "value" not in operation:
            return None
        planned = _plan(op, path, operation.get("value"))
        if planned is None:
            return None
        plan.append(planned)
    return plan


def plan_patch(patch: PatchOp[Any]) -> FastPlan | None:
    """Plan a validated PatchOp; None when one of its operations is no fast shape."""
    plan: FastPlan = []
    for operation in patch.operations or []:
        planned = _plan(operation.op.value, operation.path, operation.value)
        if planned is None:
            return None
        plan.append(planned)
    return plan


def apply_fast(
    doc: dict[str, Any], plan: FastPlan, tolerance: PatchTolerance | None
) -> FastPatch | None:
    """Apply a planned PATCH to a stored user document; None when the document does not fit.

    Raise the SCIM error scim2-models would raise for the same PATCH and document.
    """
    if not all(_fits(doc, planned) for planned in plan):
        return None
    try:
        result = _apply(doc, plan, create_unmatched=False)
    except NoTargetException as exc:
        if tolerance is None or tolerance.unmatched_filter_policy is None:
            raise
        tolerance.note_unmatched_filter(exc.detail)
        # As the model path does: the whole PATCH again, creating what a filter describes.
        result = _apply(doc, plan, create_unmatched=True)
    if result.changed and tolerance is not None:
        kept = set(_email_values(doc))
        tolerance.admit_email_values(v for v in _email_values(result.doc) if v not in kept)
    return result


def _plan(op: str, path: Any, value: Any) -> list[_Write] | None:
    """Return the writes one operation stands for, or None if it is no fast shape."""
    if path is None:
        if op == "remove" or not isinstance(value, dict):
            return None
        return _plan_object("", value)
    text = str(path)
    if op == "remove":
        if value is not None:
            return None
        return _plan_path(text, None, remove=True)
    if value is None and op == "add":
        return None
    return _plan_path(text, value, remove=False)


def _plan_path(text: str, value: Any, *, remove: bool) -> list[_Write] | None:
    leaf = _LEAVES.get(text.lower())
    if leaf is not None:
        keys, kind = leaf
        if value is None and keys == ("userName",):
            return None  # required: validation refuses it (mutability), not this module
        if value is not None and type(value) is not kind:
            return None
        return [_Set(keys, value)]
    complex_ = _COMPLEX.get(text.lower())
    if complex_ is not None:
        written, keys, allowed = complex_
        if value is None:
            return [_Set(keys, None)]
        if not isinstance(value, dict):
            return None
        return _plan_object(written + ".", value, allowed=allowed)
    match = _TYPE_FILTER.fullmatch(text)
    if match is None:
        return None
    attribute, type_value, sub = match.groups()
    multi = _MULTI.get(attribute.lower())
    if multi is None:
        return None
    if sub is None:
        # Only a removal of the selected entries; writing whole entries is left to the model.
        return [_Selected(multi[0], type_value, None, None, True)] if remove else None
    if remove or sub.lower() not in multi[1] or type(value) is not str:
        return None
    return [_Selected(multi[0], type_value, _SUB_NAMES[sub.lower()], value, False)]


def _plan_object(
    prefix: str, value: dict[str, Any], allowed: tuple[str, ...] | None = None
) -> list[_Write] | None:
    """Plan a value object written key by key under ``prefix`` ("" at the resource root)."""
    writes: list[_Write] = []
    for key, item in value.items():
        if not isinstance(key, str) or (allowed is not None and key.lower() not in allowed):
            return None
        if prefix == "" and key.lower() == ENTERPRISE_SCHEMA.lower():
            if not isinstance(item, dict) or not item:
                return None
            planned = _plan_object(ENTERPRISE_SCHEMA + ":", item)
        elif prefix == "" and key.lower() == "name" and isinstance(item, dict):
            planned = _plan_object("name.", item, allowed=_COMPLEX["name"][2])
        else:
            full = prefix + key
            if full.lower() not in _LEAVES and full.lower() not in _COMPLEX:
                return None
            planned = _plan_path(full, item, remove=False)
        if planned is None:
            return None
        writes.extend(planned)
    return writes


def _fits(doc: dict[str, Any], writes: list[_Write]) -> bool:
    """Whether the document is one the fast path writes exactly as scim2-models would."""
    for write in writes:
        if isinstance(write, _Selected):
            entries = doc.get(write.attribute) or []
            # Several primary values make scim2-models refuse any change to the attribute.
            if sum(1 for e in entries if isinstance(e, dict) and e.get("primary")) > 1:
                return False
    return True


def _apply(
    doc: dict[str, Any], operations: list[list[_Write]], *, create_unmatched: bool
) -> FastPatch:
    """Apply each operation's writes on a copy of ``doc``.

    Like scim2-models, a PATCH changed the user when one of its operations did, even if a
    later one undid it (its version then moves on). Writes copy each container they change
    and never change one in place, so a shallow copy keeps the state before an operation.
    """
    new = dict(doc)
    changed = False
    for writes in operations:
        before = dict(new)
        for write in writes:
            if isinstance(write, _Set):
                _set_leaf(new, write.keys, write.value)
            else:
                _write_selected(new, write, create_unmatched)
        changed = changed or new != before
    return FastPatch(new, changed)


def _set_leaf(doc: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    """Write a leaf (copying the containers on the way), or unassign it and prune empties."""
    containers = [doc]
    for key in keys[:-1]:
        current = containers[-1].get(key)
        if not isinstance(current, dict):
            if value is None:
                return  # nothing to unassign
            current = {}
        current = dict(current)
        containers[-1][key] = current
        containers.append(current)
    if value is None:
        containers[-1].pop(keys[-1], None)
    else:
        containers[-1][keys[-1]] = value
    # From the leaf's container outwards: an emptied complex attribute is no longer assigned.
    for depth in range(len(containers) - 1, -1, -1):
        container = containers[depth]
        if depth and not container:
            del containers[depth - 1][keys[depth - 1]]
        else:
            _reorder(container, keys[:depth])
    _sync_schemas(doc)


def _reorder(container: dict[str, Any], where: tuple[str, ...]) -> None:
    order = DUMP_ORDER.get(where)
    if order is None:
        return
    items = dict(container)
    container.clear()
    container.update({key: items.pop(key) for key in order if key in items})
    container.update(items)


def _sync_schemas(doc: dict[str, Any]) -> None:
    """List the enterprise schema in ``schemas`` exactly when the document holds its data."""
    schemas = list(doc.get("schemas") or [_CORE_SCHEMA])
    present = ENTERPRISE_SCHEMA in doc
    if present and ENTERPRISE_SCHEMA not in schemas:
        schemas.append(ENTERPRISE_SCHEMA)
    elif not present and ENTERPRISE_SCHEMA in schemas:
        schemas.remove(ENTERPRISE_SCHEMA)
    doc["schemas"] = schemas


def _write_selected(doc: dict[str, Any], write: _Selected, create_unmatched: bool) -> None:
    entries = [entry for entry in doc.get(write.attribute) or [] if isinstance(entry, dict)]
    wanted = _TYPE_COMPARABLE(write.type_value)
    selected = [
        index
        for index, entry in enumerate(entries)
        if isinstance(entry.get("type"), str) and _TYPE_COMPARABLE(entry["type"]) == wanted
    ]
    if write.remove:
        kept = [entry for index, entry in enumerate(entries) if index not in selected]
        if kept:
            doc[write.attribute] = kept
        else:
            doc.pop(write.attribute, None)
        return
    assert write.sub is not None
    if not selected:
        if not create_unmatched:
            raise NoTargetException(
                detail=f"no value of '{write.attribute}' matches the path filter"
            )
        created = {write.sub: write.value, "type": _entry_type(write.attribute, write.type_value)}
        _reorder(created, (write.attribute,))
        entries.append(created)
    for index in selected:
        entry = dict(entries[index])
        entry[write.sub] = write.value
        _reorder(entry, (write.attribute,))
        entries[index] = entry
    doc[write.attribute] = entries
    _reorder(doc, ())


_ENTRY_MODELS: dict[str, Any] = {"emails": Email, "phoneNumbers": PhoneNumber, "addresses": Address}


@lru_cache(maxsize=256)
def _entry_type(attribute: str, written: str) -> str:
    """Return the ``type`` an entry created from a filter holds: a canonical one in its case."""
    entry = _ENTRY_MODELS[attribute].model_validate({"type": written})
    return str(entry.model_dump()["type"])


def _email_values(doc: dict[str, Any]) -> list[str]:
    return [
        str(entry["value"])
        for entry in doc.get("emails") or []
        if isinstance(entry, dict) and entry.get("value") is not None
    ]


def empty_user_name_error() -> InvalidValueException:
    """Return the error of a PATCH that leaves the userName empty (as the model path gives)."""
    return InvalidValueException(detail="userName is required and must not be empty")
