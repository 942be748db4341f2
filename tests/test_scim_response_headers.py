"""SCIM responses send the headers werkzeug would send, without its work when it changes nothing.

``ScimResponse`` skips werkzeug's ``iri_to_uri`` for a ``Location`` that already is a URI;
these tests hold it to werkzeug's own answer, for plain and non-ASCII URLs alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Response
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.urls import iri_to_uri

from scimbridge.app import create_app
from scimbridge.scim.responses import ScimResponse
from scimbridge.scim.responses import _already_uri
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import ScimClient
from .conftest import make_settings
from .conftest import user_payload

_BASES = [
    "http://scim.test/scim/v2",
    "http://127.0.0.1:8080/scim/v2",
    "https://Example.COM/scim/v2",
    "https://bücher.example/scim/v2",
    "http://h/scim v2",
    "http://h:0080/x",
    "http://h:99999/x",
    "HTTP://h/x",
    "http:/x",
    "http://h/x?q=1",
    "http://[::1/x",
    "https://h/p%20q",
]
_SEGMENT_CHARACTERS = st.sampled_from(list("aZ09-._~ %/?#äé!$&'()*+,;=:@\u2603"))


def _wsgi_headers(response: Response) -> list[tuple[str, str]]:
    return response.get_wsgi_headers(EnvironBuilder().get_environ()).to_wsgi_list()


def _werkzeug_iri_to_uri(location: str) -> str | None:
    try:
        return iri_to_uri(location)
    except (ValueError, UnicodeError):
        return None


@hypothesis_settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(_BASES), segment=st.text(_SEGMENT_CHARACTERS, max_size=8))
def test_a_location_taken_as_a_uri_is_one(base: str, segment: str) -> None:
    """Whenever a Location is sent as it is, werkzeug's iri_to_uri would give it back unchanged."""
    location = f"{base}/Users/{segment}"
    if _already_uri(location):
        assert _werkzeug_iri_to_uri(location) == location


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (201, {"ETag": 'W/"1"', "Location": "http://scim.test/scim/v2/Users/ab-12"}),
        (201, {"Location": "https://bücher.example/scim/v2/Users/ab-12"}),
        (201, {"Location": "http://scim.test/scim/v2/Users/b\u00e4r"}),
        (201, {"Location": "http://scim.test/scim/v2/Users/a b"}),
        (201, {"Location": "https://Example.COM/scim/v2/Users/x"}),
        (200, {"ETag": 'W/"2"'}),
        (200, {"Content-Location": "http://h/\u00e4"}),
        (204, {"ETag": 'W/"3"'}),
        (304, {"ETag": 'W/"4"'}),
        (400, {}),
    ],
)
def test_wsgi_headers_are_werkzeugs(status: int, headers: dict[str, str]) -> None:
    """Whatever the status and Location, the WSGI headers are those Flask's Response sends."""
    body = b'{"a": 1}' if status not in (204, 304) else b""
    ours = ScimResponse(body, status, headers, content_type="application/scim+json")
    theirs = Response(body, status, headers, content_type="application/scim+json")
    assert sorted(_wsgi_headers(ours)) == sorted(_wsgi_headers(theirs))
    environ = EnvironBuilder().get_environ()
    our_iter, our_status, our_list = ours.get_wsgi_response(environ)
    their_iter, their_status, their_list = theirs.get_wsgi_response(environ)
    assert (our_status, sorted(our_list)) == (their_status, sorted(their_list))
    assert b"".join(our_iter) == b"".join(their_iter)


def test_create_location_is_meta_location(scim: ScimClient) -> None:
    """A plain public URL: the Location header is meta.location, character for character."""
    response = scim.post("/Users", user_payload("plain.location"))
    assert response.status_code == 201
    assert response.headers["Location"] == response.get_json()["meta"]["location"]


@pytest.mark.parametrize(
    ("public_url", "expected_prefix"),
    [
        ("https://bücher.example", "https://xn--bcher-kva.example/scim/v2/Users/"),
        ("https://Example.COM/Provisioning", "https://example.com/Provisioning/scim/v2/Users/"),
        ("https://example.com/ä", "https://example.com/%C3%A4/scim/v2/Users/"),
    ],
)
def test_create_location_of_a_non_ascii_or_mixed_case_public_url_is_a_uri(
    tmp_path: Path, public_url: str, expected_prefix: str
) -> None:
    """The Location header is meta.location made a URI, as werkzeug makes it."""
    settings = make_settings(f"sqlite:///{tmp_path}/app.db").model_copy(
        update={"public_url": public_url}
    )
    database = Database(settings.database_url)
    upgrade(database)
    try:
        app = create_app(settings, database)
        token = app.extensions["scimbridge"].tokens.create("tests")
        scim = ScimClient(app.test_client(), token)
        response = scim.post("/Users", user_payload("iri.location"))
        assert response.status_code == 201
        location = response.get_json()["meta"]["location"]
        assert response.headers["Location"] == iri_to_uri(location)
        assert response.headers["Location"].startswith(expected_prefix)
    finally:
        database.dispose()
