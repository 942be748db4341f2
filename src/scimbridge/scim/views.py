"""The SCIM endpoints for users and groups: thin views over the provisioning service."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import request
from scim2_models import Context
from scim2_models import InvalidCountException
from scim2_models import InvalidValueException
from scim2_models import ResponseParameters
from scim2_models import SearchRequest

from ..domain.resources import StoredResource
from ..service.directory.provisioning import ProvisioningService
from .cursors import CursorCodec
from .cursors import query_fingerprint
from .filter_cost import check_filter
from .operations import MODELS
from .operations import create_resource
from .operations import delete_resource
from .operations import patch_resource
from .operations import replace_resource
from .quirks import ClientProfile
from .quirks import normalize_filter
from .requests import if_match
from .requests import json_body
from .requests import response_parameters
from .requests import scim_limits
from .requests import search_from_query
from .requests import user_name_lookup
from .responses import cursor_list_body
from .responses import list_body
from .responses import location
from .responses import member_refs
from .responses import resource_body
from .responses import scim_response
from .responses import wants_attribute

_MEMBERSHIP_ATTRIBUTE = {"User": "groups", "Group": "members"}


def _profile() -> ClientProfile:
    profile: ClientProfile = g.client_profile
    return profile


def _search_body(model: Any) -> SearchRequest[Any]:
    body = json_body()
    for key, value in body.items():
        # Member names are case-insensitive (RFC 7643 §2.1): "Filter" is the filter too.
        if key.lower() == "filter" and isinstance(value, str):
            check_filter(value, scim_limits())
            body[key] = normalize_filter(value, model, _profile())
    return SearchRequest[model].model_validate(body, scim_ctx=Context.SEARCH_REQUEST)


def _service() -> ProvisioningService:
    service: ProvisioningService = current_app.extensions["scimbridge"].provisioning
    return service


def _base_url() -> str:
    return str(current_app.extensions["scimbridge"].settings.scim_base_url)


def _single(
    record: StoredResource,
    params: ResponseParameters[Any] | None,
    status: int = 200,
    *,
    created: bool = False,
    base: str | None = None,
) -> Response:
    base = base or _base_url()
    headers = {"ETag": record.etag}
    if created:
        headers["Location"] = location(base, record.resource_type, record.id)
    return scim_response(resource_body(record, base, params), status, headers)


def list_resources(
    resource_type: str, search: SearchRequest[Any], *, strict: bool = True
) -> dict[str, Any]:
    """Run a search on one resource type and return its ListResponse body.

    Index paging (``startIndex``) unless the request names a ``cursor`` (RFC 9865).
    """
    if search.cursor is not None:
        return _cursor_page(resource_type, search)
    settings = current_app.extensions["scimbridge"].settings
    memberships = wants_attribute(search, _MEMBERSHIP_ATTRIBUTE[resource_type])
    page = _service().search(
        resource_type,
        search,
        default_count=settings.scim.default_page_size,
        max_count=settings.scim.max_page_size,
        memberships=memberships,
        strict=strict,
    )
    params = search if (search.attributes or search.excluded_attributes) else None
    base = _base_url()
    return list_body(
        page.total,
        page.start_index,
        [resource_body(record, base, params) for record in page.resources],
    )


def _user_name_page(user_name: str) -> dict[str, Any]:
    """Answer ``GET /Users?filter=userName eq "…"`` as :func:`list_resources` would."""
    limits = current_app.extensions["scimbridge"].settings.scim
    page = _service().search_user_name(
        user_name, default_count=limits.default_page_size, max_count=limits.max_page_size
    )
    base = _base_url()
    return list_body(
        page.total, page.start_index, [resource_body(record, base) for record in page.resources]
    )


def _cursor_page(resource_type: str, search: SearchRequest[Any]) -> dict[str, Any]:
    """Answer a cursor-paged search (RFC 9865) with its ListResponse and cursors."""
    assert search.cursor is not None
    if search.start_index is not None:
        raise InvalidValueException(
            detail="startIndex and cursor choose two ways of paging: send one of them"
        )
    limits = current_app.extensions["scimbridge"].settings.scim
    count = search.count if search.count is not None else limits.default_page_size
    if count > limits.max_page_size:
        raise InvalidCountException(
            detail=f"count must be between 0 and maxPageSize ({limits.max_page_size})"
        )
    codec: CursorCodec = current_app.extensions["scimbridge_cursors"]
    query = query_fingerprint(resource_type, search)
    position = codec.decode(search.cursor, query, count)
    page = _service().search_from(
        resource_type,
        search,
        position,
        count,
        memberships=wants_attribute(search, _MEMBERSHIP_ATTRIBUTE[resource_type]),
    )
    params = search if (search.attributes or search.excluded_attributes) else None
    base = _base_url()
    return cursor_list_body(
        page.total,
        [resource_body(record, base, params) for record in page.resources],
        next_cursor=codec.encode(query, count, page.next) if page.next else None,
        previous_cursor=codec.encode(query, count, page.previous) if page.previous else None,
    )


def register_resource_views(bp: Blueprint) -> None:
    """Add ``/Users`` and ``/Groups`` with every method RFC 7644 §3 defines."""
    for resource_type, endpoint in (("User", "Users"), ("Group", "Groups")):
        _register(bp, resource_type, endpoint)


def _register(bp: Blueprint, resource_type: str, endpoint: str) -> None:
    model = MODELS[resource_type]

    def create() -> Response:
        # Parameters first: a bad ``attributes`` must be refused before anything is written.
        params = response_parameters(model)
        record = create_resource(resource_type, json_body(), _profile())
        return _single(record, params, 201, created=True)

    def list_() -> Response:
        user_name = user_name_lookup() if resource_type == "User" else None
        if user_name is not None:
            return scim_response(_user_name_page(user_name))
        query = search_from_query(model, lambda text: normalize_filter(text, model, _profile()))
        return scim_response(list_resources(resource_type, query))

    def search() -> Response:
        return scim_response(list_resources(resource_type, _search_body(model)))

    def get(resource_id: str) -> Response:
        params = response_parameters(model)
        memberships = wants_attribute(params, _MEMBERSHIP_ATTRIBUTE[resource_type])
        base = _base_url()  # once: the member $refs and the answer's meta both use it
        record = _service().get(
            resource_type,
            resource_id,
            memberships=memberships,
            # Only a group's members are written by the database, with their $ref.
            member_refs=member_refs(base) if resource_type == "Group" else None,
        )
        if_none_match = request.environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match and record.etag.removeprefix("W/") in {
            tag.strip().removeprefix("W/") for tag in if_none_match.split(",")
        }:
            return scim_response(None, 304, {"ETag": record.etag})
        return _single(record, params, base=base)

    def replace(resource_id: str) -> Response:
        params = response_parameters(model)
        record = replace_resource(resource_type, resource_id, json_body(), if_match(), _profile())
        return _single(record, params)

    def patch(resource_id: str) -> Response:
        params = response_parameters(model)
        # Only a group response may leave members out; a user always comes back whole.
        wanted = resource_type == "User" or (
            params is not None and wants_attribute(params, "members")
        )
        record = patch_resource(
            resource_type, resource_id, json_body(), if_match(), _profile(), memberships=wanted
        )
        if resource_type == "User":
            return _single(record, params)
        if params is None:
            # RFC 7644 §3.5.2 allows 204; it spares sending every member back after a
            # member change, which would make a PATCH cost the size of the group.
            return scim_response(None, 204, {"ETag": record.etag})
        return _single(record, params)

    def delete(resource_id: str) -> Response:
        delete_resource(resource_type, resource_id, if_match())
        return scim_response(None, 204)

    prefix = f"/{endpoint}"
    name = endpoint.lower()
    bp.add_url_rule(prefix, f"{name}_create", create, methods=["POST"])
    bp.add_url_rule(prefix, f"{name}_list", list_, methods=["GET"])
    bp.add_url_rule(f"{prefix}/.search", f"{name}_search", search, methods=["POST"])
    bp.add_url_rule(f"{prefix}/<resource_id>", f"{name}_get", get, methods=["GET"])
    bp.add_url_rule(f"{prefix}/<resource_id>", f"{name}_replace", replace, methods=["PUT"])
    bp.add_url_rule(f"{prefix}/<resource_id>", f"{name}_patch", patch, methods=["PATCH"])
    bp.add_url_rule(f"{prefix}/<resource_id>", f"{name}_delete", delete, methods=["DELETE"])
