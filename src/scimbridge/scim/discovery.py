"""Discovery endpoints (RFC 7644 §4): what scimbridge supports, described by scim2-models."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from scim2_models import AuthenticationScheme
from scim2_models import Bulk
from scim2_models import ChangePassword
from scim2_models import Context
from scim2_models import ETag
from scim2_models import Filter
from scim2_models import NotFoundException
from scim2_models import Pagination
from scim2_models import Patch
from scim2_models import ResourceType
from scim2_models import ServiceProviderConfig
from scim2_models import Sort

from ..domain.enterprise import EnterpriseUser
from ..domain.resources import GroupResource
from ..domain.resources import User
from ..settings import Settings
from .responses import list_body
from .responses import scim_response
from .schemas import RESOURCE_TYPE_DESCRIPTIONS
from .schemas import schema_documents


def service_provider_config(settings: Settings) -> dict[str, Any]:
    """Return the ``ServiceProviderConfig`` document."""
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(
            supported=True,
            max_operations=settings.scim.max_bulk_operations,
            max_payload_size=settings.scim.max_payload_bytes,
        ),
        filter=Filter(supported=True, max_results=settings.scim.max_page_size),
        change_password=ChangePassword(supported=True),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        # RFC 9865 §4: both ways; index stays the default, so clients that page by
        # startIndex (every IdP today) see no change.
        pagination=Pagination(
            cursor=True,
            index=True,
            default_pagination_method="index",
            default_page_size=settings.scim.default_page_size,
            max_page_size=settings.scim.max_page_size,
            cursor_timeout=settings.scim.cursor_timeout_seconds,
        ),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A token created with `scimbridge token create NAME`.",
                primary=True,
            )
        ],
    )
    body = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{settings.scim_base_url}/ServiceProviderConfig",
    }
    return body


def _schemas(settings: Settings) -> list[dict[str, Any]]:
    bodies = []
    for body in schema_documents():
        body["meta"] = {
            "resourceType": "Schema",
            "location": f"{settings.scim_base_url}/Schemas/{body['id']}",
        }
        bodies.append(body)
    return bodies


def _resource_types(settings: Settings) -> list[dict[str, Any]]:
    bodies = []
    for model in (User[EnterpriseUser], GroupResource):
        body = ResourceType.from_resource(model).model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
        body["description"] = RESOURCE_TYPE_DESCRIPTIONS.get(body["id"], body.get("description"))
        body["meta"] = {
            "resourceType": "ResourceType",
            "location": f"{settings.scim_base_url}/ResourceTypes/{body['id']}",
        }
        bodies.append(body)
    return bodies


def register_discovery_views(bp: Blueprint) -> None:
    """Add ``/ServiceProviderConfig``, ``/ResourceTypes`` and ``/Schemas``."""

    def settings() -> Settings:
        value: Settings = current_app.extensions["scimbridge"].settings
        return value

    def _one(items: list[dict[str, Any]], item_id: str, kind: str) -> Response:
        for item in items:
            if item["id"] == item_id:
                return scim_response(item)
        raise NotFoundException(detail=f"no {kind} {item_id!r}")

    @bp.get("/ServiceProviderConfig")
    def get_service_provider_config() -> Response:
        return scim_response(service_provider_config(settings()))

    @bp.get("/Schemas")
    def list_schemas() -> Response:
        items = _schemas(settings())
        return scim_response(list_body(len(items), 1, items))

    @bp.get("/Schemas/<path:schema_id>")
    def get_schema(schema_id: str) -> Response:
        return _one(_schemas(settings()), schema_id, "schema")

    @bp.get("/ResourceTypes")
    def list_resource_types() -> Response:
        items = _resource_types(settings())
        return scim_response(list_body(len(items), 1, items))

    @bp.get("/ResourceTypes/<type_id>")
    def get_resource_type(type_id: str) -> Response:
        return _one(_resource_types(settings()), type_id, "resource type")
