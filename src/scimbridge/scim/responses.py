"""SCIM wire format of responses: resource bodies, list responses and errors."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson
from flask import Response
from scim2_models import Context
from scim2_models import Error
from scim2_models import ResponseParameters
from werkzeug.datastructures import Headers
from werkzeug.urls import iri_to_uri

from ..domain.enterprise import ENTERPRISE_SCHEMA
from ..domain.lifecycle_schema import LIFECYCLE_SCHEMA
from ..domain.resources import Membership
from ..domain.resources import StoredResource
from ..service.directory.mapping import meta
from ..service.directory.mapping import scim_timestamp
from ..service.directory.mapping import to_model

SCIM_MEDIA_TYPE = "application/scim+json"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

ENDPOINTS = {"User": "Users", "Group": "Groups"}


class ScimResponse(Response):
    """A SCIM answer, whose WSGI headers skip werkzeug's work when it would change nothing.

    werkzeug passes every ``Location`` through ``iri_to_uri`` (a URL parse and four quote
    calls) as the response is sent, and copies the headers into a new ``Headers`` (checking
    each value again) only to list them: on a create that was a tenth of the time spent
    outside the view. The ``Location`` of a SCIM resource is the base URL, the endpoint and
    the id; when the two first are already a URI and the id is made of unreserved
    characters, the header is its own URI. A response werkzeug would change in any way (a
    non-ASCII public URL or id, 204, 304, a Content-Location) takes werkzeug's way.
    """

    def get_wsgi_headers(self, environ: Any) -> Headers:
        """Return the headers werkzeug would send, sparing the work that changes nothing."""
        if self._sent_as_is():
            return Headers(self.headers)
        return super().get_wsgi_headers(environ)

    def get_wsgi_response(self, environ: Any) -> tuple[Any, str, list[tuple[str, str]]]:
        """Return werkzeug's ``(app_iter, status, headers)``, listing the headers directly."""
        if self._sent_as_is():
            return self.get_app_iter(environ), self.status, self.headers.to_wsgi_list()
        return super().get_wsgi_response(environ)

    def _sent_as_is(self) -> bool:
        """Whether werkzeug's ``get_wsgi_headers`` would give back exactly these headers."""
        status = self.status_code
        # What werkzeug adds or removes: Content-Length when missing, none on 1xx/204/304.
        if not 200 <= status < 300 or status == 204:
            return False
        location = content_length = None
        for key, value in self.headers:
            lowered = key.lower()
            if lowered == "location":
                if location is not None:  # werkzeug keeps one of them
                    return False
                location = value
            elif lowered == "content-length":
                content_length = value
            elif lowered == "content-location":
                return False
        return content_length is not None and _already_uri(location)


# Characters a URI path segment carries as they are (RFC 3986 §2.3): ids are made of these.
_UNRESERVED_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_uri_prefixes: dict[str, bool] = {}
"""Whether a ``Location`` up to its last segment is its own URI, per prefix met (a few)."""
_URI_PREFIXES_LIMIT = 64


def _already_uri(location: str | None) -> bool:
    """Whether werkzeug's ``iri_to_uri`` would give ``location`` back unchanged (or no header).

    Answers yes only when sure: the last path segment is unreserved characters and what
    precedes it, an absolute URL without query or fragment, is its own URI. Appending such
    a segment to such a path leaves every part of the URL as ``iri_to_uri`` rebuilds it.
    """
    if location is None:
        return True
    prefix, _, segment = location.rpartition("/")
    if not _UNRESERVED_SEGMENT.fullmatch(segment) or segment in (".", ".."):
        return False
    known = _uri_prefixes.get(prefix)
    if known is None:
        known = _is_uri_prefix(prefix)
        if len(_uri_prefixes) < _URI_PREFIXES_LIMIT:
            _uri_prefixes[prefix] = known
    return known


def _is_uri_prefix(prefix: str) -> bool:
    """Whether ``prefix`` is an absolute URL, without query or fragment, that is its own URI."""
    if "?" in prefix or "#" in prefix:
        return False
    try:
        parts = urlsplit(prefix)
        return bool(parts.scheme and parts.netloc) and iri_to_uri(prefix) == prefix
    except (ValueError, UnicodeError):  # werkzeug's own way will meet (and answer) it
        return False


def scim_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize a SCIM body (already a JSON-ready dict) into a response."""
    payload = orjson.dumps(body) if body is not None else b""
    return ScimResponse(payload, status=status, headers=headers, content_type=SCIM_MEDIA_TYPE)


def error_response(error: Error, headers: dict[str, str] | None = None) -> Response:
    """Serialize a SCIM ``Error`` message."""
    status = error.status or 500
    body = error.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body["status"] = str(status)
    return scim_response(body, status, headers)


def location(base_url: str, resource_type: str, resource_id: str) -> str:
    """Return the absolute URL of a resource."""
    return f"{base_url}/{ENDPOINTS[resource_type]}/{resource_id}"


def member_refs(base_url: str) -> dict[str, str]:
    """Return, per resource type, the URL an id is appended to for its ``$ref``."""
    return {
        resource_type: f"{base_url}/{endpoint}/" for resource_type, endpoint in ENDPOINTS.items()
    }


def wants_attribute(params: ResponseParameters[Any] | None, name: str) -> bool:
    """Whether a response under these parameters may carry attribute ``name``.

    Used to skip loading ``members`` or ``groups`` that the client will not see.
    """
    if params is None:
        return True
    lowered = name.lower()
    if params.excluded_attributes and any(
        str(attr).lower().split(":")[-1].split(".")[0] == lowered
        for attr in params.excluded_attributes
    ):
        return False
    if params.attributes:
        return any(
            str(attr).lower().split(":")[-1].split(".")[0] == lowered for attr in params.attributes
        )
    return True


def _lifecycle(record: StoredResource) -> dict[str, Any]:
    state: dict[str, Any] = {
        "status": record.status,
        "passwordChangeRequired": record.password_change_required,
    }
    if record.last_login is not None:
        state["lastLogin"] = scim_timestamp(record.last_login)
    if record.invitation is not None:
        state["invitationSent"] = scim_timestamp(record.invitation[0])
        state["invitationExpires"] = scim_timestamp(record.invitation[1])
    return state


def _membership(membership: Membership, base_url: str, key: str) -> dict[str, Any]:
    entry = {
        "value": membership.id,
        "$ref": f"{base_url}/{ENDPOINTS[membership.type]}/{membership.id}",
        "type": membership.kind if key == "groups" else membership.type,
    }
    if membership.display:
        entry["display"] = membership.display
    return entry


def resource_body(
    record: StoredResource,
    base_url: str,
    params: ResponseParameters[Any] | None = None,
) -> dict[str, Any]:
    """Return the SCIM representation of a stored resource.

    Without ``attributes``/``excludedAttributes`` the stored document already is the
    query-response form, so it is completed with the store-managed fields and sent as it is;
    otherwise scim2-models selects the attributes.
    """
    url = location(base_url, record.resource_type, record.id)
    body: dict[str, Any] = {**record.doc, "id": record.id, "meta": meta(record, url)}
    manager_filled = _fill_manager_ref(body, base_url)
    if record.memberships:
        key = "groups" if record.resource_type == "User" else "members"
        body[key] = [_membership(membership, base_url, key) for membership in record.memberships]
    whole = params is None or not (params.attributes or params.excluded_attributes)
    if record.members_json is not None:
        # The database wrote the array as _membership would: sent as it is, or read back
        # into the dicts scim2-models selects attributes from.
        members = record.members_json
        body["members"] = orjson.Fragment(members) if whole else orjson.loads(members)
    if whole:
        return body
    if record.status is not None:
        # Only a request naming it in ``attributes`` gets it back (returned: request).
        body["schemas"] = [*body.get("schemas", []), LIFECYCLE_SCHEMA]
        body[LIFECYCLE_SCHEMA] = _lifecycle(record)
    model = to_model(record, url)
    if record.memberships or record.members_json or record.status is not None or manager_filled:
        model = type(model).model_validate(body)
    return model.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params)


def _fill_manager_ref(body: dict[str, Any], base_url: str) -> bool:
    """Give an enterprise ``manager`` sent by ``value`` alone its ``$ref`` (RFC 7643 §4.3).

    The reference is derived on output rather than stored, so it follows the public URL.
    Return whether the body was changed.
    """
    extension = body.get(ENTERPRISE_SCHEMA)
    if not isinstance(extension, dict):
        return False
    manager = extension.get("manager")
    if not isinstance(manager, dict) or not manager.get("value") or manager.get("$ref"):
        return False
    body[ENTERPRISE_SCHEMA] = {
        **extension,
        "manager": {**manager, "$ref": location(base_url, "User", str(manager["value"]))},
    }
    return True


def list_body(total: int, start_index: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a ``ListResponse`` message."""
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def cursor_list_body(
    total: int,
    resources: list[dict[str, Any]],
    *,
    next_cursor: str | None,
    previous_cursor: str | None,
) -> dict[str, Any]:
    """Return a cursor-paged ``ListResponse`` (RFC 9865 §2).

    It has no ``startIndex``, and a ``nextCursor`` on every page but the last.
    """
    body: dict[str, Any] = {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
    if next_cursor is not None:
        body["nextCursor"] = next_cursor
    if previous_cursor is not None:
        body["previousCursor"] = previous_cursor
    return body
