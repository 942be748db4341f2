"""Client profiles: the known deviations of identity providers from RFC 7644, in one place.

Each bearer token carries a profile. Before a request reaches scim2-models, its raw JSON (or
filter) is read here: a deviation the profile tolerates is rewritten into its RFC form and
logged with the token name and the deviation kind; a deviation it does not tolerate is
refused with the SCIM error the RFC reading gives. Deviations scim2-models knows how to
tolerate itself are switched on through its ``ScimPolicy`` instead of being rewritten.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from typing import get_args

from scim2_models import InvalidFilterException
from scim2_models import InvalidPathException
from scim2_models import InvalidSyntaxException
from scim2_models import InvalidValueException
from scim2_models import Mutability
from scim2_models import Path
from scim2_models import Required
from scim2_models import SCIMException
from scim2_models import ScimFilter
from scim2_models import ScimPolicy

from ..domain.emails import is_email_address
from ..service.operations.metrics import instruments

log = logging.getLogger(__name__)

ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class Deviation(StrEnum):
    """A known way an identity provider departs from RFC 7644."""

    OP_CASE = "op-case"
    """PATCH ``op`` written ``Add``/``Replace``/``Remove`` (Entra)."""

    STRING_BOOLEAN = "string-boolean"
    """A boolean sent as the string ``"True"``/``"False"`` (Entra, legacy behaviour)."""

    ATTRIBUTE_PATH_KEYS = "attribute-path-keys"
    """A path-less PATCH value whose keys are attribute paths (``name.givenName``,
    ``urn:…:enterprise:2.0:User:employeeNumber``) rather than attribute names (Entra)."""

    REMOVE_WITH_VALUE = "remove-with-value"
    """A ``remove`` naming what to remove in ``value`` (``path: members``) (Entra)."""

    UNMATCHED_FILTER_CREATES = "unmatched-filter-creates"
    """``emails[type eq "work"].value`` on a user with no work email, expected to create it
    (Entra)."""

    UNQUOTED_FILTER_VALUE = "unquoted-filter-value"
    """A filter comparing with an unquoted string: ``externalId eq jyoung`` (Entra)."""

    MANAGER_AS_STRING = "manager-as-string"
    """The enterprise ``manager`` set to the manager's id instead of ``{"value": id}``
    (Entra)."""

    UNKNOWN_SCHEMA_URI = "unknown-schema-uri"
    """A resource listing a schema URI scimbridge does not define and carrying no data
    under it (Entra's ``…/ADSCIM/2.0/Group``)."""

    EXTRA_OPERATION_KEYS = "extra-operation-keys"
    """PATCH operations carrying members other than ``op``, ``path`` and ``value``."""

    EXTENSION_WITHOUT_URN = "extension-without-urn"
    """An extension attribute named without its schema URN (``path: manager``,
    ``employeeNumber``) where exactly one extension has it (Entra, Microsoft's samples)."""

    SINGLE_VALUE_AS_LIST = "single-value-as-list"
    """A single-valued complex attribute written as a one-entry list: Microsoft's documented
    ``{"op": "Add", "path": "manager", "value": [{"$ref": …, "value": …}]}``."""

    EMPTY_STRING_CLEARS = "empty-string-clears"
    """``""`` written to an optional attribute by PATCH add/replace, meaning "clear it"
    (Entra's null update): ``emails[type eq "work"].value`` = ``""`` removes that email."""

    EMAIL_NOT_AN_ADDRESS = "email-not-an-address"
    """An email value that is no address (Entra's validator writes ``upd-…``): stored, never
    mailed."""


_ENTRA = frozenset(Deviation)
PROFILE_TOLERANCES: dict[str, frozenset[Deviation]] = {
    "strict": frozenset(),
    "entra": _ENTRA,
    # Okta follows the RFC for what scimbridge reads (its rename-with-id and path-less
    # active=false are valid RFC 7644); the extra keys are the one slip seen in its traffic.
    "okta": frozenset({Deviation.EXTRA_OPERATION_KEYS}),
    "generic": frozenset(Deviation),
}

_REFUSALS: dict[Deviation, type[SCIMException]] = {
    Deviation.OP_CASE: InvalidValueException,
    Deviation.STRING_BOOLEAN: InvalidValueException,
    Deviation.ATTRIBUTE_PATH_KEYS: InvalidPathException,
    Deviation.REMOVE_WITH_VALUE: InvalidValueException,
    Deviation.UNQUOTED_FILTER_VALUE: InvalidFilterException,
    Deviation.MANAGER_AS_STRING: InvalidValueException,
    Deviation.EXTRA_OPERATION_KEYS: InvalidValueException,
    Deviation.UNKNOWN_SCHEMA_URI: InvalidSyntaxException,
    Deviation.EXTENSION_WITHOUT_URN: InvalidPathException,
    Deviation.EMPTY_STRING_CLEARS: InvalidValueException,
    Deviation.SINGLE_VALUE_AS_LIST: InvalidValueException,
    Deviation.EMAIL_NOT_AN_ADDRESS: InvalidValueException,
}

_OPERATION_KEYS = {"op", "path", "value"}
_BOOLEAN_STRINGS = {"true": True, "false": False}


_LOGGED_DEVIATIONS: set[tuple[str, Deviation]] = set()
"""(token name, deviation) pairs this process has logged at INFO."""


_deviation_counters: dict[tuple[Deviation, str], Any] = {}
"""The metrics counter of each (deviation, verdict) met so far.

prometheus-client's ``labels()`` checks and locks on every call, and an Entra deactivation
meets two deviations; the label sets are few and fixed, so each is looked up once."""


def _deviation_counter(deviation: Deviation, verdict: str) -> Any:
    counter = _deviation_counters.get((deviation, verdict))
    if counter is None:
        counter = instruments().scim_deviations.labels(deviation.value, verdict)
        counter = _deviation_counters.setdefault((deviation, verdict), counter)
    return counter


@dataclass
class ClientProfile:
    """The profile of the token a request came with, and the deviations it has met."""

    token_name: str
    name: str = "strict"
    seen: list[Deviation] = field(default_factory=list)
    refused: list[Deviation] = field(default_factory=list)
    """Deviations the profile did not accept (the request was refused for the first)."""
    counted: tuple[int, int] = (0, 0)
    """How many of ``seen`` and ``refused`` are counted already (both lists only grow)."""

    def has_uncounted(self) -> bool:
        """Whether any deviation met is not counted yet (nearly every request: none met)."""
        return len(self.seen) > self.counted[0] or len(self.refused) > self.counted[1]

    def uncounted(self) -> tuple[list[str], list[str]]:
        """Return the names of the deviations met and not yet counted: (tolerated, refused)."""
        return (
            [deviation.value for deviation in self.seen[self.counted[0] :]],
            [deviation.value for deviation in self.refused[self.counted[1] :]],
        )

    @property
    def tolerances(self) -> frozenset[Deviation]:
        """The deviations this profile accepts."""
        return PROFILE_TOLERANCES.get(self.name, frozenset())

    def tolerates(self, deviation: Deviation) -> bool:
        """Whether this profile accepts ``deviation``."""
        return deviation in self.tolerances

    def meet(self, deviation: Deviation, detail: str) -> None:
        """Accept a tolerated deviation (logged), or refuse the request with a SCIM error."""
        if not self.tolerates(deviation):
            _deviation_counter(deviation, "refused").inc()
            if deviation not in self.refused:
                self.refused.append(deviation)
            raise _REFUSALS.get(deviation, InvalidValueException)(
                detail=f"{detail} (not RFC 7644: {deviation.value})"
            )
        _deviation_counter(deviation, "tolerated").inc()
        if deviation not in self.seen:
            self.seen.append(deviation)
            # Every request's deviations are counted (the admin Provisioning page); the log
            # says each kind once per token and process, as an IdP sends the same ones on
            # every request (Entra: two on each deactivation).
            first = (self.token_name, deviation) not in _LOGGED_DEVIATIONS
            _LOGGED_DEVIATIONS.add((self.token_name, deviation))
            log.log(
                logging.INFO if first else logging.DEBUG,
                "tolerated SCIM deviation %s from token %r (profile %s): %s",
                deviation.value,
                self.token_name,
                self.name,
                detail,
            )

    @property
    def policy(self) -> ScimPolicy:
        """The scim2-models policy this profile validates and applies PATCH requests under."""
        return ScimPolicy(
            remove_value_as_filter=(
                ScimPolicy.RemoveValue.apply
                if self.tolerates(Deviation.REMOVE_WITH_VALUE)
                else ScimPolicy.RemoveValue.forbid
            ),
        )

    @property
    def unmatched_filter_policy(self) -> ScimPolicy | None:
        """The policy to retry a PATCH with when its path filter matched nothing, if any."""
        if not self.tolerates(Deviation.UNMATCHED_FILTER_CREATES):
            return None
        return ScimPolicy(
            remove_value_as_filter=self.policy.remove_value_as_filter,
            unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
        )

    def note_unmatched_filter(self, detail: str) -> None:
        """Record that a PATCH needed the filter-creates-entry tolerance."""
        self.meet(Deviation.UNMATCHED_FILTER_CREATES, detail)

    def admit_email_values(self, values: Iterable[str]) -> None:
        """Accept the email values a write adds, or refuse those that are no address."""
        for value in values:
            if not is_email_address(value):
                self.meet(Deviation.EMAIL_NOT_AN_ADDRESS, f"email value {value!r}")


# -- PATCH bodies ----------------------------------------------------------------------------


def normalize_patch(body: dict[str, Any], model: Any, profile: ClientProfile) -> dict[str, Any]:
    """Rewrite the tolerated deviations of a PATCH body into RFC form; refuse the others."""
    operations = _get_case_insensitive(body, "Operations")
    if not isinstance(operations, list):
        return body
    normalized: list[Any] = []
    for operation in operations:
        if not isinstance(operation, dict):
            normalized.append(operation)
            continue
        normalized.extend(_normalize_operation(dict(operation), model, profile))
    return {
        **{k: v for k, v in body.items() if k.lower() != "operations"},
        "Operations": normalized,
    }


def _normalize_operation(
    operation: dict[str, Any], model: Any, profile: ClientProfile
) -> list[dict[str, Any]]:
    """Return the RFC form of one operation: itself, or the operations it stands for."""
    extra = [key for key in operation if key.lower() not in _OPERATION_KEYS]
    if extra:
        profile.meet(Deviation.EXTRA_OPERATION_KEYS, f"operation members {extra}")
        operation = {key: value for key, value in operation.items() if key not in extra}
    operation = {key.lower(): value for key, value in operation.items()}
    op = operation.get("op")
    if isinstance(op, str) and op != op.lower() and op.lower() in ("add", "replace", "remove"):
        profile.meet(Deviation.OP_CASE, f"op {op!r}")
        operation["op"] = op.lower()
    path = operation.get("path")
    value = operation.get("value")
    if operation.get("op") == "remove" and value is not None:
        profile.meet(Deviation.REMOVE_WITH_VALUE, f"remove on {path!r} with a value")
    writes = operation.get("op") in ("add", "replace")
    if isinstance(path, str):
        path = operation["path"] = qualify_extension_attribute(path, model, profile)
        if writes and value == "":
            cleared = _clearing(path, model, profile)
            if cleared is not None:
                return [cleared]
        if "value" in operation:
            # A remove names no value: leave none, rather than a null the RFC never sent.
            operation["value"] = _normalize_value_at(path, value, model, profile)
    elif isinstance(value, dict):
        kept, clears = _normalize_pathless_value(value, model, profile, clearing=writes)
        if clears and not kept:
            return clears
        operation["value"] = kept
        return [operation, *clears]
    return [operation]


def _normalize_pathless_value(
    value: dict[str, Any], model: Any, profile: ClientProfile, *, clearing: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return a path-less value in RFC form, and the remove operations its ``""`` stand for."""
    normalized: dict[str, Any] = {}
    clears: list[dict[str, Any]] = []
    for key, item in value.items():
        if "." in key.rsplit(":", 1)[-1] or (
            key.lower().startswith("urn:") and _is_attribute_urn(key, model)
        ):
            profile.meet(Deviation.ATTRIBUTE_PATH_KEYS, f"value key {key!r}")
        key = qualify_extension_attribute(key, model, profile)
        if clearing and item == "":
            cleared = _clearing(key, model, profile)
            if cleared is not None:
                clears.append(cleared)
                continue
        normalized[key] = _normalize_value_at(key, item, model, profile)
    return normalized, clears


def _clearing(path: str, model: Any, profile: ClientProfile) -> dict[str, Any] | None:
    """Return the remove operation that ``""`` written at ``path`` means, if it clears.

    Only a profile tolerating it reads ``""`` so; otherwise the value stays as sent and is
    validated as any other (a string attribute stores it, an email or a boolean refuses it).
    A required attribute is never cleared. Clearing the ``value`` of a multi-valued entry
    (``emails[type eq "work"].value``) removes the entries it selects, as an email without
    an address means nothing.
    """
    if not profile.tolerates(Deviation.EMPTY_STRING_CLEARS):
        return None
    binding = _resolve(path, model)
    if binding is None or _is_required(binding):
        return None
    profile.meet(Deviation.EMPTY_STRING_CLEARS, f"{path} = ''")
    target = path
    if binding.is_multivalued and (binding.sub_field_name or "") == "value":
        target = re.sub(r"\.value$", "", path, flags=re.IGNORECASE)
    return {"op": "remove", "path": target}


def _is_required(binding: Any) -> bool:
    """Whether the attribute (or sub-attribute) a path binds to is required."""
    owner, name = binding.model, binding.field_name
    if binding.sub_field_name is not None and binding.field_type is not None:
        owner, name = binding.field_type, binding.sub_field_name
    return bool(owner.get_field_annotation(name, Required) == Required.true)


def qualify_extension_attribute(path: str, model: Any, profile: ClientProfile) -> str:
    """Prefix an extension attribute named without its schema URN with that URN.

    RFC 7644 §3.10 names extension attributes by their URN; Entra and Microsoft's samples
    write ``manager`` or ``employeeNumber`` alone. The name is qualified only when the
    resource's own schema does not have it and exactly one writable extension does.
    """
    if path.lower().startswith("urn:") or _resolve(path, model) is not None:
        return path
    name = re.split(r"[.\[]", path, maxsplit=1)[0].lower()
    owners = _extension_attributes(model).get(name, ())
    if len(owners) != 1:
        return path
    qualified = f"{owners[0]}:{path}"
    if _resolve(qualified, model) is None:
        return path
    profile.meet(Deviation.EXTENSION_WITHOUT_URN, f"{path!r} for {qualified!r}")
    return qualified


@lru_cache(maxsize=64)
def _extension_attributes(model: Any) -> dict[str, tuple[str, ...]]:
    """Map each lower-cased attribute name of a model's writable extensions to their URNs."""
    owners: dict[str, list[str]] = {}
    for urn, extension in getattr(model, "get_extension_models", dict)().items():
        for field_name, info in extension.model_fields.items():
            if field_name == "schemas":
                continue
            if extension.get_field_annotation(field_name, Mutability) == Mutability.read_only:
                continue
            scim_name = (info.serialization_alias or info.alias or field_name).lower()
            owners.setdefault(scim_name, []).append(str(urn))
    return {name: tuple(urns) for name, urns in owners.items()}


def _schema_uris(model: Any) -> set[str]:
    """Return the schema URIs (lower-case) of a resource model and its extensions."""
    schemas = {str(model.__schema__).lower()}
    schemas.update(urn.lower() for urn in getattr(model, "get_extension_models", dict)())
    return schemas


def _is_attribute_urn(key: str, model: Any) -> bool:
    """Whether a key is a fully qualified attribute (``urn:…:User:employeeNumber``)."""
    return key.lower() not in _schema_uris(model)


def _normalize_value_at(path: str, value: Any, model: Any, profile: ClientProfile) -> Any:
    """Fix the value written at ``path``: string booleans, manager by id, one-entry lists."""
    binding = _resolve(path, model)
    if binding is None:
        return value
    if (
        not binding.is_multivalued
        and binding.sub_field_name is None
        and isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], dict)
    ):
        profile.meet(Deviation.SINGLE_VALUE_AS_LIST, f"{path} set to a one-entry list")
        value = value[0]
    if (
        binding.field_name == "manager"
        and binding.sub_field_name is None
        and isinstance(value, str)
    ):
        profile.meet(Deviation.MANAGER_AS_STRING, f"{path} set to a plain string")
        return {"value": value}
    return _fix_booleans(value, binding.target_type, profile, path)


def _fix_booleans(value: Any, target: Any, profile: ClientProfile, path: str) -> Any:
    if target is bool:
        return _as_boolean(value, profile, path)
    model = target if isinstance(target, type) and hasattr(target, "model_fields") else None
    if model is None:
        return value
    if isinstance(value, list):
        return [_fix_model_booleans(item, model, profile, path) for item in value]
    return _fix_model_booleans(value, model, profile, path)


def _fix_model_booleans(value: Any, model: Any, profile: ClientProfile, path: str) -> Any:
    if not isinstance(value, dict):
        return value
    fixed = dict(value)
    for key, item in value.items():
        if _is_boolean_field(model, key):
            fixed[key] = _as_boolean(item, profile, f"{path}.{key}")
    return fixed


def _is_boolean_field(model: Any, key: str) -> bool:
    """Whether a complex attribute's sub-attribute ``key`` (any case) is a boolean."""
    return key.lower() in _boolean_fields(model)


@lru_cache(maxsize=256)
def _boolean_fields(model: Any) -> frozenset[str]:
    """Return the lower-cased names of a model's boolean attributes (cached: asked per value)."""
    return frozenset(
        (info.serialization_alias or info.alias or name).lower()
        for name, info in model.model_fields.items()
        if info.annotation is bool or bool in get_args(info.annotation)
    )


def _as_boolean(value: Any, profile: ClientProfile, path: str) -> Any:
    if isinstance(value, str) and value.lower() in _BOOLEAN_STRINGS:
        profile.meet(Deviation.STRING_BOOLEAN, f"{path} = {value!r}")
        return _BOOLEAN_STRINGS[value.lower()]
    return value


@lru_cache(maxsize=4096)
def _resolve(path: str, resource_model: Any) -> Any:
    """Resolve a PATCH path or attribute key on the resource model; None when it names none.

    Cached: clients send the same few paths over and over, and resolution is pure.
    """
    try:
        return Path[resource_model](path).resolve()
    except (SCIMException, ValueError, TypeError):
        return None


# -- resource bodies and filters ---------------------------------------------------------------


def normalize_resource(body: dict[str, Any], model: Any, profile: ClientProfile) -> dict[str, Any]:
    """Fix string booleans (``"active": "True"``) and unknown empty schema URIs of a POST/PUT."""
    body = canonical_schema_uris(body, model)
    fixed = dict(body)
    schemas = _get_case_insensitive(body, "schemas")
    if isinstance(schemas, list):
        known = _schema_uris(model)
        keys = {key.lower() for key in body}
        unknown = [
            uri
            for uri in schemas
            if isinstance(uri, str) and uri.lower() not in known and uri.lower() not in keys
        ]
        if unknown:
            profile.meet(Deviation.UNKNOWN_SCHEMA_URI, f"schemas {unknown}")
            schemas_key = next(key for key in body if key.lower() == "schemas")
            fixed[schemas_key] = [uri for uri in schemas if uri not in unknown]
    for key, value in body.items():
        if key.lower() == "schemas" or (key.lower().startswith("urn:") and isinstance(value, dict)):
            continue
        binding = _resolve(key, model)
        if binding is None:
            continue
        fixed[key] = _fix_booleans(value, binding.target_type, profile, key)
    return fixed


def canonical_schema_uris(body: dict[str, Any], model: Any) -> dict[str, Any]:
    """Spell the schema URNs of a resource body (``schemas`` and extension keys) canonically.

    RFC 7643 §2.1 makes attribute names case-insensitive, and a URN is the prefix of the
    fully qualified name of every attribute of its schema: ``URN:…:ENTERPRISE:2.0:USER``
    names the enterprise extension. This is RFC behaviour for every profile, not a tolerance.
    """
    canonical = {uri.lower(): uri for uri in _schema_uri_spellings(model)}
    fixed: dict[str, Any] = {}
    for key, value in body.items():
        lowered = key.lower()
        if lowered == "schemas" and isinstance(value, list):
            fixed["schemas"] = [
                canonical.get(uri.lower(), uri) if isinstance(uri, str) else uri for uri in value
            ]
        else:
            fixed[canonical.get(lowered, key)] = value
    return fixed


@lru_cache(maxsize=64)
def _schema_uri_spellings(model: Any) -> tuple[str, ...]:
    """Return the schema URIs of a resource model and its extensions, as they are written."""
    extensions: dict[str, Any] = getattr(model, "get_extension_models", dict)()
    return (str(model.__schema__), *(str(urn) for urn in extensions))


# An unquoted comparison value: anything but a quoted string, a number, true/false/null.
_UNQUOTED_VALUE = re.compile(
    r"""(?P<lead>\b(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)(?P<value>(?!true\b|false\b|null\b)"""
    r"""[^\s"()\[\]]+)""",
    re.IGNORECASE,
)


def normalize_filter(text: str, model: Any, profile: ClientProfile) -> str:
    """Quote unquoted string values in a filter the RFC grammar would reject."""
    if not _UNQUOTED_VALUE.search(text):
        return text  # nothing a repair could quote: spare parsing the filter twice
    try:
        ScimFilter(text)
        return text
    except SCIMException:
        pass

    def quote(match: re.Match[str]) -> str:
        value = match.group("value")
        if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", value):
            return match.group(0)
        return match.group("lead") + ScimFilter.quote(value)

    repaired = _UNQUOTED_VALUE.sub(quote, text)
    if repaired == text:
        return text
    try:
        ScimFilter(repaired)
    except SCIMException:
        return text
    profile.meet(Deviation.UNQUOTED_FILTER_VALUE, f"filter {text!r}")
    return repaired


def _get_case_insensitive(body: dict[str, Any], name: str) -> Any:
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return None
