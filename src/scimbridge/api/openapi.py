"""The OpenAPI 3.1 document of the System API, built from the operations and pydantic models.

Schemas come from the models' JSON schemas (OpenAPI 3.1 uses JSON Schema 2020-12), parameters
from the query models' fields, answers and problems from each operation's record: the
document describes what the code does because it is made from the same declarations.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..service.clients.tokens import SCOPES
from . import models
from .operations import ID_PATTERN
from .operations import IDEMPOTENCY_KEY_PATTERN
from .operations import Operation
from .problems import PROBLEM_MEDIA_TYPE
from .problems import PROBLEM_TYPES
from .problems import ProblemType
from .responses import JSON_MEDIA_TYPE

SECURITY_SCHEME = "apiToken"

SCOPE_DESCRIPTIONS = {
    "users:read": "Read users, pending invitations, sessions, roles and groups.",
    "users:write": "Create, edit, suspend, reactivate and delete users; change roles; send "
    "password resets.",
    "invitations:write": "Invite people, resend and cancel invitations.",
    "sessions:write": "End users' sessions.",
    "audit:read": "Query the audit trail.",
}
assert set(SCOPE_DESCRIPTIONS) == set(SCOPES), "every scope needs a description"

TAGS = {
    "Users": "People in the directory and the changes SCIM has no verb for.",
    "Invitations": "Pending invitations: an invitation is an invited user.",
    "Sessions": "Login sessions of users.",
    "Audit": "The record of every change.",
    "Roles and groups": "Roles (from the roles file) and the groups granting them.",
}

DESCRIPTION = """\
Programmatic user management: the admin actions of the User Directory for HR scripts, internal
tools and support consoles. Identity providers use SCIM (`/scim/v2`) instead.

**Authentication.** Send an API token as `Authorization: Bearer <token>`. Tokens are created
with `scimbridge token create NAME --kind api --scope users:read …`; each operation names the
scope it needs (401 without a valid API token, 403 without the scope). SCIM tokens do not open
this API, and API tokens do not open SCIM.

**Errors** are RFC 9457 problem documents (`application/problem+json`) whose `type` is a stable
URI under `https://scimbridge.dev/problems/`; validation problems list each field at fault in
`errors`. The reference page (`/api/v1/docs`) lists every problem type.

**Idempotency.** POST operations honour an `Idempotency-Key` header (1–255 visible ASCII
characters), kept for 24 hours per token: a retry with the same key and body gets the first
answer (marked `Idempotent-Replayed: true`) without acting again; the same key with another
body is refused. A replayed user creation carries no temporary password: it is never stored.

**Paging.** Lists take `limit` and either `cursor` (the `next_cursor` of the previous page) or
`offset`; `total` counts every match.
"""


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``null`` alternative pydantic gives optional fields (a query has no null)."""
    schema = {k: v for k, v in schema.items() if k not in ("default", "title")}
    options = schema.pop("anyOf", None)
    if options is None:
        return schema
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) == 1:
        return {**kept[0], **schema}
    return {**schema, "anyOf": kept}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    properties = model.model_json_schema(mode="validation")["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        schema = _without_null(properties[name])
        description = schema.pop("description", None) or field.description
        if field.default is not None:
            schema["default"] = field.default
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _path_parameter(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid", "pattern": ID_PATTERN},
    }


_IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key and body get the first answer back.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}


def problem_slugs(spec: Operation) -> list[str]:
    """Every problem type an operation may answer with."""
    slugs: list[str] = []
    if spec.scope is not None:
        slugs += ["unauthorized", "insufficient-scope"]
    if spec.path_parameters:
        slugs.append("not-found")
    if spec.body is not None:
        slugs += ["malformed-request", "payload-too-large", "unsupported-media-type"]
    if spec.body is not None or spec.query is not None or spec.idempotent:
        slugs.append("validation")
    if spec.idempotent:
        slugs += ["idempotency-key-in-progress", "idempotency-key-reused"]
    slugs += spec.problems
    if spec.scope is not None:
        slugs.append("rate-limited")
    # Every operation goes to the store, which may be locked or unreachable for a moment.
    slugs.append("service-unavailable")
    return list(dict.fromkeys(slugs))


def _problem_responses(spec: Operation) -> dict[str, Any]:
    by_status: dict[int, list[ProblemType]] = {}
    for slug in problem_slugs(spec):
        problem = PROBLEM_TYPES[slug]
        by_status.setdefault(problem.status, []).append(problem)
    responses = {}
    for status, problems in sorted(by_status.items()):
        kinds = ", ".join(f"`{problem.slug}`" for problem in problems)
        responses[str(status)] = {
            "description": f"{HTTPStatus(status).phrase} (problem types: {kinds}).",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref(models.Problem)}},
        }
    return responses


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(spec: Operation) -> dict[str, Any]:
    parameters = [_path_parameter(name) for name in spec.path_parameters]
    if spec.query is not None:
        parameters += _query_parameters(spec.query)
    if spec.idempotent:
        parameters.append(_IDEMPOTENCY_PARAMETER)
    document: dict[str, Any] = {
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "description": spec.description
        + (f"\n\nNeeds the `{spec.scope}` scope." if spec.scope else ""),
        "tags": [spec.tag],
        "security": [{SECURITY_SCHEME: [spec.scope]}] if spec.scope else [],
    }
    if parameters:
        document["parameters"] = parameters
    if spec.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": _ref(spec.body)}},
        }
    responses: dict[str, Any] = {}
    for answer in spec.answers:
        response: dict[str, Any] = {"description": answer.description}
        if answer.model is not None:
            response["content"] = {JSON_MEDIA_TYPE: {"schema": _ref(answer.model)}}
        if answer.headers:
            response["headers"] = {
                name: {"schema": {"type": "string", "format": "uri"}} for name in answer.headers
            }
        responses[str(answer.status)] = response
    document["responses"] = {**responses, **_problem_responses(spec)}
    if spec.query is not None:
        document["responses"]["414"] = {
            "description": "URI Too Long: the HTTP server refuses request lines over 4 KiB "
            "before the API reads them (no problem document)."
        }
    return document


def _components(operations: Iterable[Operation]) -> dict[str, Any]:
    modes: dict[type[BaseModel], Literal["validation", "serialization"]] = {}
    for spec in operations:
        if spec.body is not None:
            modes[spec.body] = "validation"
        for answer in spec.answers:
            if answer.model is not None:
                modes[answer.model] = "serialization"
    modes[models.Problem] = "serialization"
    _, schemas = models_json_schema(
        list(modes.items()), ref_template="#/components/schemas/{model}"
    )
    found: dict[str, Any] = schemas.get("$defs", {})
    return found


def build_document(operations: list[Operation], public_url: str) -> dict[str, Any]:
    """Return the OpenAPI document of these operations, served under ``public_url``."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in operations:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scimbridge System API",
            "version": "1",
            "description": DESCRIPTION,
        },
        "servers": [{"url": f"{public_url.rstrip('/')}/api/v1"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": paths,
        "components": {
            "schemas": _components(operations),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token (`scimbridge token create NAME --kind api "
                    "--scope …`). Scopes: "
                    + "; ".join(
                        f"`{scope}`: {text.rstrip('.')}"
                        for scope, text in SCOPE_DESCRIPTIONS.items()
                    )
                    + ".",
                }
            },
        },
    }
