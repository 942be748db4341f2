"""``POST /Bulk`` (RFC 7644 §3.7): many operations in one request, with bulkId references.

Each operation runs exactly as the same request sent alone (its own transaction, the same
client-profile tolerances and errors). An operation whose data refers to a ``bulkId`` that
another operation of the request creates later is run after it (RFC 7644 §3.7.2).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from pydantic import ValidationError
from scim2_models import Error
from scim2_models import InvalidSyntaxException
from scim2_models import InvalidValueException
from scim2_models import PayloadTooLargeException
from scim2_models import SCIMException

from .errors import scim_error_from_validation
from .operations import create_resource
from .operations import delete_resource
from .operations import patch_resource
from .operations import replace_resource
from .requests import json_body
from .responses import ENDPOINTS
from .responses import location
from .responses import scim_response

BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

_RESOURCE_TYPES = {endpoint.lower(): resource_type for resource_type, endpoint in ENDPOINTS.items()}
_BULK_ID = re.compile(r"^bulkId:(?P<id>.+)$")


class _Unresolved(Exception):
    """The operation refers to a bulkId no operation has created (yet)."""

    def __init__(self, bulk_id: str) -> None:
        super().__init__(bulk_id)
        self.bulk_id = bulk_id


def _resolve(value: Any, created: dict[str, str]) -> Any:
    """Replace every ``bulkId:<id>`` string in ``value`` by the id it created."""
    if isinstance(value, str):
        match = _BULK_ID.match(value)
        if match is None:
            return value
        bulk_id = match.group("id")
        if bulk_id not in created:
            raise _Unresolved(bulk_id)
        return created[bulk_id]
    if isinstance(value, list):
        return [_resolve(item, created) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item, created) for key, item in value.items()}
    return value


def _target(path: Any, method: str, created: dict[str, str]) -> tuple[str, str | None]:
    """Return the resource type and id an operation's ``path`` names."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidValueException(detail=f"operation path must be like /Users/<id>, got {path!r}")
    parts = path.strip("/").split("/")
    resource_type = _RESOURCE_TYPES.get(parts[0].lower())
    if resource_type is None or len(parts) > 2:
        raise InvalidValueException(detail=f"no resource endpoint at {path!r}")
    resource_id = _resolve(parts[1], created) if len(parts) == 2 else None
    if (method == "POST") != (resource_id is None):
        raise InvalidValueException(detail=f"{method} cannot target {path!r}")
    return resource_type, resource_id


def _run(operation: dict[str, Any], created: dict[str, str]) -> dict[str, Any]:
    """Run one operation and return its entry of the BulkResponse."""
    method = str(operation.get("method", "")).upper()
    bulk_id = operation.get("bulkId")
    result: dict[str, Any] = {"method": method}
    if bulk_id is not None:
        result["bulkId"] = bulk_id
    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        raise InvalidValueException(detail=f"unsupported bulk method {operation.get('method')!r}")
    if method == "POST" and not isinstance(bulk_id, str):
        raise InvalidValueException(detail="a POST operation needs a bulkId")
    resource_type, resource_id = _target(operation.get("path"), method, created)
    data = _resolve(operation.get("data"), created)
    if method != "DELETE" and not isinstance(data, dict):
        raise InvalidSyntaxException(detail=f"{method} operation needs a data object")
    if_match = operation.get("version")
    if if_match is not None and not isinstance(if_match, str):
        raise InvalidValueException(detail="an operation's version must be an ETag string")
    profile = g.client_profile
    base_url = current_app.extensions["scimbridge"].settings.scim_base_url
    if method == "DELETE":
        assert resource_id is not None
        delete_resource(resource_type, resource_id, if_match)
        result["status"] = "204"
        return result
    if method == "POST":
        assert isinstance(bulk_id, str)
        record = create_resource(resource_type, data, profile)
        created[bulk_id] = record.id
        status = "201"
    elif method == "PUT":
        assert resource_id is not None
        record = replace_resource(resource_type, resource_id, data, if_match, profile)
        status = "200"
    else:
        assert resource_id is not None
        record = patch_resource(
            resource_type, resource_id, data, if_match, profile, memberships=False
        )
        status = "200"
    result.update(
        location=location(base_url, resource_type, record.id),
        version=record.etag,
        status=status,
    )
    return result


def _error_entry(operation: Any, error: Error) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if isinstance(operation, dict):
        entry["method"] = str(operation.get("method", "")).upper()
        if operation.get("bulkId") is not None:
            entry["bulkId"] = operation["bulkId"]
        if operation.get("path"):
            entry["location"] = operation["path"]
    status = error.status or 400
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status)}
    if error.scim_type:
        body["scimType"] = error.scim_type
    if error.detail:
        body["detail"] = error.detail
    entry.update(status=str(status), response=body)
    return entry


def register_bulk_view(bp: Blueprint) -> None:
    """Add ``POST /Bulk``."""

    @bp.post("/Bulk")
    def bulk() -> Response:
        settings = current_app.extensions["scimbridge"].settings
        body = json_body()
        schemas = body.get("schemas")
        if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
            raise InvalidSyntaxException(detail=f"schemas must list {BULK_REQUEST_SCHEMA}")
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise InvalidSyntaxException(detail="Operations must be a non-empty list")
        if len(operations) > settings.scim.max_bulk_operations:
            raise PayloadTooLargeException(
                detail=f"at most {settings.scim.max_bulk_operations} operations per request"
            )
        fail_on_errors = body.get("failOnErrors")
        if fail_on_errors is not None and (
            not isinstance(fail_on_errors, int)
            or isinstance(fail_on_errors, bool)
            or fail_on_errors < 1
        ):
            raise InvalidValueException(detail="failOnErrors must be a positive integer")

        created: dict[str, str] = {}
        results: dict[int, dict[str, Any]] = {}
        pending = list(enumerate(operations))
        errors = 0
        # Each pass runs what can run; operations waiting on a bulkId another operation
        # creates later run in a further pass. A pass that makes no progress ends the job.
        while pending and (fail_on_errors is None or errors < fail_on_errors):
            waiting: list[tuple[int, Any]] = []
            for index, operation in pending:
                if fail_on_errors is not None and errors >= fail_on_errors:
                    break
                try:
                    if not isinstance(operation, dict):
                        raise InvalidSyntaxException(detail="each operation must be an object")
                    results[index] = _run(operation, created)
                    continue
                except _Unresolved:
                    waiting.append((index, operation))
                    continue
                except SCIMException as exc:
                    error = exc.to_error()
                except ValidationError as exc:
                    error = scim_error_from_validation(exc)
                results[index] = _error_entry(operation, error)
                errors += 1
            if len(waiting) == len(pending):
                for index, operation in waiting:
                    detail = "refers to a bulkId no operation of this request created"
                    results[index] = _error_entry(
                        operation, Error(status=409, scim_type="invalidValue", detail=detail)
                    )
                    errors += 1
                break
            pending = waiting
        return scim_response(
            {
                "schemas": [BULK_RESPONSE_SCHEMA],
                "Operations": [results[index] for index in sorted(results)],
            }
        )
