"""Reading SCIM requests: media types, JSON bodies, query parameters, preconditions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Request
from flask import current_app
from flask import request
from scim2_models import InvalidSyntaxException
from scim2_models import InvalidValueException
from scim2_models import ResponseParameters
from scim2_models import SearchRequest
from werkzeug.exceptions import ClientDisconnected

from ..domain.lifecycle_schema import LIFECYCLE_ATTRIBUTES
from ..domain.lifecycle_schema import LIFECYCLE_SCHEMA
from ..negotiation import is_json_body
from ..negotiation import negotiate
from ..negotiation import offers
from ..settings import ScimSettings
from .errors import NotAcceptable
from .errors import UnsupportedMediaType
from .filter_cost import check_filter

# What SCIM responses can be labelled, preferred first (RFC 7644 §3.1 names both).
RESPONSE_MEDIA_TYPES = offers("application/scim+json", "application/json")

# Accept headers clients send on nearly every request, answered without parsing them.
_VERBATIM = {
    "application/scim+json": "application/scim+json",
    "application/json": "application/json",
    "*/*": "application/scim+json",
    "application/scim+json, application/json": "application/scim+json",
}


def check_accept(accept: str, state: Any) -> None:
    """Choose the media type of the response from ``Accept``; 406 if none is acceptable.

    The choice is kept in ``state`` (the request's ``g``) as ``scim_media_type``, for the
    response's ``Content-Type``.
    """
    chosen = _VERBATIM.get(accept)
    if chosen is None:
        chosen = negotiate(request.accept_mimetypes, RESPONSE_MEDIA_TYPES)
    if chosen is None:
        raise NotAcceptable()
    state.scim_media_type = chosen


def scim_limits() -> ScimSettings:
    """Return the SCIM endpoint's limits (page sizes, payload and filter bounds)."""
    limits: ScimSettings = current_app.extensions["scimbridge"].settings.scim
    return limits


# Content-Type headers clients send on nearly every write, accepted without parsing them.
_JSON_CONTENT_TYPES = frozenset(
    {
        "application/scim+json",
        "application/json",
        "application/scim+json; charset=utf-8",
        "application/json; charset=utf-8",
    }
)


def json_body() -> Any:
    """Return the parsed JSON body of a write request."""
    if request.environ.get("CONTENT_TYPE") not in _JSON_CONTENT_TYPES:
        mimetype = request.mimetype
        if mimetype and not is_json_body(mimetype, request.mimetype_params.get("charset")):
            raise UnsupportedMediaType()
    data = _body_bytes(request._get_current_object())  # type: ignore[attr-defined]
    if not data:
        raise InvalidSyntaxException(detail="the request has no body")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidSyntaxException(detail=f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidSyntaxException(detail="the body must be a JSON object")
    refuse_repeated_members(data, body)
    # PostgreSQL cannot store NUL in text; SQLite would, and nothing downstream wants it.
    if b"\\u0000" in data and _holds_nul(body):
        raise InvalidValueException(detail="strings must not hold the NUL character")
    return body


def _body_bytes(incoming: Request) -> bytes:
    """Return the request body, as ``get_data(cache=False)`` would.

    A body announced by a plain ``Content-Length`` within the payload limit, not chunked, is
    read straight from the WSGI input: werkzeug's safe stream (a wrapper object, its limit
    checks and a read loop) cost about 13 µs per write for the same bytes. Anything else
    (chunked, a malformed or missing length, a body over the limit: 413) goes werkzeug's way.
    Where the server frames the input itself (``wsgi.input_terminated``, as gunicorn does),
    the body is what it delivers, to its end or the limit, as werkzeug reads it; otherwise a
    body cut short, or an input that fails, is werkzeug's 400.
    """
    environ = incoming.environ
    announced = environ.get("CONTENT_LENGTH")
    limit = incoming.max_content_length
    if not (
        announced
        and announced.isascii()
        and announced.isdigit()
        and "HTTP_TRANSFER_ENCODING" not in environ
        and limit is not None
        and int(announced) <= limit
    ):
        return incoming.get_data(cache=False)
    framed = "wsgi.input_terminated" in environ
    try:
        data = _read_up_to(environ["wsgi.input"], limit if framed else int(announced))
    except (OSError, ValueError):
        raise ClientDisconnected() from None
    if not framed and len(data) != int(announced):
        raise ClientDisconnected()
    return data


def _read_up_to(stream: Any, size: int) -> bytes:
    """Read ``size`` bytes, or fewer if the stream ends first (it may hand them in parts)."""
    data: bytes = stream.read(size)
    while data and len(data) < size:
        part = stream.read(size - len(data))
        if not part:
            break
        data += part
    return data


# Where a member name ends: its closing quote, then the colon. Every member of the text has
# one; a string value can add more (``"a\\":"``), never fewer. So when the parsed objects hold
# as many members as there are matches, no member was repeated (orjson would have folded it)
# and the costly second parse is spared.
_MEMBER_NAME_END = re.compile(rb'"[ \t\n\r]*:')


def refuse_repeated_members(data: bytes, body: Any) -> None:
    """Refuse a JSON text in which an object names a member twice (400 invalidSyntax).

    orjson, which parsed ``data`` into ``body``, keeps the last of repeated members silently;
    which one a client meant is unknown.
    """
    if _member_count(body) != len(_MEMBER_NAME_END.findall(data)):
        # Maybe a member repeated: the standard parser's hook sees every member and names it.
        json.loads(data, object_pairs_hook=_refuse_repeated_members)


def _member_count(value: Any) -> int:
    """Return how many members the objects in a parsed JSON value hold, nested ones included.

    Asked of every write body: plain loops that descend only into objects and arrays cost a
    third of a recursion through generators over every value.
    """
    if type(value) is dict:
        count = len(value)
        items: Any = value.values()
    elif type(value) is list:
        count = 0
        items = value
    else:
        return 0
    for item in items:
        if type(item) is dict or type(item) is list:
            count += _member_count(item)
    return count


def _refuse_repeated_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        keys = [key for key, _ in pairs]
        repeated = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise InvalidSyntaxException(detail=f"the member {repeated!r} appears twice in an object")
    return members


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    return False


def _query_arg(name: str) -> str | None:
    # SCIM parameter names are case-insensitive for some clients (Entra sends excludedAttributes
    # as sent, others lower-case), so look them up without regard to case.
    for key, value in request.args.items():
        if key.lower() == name.lower():
            return value
    return None


def response_parameters(model: Any) -> ResponseParameters[Any] | None:
    """Return the ``attributes``/``excludedAttributes`` of the query string, if any."""
    if not request.query_string:
        return None  # the usual single-resource request: spare parsing an empty query
    attributes = _expand_request_only_schemas(_query_arg("attributes"))
    excluded = _query_arg("excludedAttributes")
    if not attributes and not excluded:
        return None
    return ResponseParameters[model].model_validate(
        {"attributes": attributes or None, "excludedAttributes": excluded or None}
    )


def _expand_request_only_schemas(attributes: str | None) -> str | None:
    """Let ``attributes`` name the lifecycle extension by its schema URN.

    Its attributes are all ``returned: request``, which a bare URN would not select; naming
    the extension means naming each of them.
    """
    if not attributes:
        return attributes
    names: list[str] = []
    for name in attributes.split(","):
        if name.strip().lower() == LIFECYCLE_SCHEMA.lower():
            names.extend(f"{LIFECYCLE_SCHEMA}:{attr}" for attr in LIFECYCLE_ATTRIBUTES)
        else:
            names.append(name)
    return ",".join(names)


# The lookup IdPs send before each create, in the one spelling they use. A value with an
# escape, a control character or a quote goes the general way (scim2-models' parser).
_USER_NAME_EQ = re.compile(r'(?i:userName) eq "([^"\\\x00-\x1f\x7f]+)"')


def user_name_lookup() -> str | None:
    """Return ``X`` when a list GET asks only ``filter=userName eq "X"``, else None.

    Such a request is answered without parsing its filter (see
    ``ProvisioningService.search_user_name``); its cost bound is still checked.
    """
    args = request.args
    if len(args) != 1:
        return None
    name = next(iter(args))
    if name.lower() != "filter":
        return None
    text = args[name]
    match = _USER_NAME_EQ.fullmatch(text)
    if match is None:
        return None
    check_filter(text, scim_limits())
    return match.group(1)


def _integer(name: str) -> int | None:
    raw = _query_arg(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidValueException(detail=f"{name} must be an integer, got {raw!r}") from None


def search_from_query(
    model: Any, repair_filter: Callable[[str], str] | None = None
) -> SearchRequest[Any]:
    """Build a search request from the query string of a list GET.

    ``repair_filter`` rewrites the filter text first (the client profile's tolerances).
    """
    payload: dict[str, Any] = {}
    for name in ("filter", "sortBy", "sortOrder", "attributes", "excludedAttributes"):
        value = _query_arg(name)
        if value:
            payload[name] = value
    cursor = _query_arg("cursor")
    if cursor is not None:
        # Present but empty (``?cursor`` or ``cursor=``) asks for the first cursor page.
        payload["cursor"] = cursor
    if "attributes" in payload:
        payload["attributes"] = _expand_request_only_schemas(payload["attributes"])
    if "filter" in payload:
        check_filter(payload["filter"], scim_limits())
        if repair_filter is not None:
            payload["filter"] = repair_filter(payload["filter"])
    for name in ("startIndex", "count"):
        number = _integer(name)
        if number is not None:
            payload[name] = number
    return SearchRequest[model].model_validate(payload)


def if_match() -> str | None:
    """Return the If-Match header, if any.

    Read from the environ: most writes send none, and a header lookup that misses raises
    and catches a KeyError inside.
    """
    value: str | None = request.environ.get("HTTP_IF_MATCH")
    return value
