"""A SCIM write body is read as werkzeug's ``get_data`` reads it, whatever the framing.

``scim.requests._body_bytes`` reads a plainly announced body straight from the WSGI input;
these tests hold it to werkzeug's answer (the bytes, or the same refusal) for every framing
a client or a server can produce, and send a create through gunicorn.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from flask import Flask
from flask import request
from werkzeug.exceptions import HTTPException

from scimbridge.scim.requests import _body_bytes

from .conftest import user_payload
from .services import LiveServer

_BODY = b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada"}'
_LIMIT = 1_048_576  # the app fixture's scim.max_payload_bytes (the default)


def _environ(content_length: str | None, extra: dict[str, Any]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/scim/v2/Users",
        "SERVER_NAME": "scim.test",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(_BODY),
        "CONTENT_TYPE": "application/scim+json",
        **extra,
    }
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    return environ


def _outcome(app: Flask, read: Any, content_length: str | None, extra: dict[str, Any]) -> Any:
    with app.request_context(_environ(content_length, extra)):
        try:
            return read(request._get_current_object())  # type: ignore[attr-defined]
        except HTTPException as exc:
            return type(exc), exc.code


@pytest.mark.parametrize(
    "content_length",
    [
        str(len(_BODY)),
        str(len(_BODY) + 10),  # cut short
        str(len(_BODY) - 10),  # longer than announced
        "0",
        None,
        "",
        "+12",
        " 12",
        "١٢",  # Arabic-Indic digits: str.isdigit says yes, werkzeug says no
        "-5",
        "abc",
        str(_LIMIT),
        str(_LIMIT + 1),  # over the payload limit: 413
    ],
)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"wsgi.input_terminated": True},
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    ],
)
def test_body_is_what_get_data_reads(
    app: Flask, content_length: str | None, extra: dict[str, Any]
) -> None:
    """The same bytes, or the same refusal, as werkzeug's get_data(cache=False)."""
    ours = _outcome(app, _body_bytes, content_length, extra)
    theirs = _outcome(app, lambda incoming: incoming.get_data(cache=False), content_length, extra)
    assert ours == theirs


def test_a_framed_input_past_the_limit_is_read_as_werkzeug_reads_it(app: Flask) -> None:
    """Input the server frames runs on past a small Content-Length: read up to the limit."""
    extra = {"wsgi.input_terminated": True, "wsgi.input": io.BytesIO(b"x" * (_LIMIT + 100))}
    ours = _outcome(app, _body_bytes, "10", dict(extra))
    extra["wsgi.input"] = io.BytesIO(b"x" * (_LIMIT + 100))
    theirs = _outcome(app, lambda incoming: incoming.get_data(cache=False), "10", extra)
    assert ours == theirs
    assert len(ours) == _LIMIT
    assert app.config["MAX_CONTENT_LENGTH"] == _LIMIT


class _Trickle:
    """An input that hands the body over a few bytes at a time, then fails if asked to."""

    def __init__(self, data: bytes, fail: bool = False) -> None:
        self._data, self._fail = data, fail

    def read(self, size: int = -1) -> bytes:
        if not self._data and self._fail:
            raise OSError("connection reset")
        part, self._data = self._data[:7], self._data[7:]
        return part


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize(("announced", "fail"), [(len(_BODY), False), (len(_BODY) + 3, True)])
def test_an_input_read_in_parts_or_failing_is_read_as_werkzeug_reads_it(
    app: Flask, framed: bool, announced: int, fail: bool
) -> None:
    """Partial reads are joined; a failing input is werkzeug's ClientDisconnected (400)."""

    def extra() -> dict[str, Any]:
        found: dict[str, Any] = {"wsgi.input": _Trickle(_BODY, fail)}
        if framed:
            found["wsgi.input_terminated"] = True
        return found

    ours = _outcome(app, _body_bytes, str(announced), extra())
    theirs = _outcome(app, lambda incoming: incoming.get_data(cache=False), str(announced), extra())
    assert ours == theirs


def test_a_body_cut_short_is_a_scim_400(app: Flask, token: str) -> None:
    """A Content-Length past the bytes sent: a SCIM Error, nothing created."""
    environ = _environ(
        str(len(_BODY) + 10), {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_HOST": "scim.test"}
    )
    statuses: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses[0].startswith("400")
    assert b"urn:ietf:params:scim:api:messages:2.0:Error" in body


def test_a_create_through_gunicorn_reads_its_body(live: LiveServer) -> None:
    """Gunicorn-framed input (wsgi.input_terminated): the body arrives whole."""
    response = requests.post(
        f"{live.scim_url}/Users",
        json=user_payload("body.through.gunicorn", displayName="Ünïcode body"),
        headers={
            "Authorization": f"Bearer {live.token}",
            "Content-Type": "application/scim+json",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["displayName"] == "Ünïcode body"
