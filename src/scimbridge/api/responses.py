"""JSON answers of the System API."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from pydantic import BaseModel

JSON_MEDIA_TYPE = "application/json"


def json_response(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    mimetype: str = JSON_MEDIA_TYPE,
) -> Response:
    """Answer with a JSON document."""
    return Response(orjson.dumps(body), status, headers, mimetype=mimetype)


def model_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Answer with a response model, dumped as its OpenAPI schema describes it."""
    return json_response(model.model_dump(mode="json"), status, headers)


def empty_response(status: int = 204) -> Response:
    """Answer without a body (and so without a ``Content-Type``)."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response
