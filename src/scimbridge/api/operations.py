"""Operations of the System API: declared once, routed, checked and documented from one record.

``@operation(...)`` registers a view on the blueprint and records what the OpenAPI document
says of it (scope, parameters, body, answers). The wrapper does what every operation shares:
the scope check, path and query parsing, body validation and ``Idempotency-Key`` replays.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from typing import TypeVar

import orjson
from flask import Blueprint
from flask import Response
from flask import request
from pydantic import BaseModel
from pydantic import ValidationError
from werkzeug.routing import BaseConverter
from werkzeug.routing import PathConverter

from ..negotiation import is_json_body
from . import context
from .problems import ApiProblem
from .problems import FieldError
from .problems import validation_problem
from .responses import empty_response
from .responses import json_response

View = Callable[..., Response]
M = TypeVar("M", bound=BaseModel)

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ID_PATTERN = f"^{_UUID}$"
"""Users, invitations and sessions are named by UUIDs."""


class AnyPathConverter(PathConverter):
    """Match the rest of a path, newlines included.

    Werkzeug's ``path`` stops at a newline; a path it cannot match would miss the API's
    404 problem and get the site's plain 404 instead.
    """

    regex = r"[^/][\s\S]*?"
    part_isolating = False


class ResourceIdConverter(BaseConverter):
    """Route only UUIDs as ids.

    ``/invitations/batch`` is then no invitation, and nothing else (a NUL character that
    PostgreSQL would refuse) reaches the database as an id.
    """

    regex = _UUID
    part_isolating = True

    def to_python(self, value: str) -> str:
        """Return the id in the lower case scimbridge writes ids in."""
        return value.lower()


IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True)
class Answer:
    """A successful answer of an operation."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    """Response headers the answer carries (documented), e.g. ``Location``."""


@dataclass(frozen=True)
class Operation:
    """One operation, as routed and as documented."""

    method: str
    path: str
    """OpenAPI form, relative to ``/api/v1``: ``/users/{user_id}``."""
    operation_id: str
    summary: str
    description: str
    tag: str
    answers: tuple[Answer, ...]
    scope: str | None = None
    """Scope the token needs; None for public operations (no token at all)."""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    problems: tuple[str, ...] = ()
    """Problem types the operation itself may answer with, besides the shared ones."""
    idempotent: bool = False
    """Honours ``Idempotency-Key``."""
    secret_fields: tuple[str, ...] = ()
    """Top-level answer members never kept for replays (a generated password)."""

    @property
    def path_parameters(self) -> list[str]:
        """Names of the path parameters."""
        return re.findall(r"{(\w+)}", self.path)


OPERATIONS: list[Operation] = []
"""Every operation, in the order the document lists them."""


def operation(bp: Blueprint, spec: Operation) -> Callable[[View], View]:
    """Register a view as the operation ``spec`` describes."""

    def register(view: View) -> View:
        @wraps(view)
        def endpoint(**path: str) -> Response:
            return _run(spec, view, path)

        rule = re.sub(r"{(\w+)}", r"<resource_id:\1>", spec.path)
        bp.add_url_rule(rule, endpoint=spec.operation_id, view_func=endpoint, methods=[spec.method])
        OPERATIONS.append(spec)
        return view

    return register


def _run(spec: Operation, view: View, path: dict[str, str]) -> Response:
    if spec.scope is not None:
        context.require_scope(spec.scope)
    key = request.headers.get("Idempotency-Key") if spec.idempotent else None
    if key is None:
        return _call(spec, view, path)
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiProblem(
            "validation",
            "the Idempotency-Key header is not valid",
            [FieldError("Idempotency-Key", "use 1 to 255 visible ASCII characters")],
        )
    return _idempotent_call(spec, view, path, key)


def _call(spec: Operation, view: View, path: dict[str, str]) -> Response:
    arguments: dict[str, Any] = dict(path)
    if spec.query is not None:
        arguments["query"] = parse_query(spec.query)
    if spec.body is not None:
        arguments["body"] = parse_body(spec.body)
    return view(**arguments)


def _idempotent_call(spec: Operation, view: View, path: dict[str, str], key: str) -> Response:
    keys = context.state().idempotency
    token_name = context.token().name
    replay = keys.begin(token_name, key, request_fingerprint())
    if replay is not None:
        headers = {**replay.headers, "Idempotent-Replayed": "true"}
        if replay.body is None:
            response = empty_response(replay.status)
            response.headers.update(headers)
            return response
        return json_response(replay.body, replay.status, headers)
    try:
        response = _call(spec, view, path)
    except BaseException:
        keys.abandon(token_name, key)
        raise
    if not 200 <= response.status_code < 300:
        keys.abandon(token_name, key)
        return response
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        body = {
            name: (None if name in spec.secret_fields else value) for name, value in body.items()
        }
    kept_headers = {
        name: response.headers[name] for name in ("Location",) if name in response.headers
    }
    keys.finish(token_name, key, response.status_code, body, kept_headers)
    return response


def request_fingerprint() -> str:
    """Fingerprint of the request: method, path and body (JSON compared by content)."""
    raw = request.get_data(cache=True)
    try:
        body = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS) if raw else b""
    except orjson.JSONDecodeError:
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against ``model``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiProblem(
            "validation",
            "this operation needs a JSON body",
            [FieldError("body", "send a JSON object")],
        )
    if not is_json_body(request.mimetype, request.mimetype_params.get("charset")):
        raise ApiProblem("unsupported-media-type", "send request bodies as application/json")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ApiProblem("malformed-request", "the body is not valid JSON") from None
        raise validation_problem(exc) from None


def parse_query(model: type[M]) -> M:
    """Validate the query parameters against ``model``; each may be given once."""
    repeated = [name for name in model.model_fields if len(request.args.getlist(name)) > 1]
    if repeated:
        raise ApiProblem(
            "validation",
            f"give each query parameter once: {', '.join(repeated)}",
            [FieldError(name, "given more than once") for name in repeated],
        )
    values = {name: request.args.get(name) for name in request.args}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_problem(exc, root="query") from None
