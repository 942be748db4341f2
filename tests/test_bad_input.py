"""What fuzzing found answered 500 or slipped through now gets a 4xx SCIM Error, changing nothing.

Each case runs on SQLite and PostgreSQL: PostgreSQL refuses more (NUL in text, LIKE on a
boolean), so a case that passes on one may still fail on the other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from scimbridge.app import create_app
from scimbridge.store.database import Database
from scimbridge.store.migrations import upgrade

from .conftest import GROUP_SCHEMA
from .conftest import USER_SCHEMA
from .conftest import ScimClient
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload
from .scim_state import store_state
from .services import LiveServer
from .test_errors import assert_scim_error

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class Seeded:
    """A SCIM client on a store holding one user (with an email) and one group."""

    scim: ScimClient
    database: Database
    user_id: str
    group_id: str


@pytest.fixture
def seeded(database_url: str) -> Iterator[Seeded]:
    database = Database(database_url)
    upgrade(database)
    app = create_app(make_settings(database_url), database)
    scim = ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("fuzz"))
    user = scim.post("/Users", user_payload("bjensen", emails=[{"value": "b@example.com"}]))
    group = scim.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Staff"})
    assert user.status_code == group.status_code == 201
    yield Seeded(scim, database, user.get_json()["id"], group.get_json()["id"])
    database.dispose()


def _or_terms(count: int, attribute: str = "userName") -> str:
    return " or ".join(f'{attribute} eq "u{index}"' for index in range(count))


FILTERS = {
    "co with a number": ("userName co 1", "invalidFilter"),
    "sw with a boolean": ("title sw true", "invalidFilter"),
    "ew with a number on a sub-attribute": ("emails.value ew 3", "invalidFilter"),
    "sw on a date": ('meta.created sw "2020"', "invalidFilter"),
    "500 and terms": (" and ".join(["active eq true"] * 500), "invalidFilter"),
    "998 or terms": (" or ".join(["id eq 1"] * 998), "invalidFilter"),
    "too long": ('userName eq "' + "x" * 9000 + '"', "invalidFilter"),
    "too deep": ("(" * 20 + 'userName eq "x"' + ")" * 20, "invalidFilter"),
    "a NUL byte": ('userName eq "a\x00b"', "invalidValue"),
    # The raw text holds no NUL; the filter's string escape makes one in the value.
    "an escaped NUL": ('userName eq "a\\u0000b"', "invalidFilter"),
    "an escaped NUL in a value filter": ('emails[value co "\\u0000"]', "invalidFilter"),
}


@pytest.mark.parametrize("case", FILTERS)
def test_a_bad_filter_gets_400_on_list_and_search(seeded: Seeded, case: str) -> None:
    """Type errors, over-long and over-costly filters are refused with 400 invalidFilter."""
    text, scim_type = FILTERS[case]
    before = store_state(seeded.database)
    listed = seeded.scim.get("/Users", query_string={"filter": text})
    assert_scim_error(listed, 400, scim_type)
    searched = seeded.scim.post("/Users/.search", {"filter": text})
    assert_scim_error(searched, 400, scim_type)
    everywhere = seeded.scim.post("/.search", {"filter": text})
    assert_scim_error(everywhere, 400, scim_type)
    assert store_state(seeded.database) == before


def test_a_filter_at_the_cost_bound_is_answered(seeded: Seeded) -> None:
    """The bound refuses only what is over it: 100 terms are searched (and match)."""
    response = seeded.scim.post(
        "/Users/.search", {"filter": _or_terms(99) + ' or userName eq "bjensen"'}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["totalResults"] == 1


def test_quoted_text_does_not_count_towards_the_bound(seeded: Seeded) -> None:
    """`and`, `or` and brackets inside a quoted value are not terms or nesting."""
    value = " and ".join(["(x]"] * 150)
    response = seeded.scim.get("/Users", query_string={"filter": f'userName eq "{value}"'})
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "query", [{"startIndex": "99999999999999999999"}, {"startIndex": "-99999999999999999999"}]
)
def test_an_out_of_range_start_index_is_an_empty_or_first_page(
    seeded: Seeded, query: dict[str, str]
) -> None:
    """A startIndex beyond any 64-bit offset is clamped (RFC 7644 §3.4.2.4), not a 500."""
    response = seeded.scim.get("/Users", query_string=query)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["totalResults"] == 1
    assert body["itemsPerPage"] == (0 if not query["startIndex"].startswith("-") else 1)
    for path in ("/Users/.search", "/.search"):
        # In a JSON body the number is refused as no integer pydantic takes: 400, not 500.
        searched = seeded.scim.post(path, {"startIndex": int(query["startIndex"])})
        assert_scim_error(searched, 400, "invalidValue")
        searched = seeded.scim.post(path, {"startIndex": 2**62})
        assert searched.status_code == 200, searched.get_json()
        assert searched.get_json()["itemsPerPage"] == 0


def test_a_huge_count_is_capped_to_the_largest_page(seeded: Seeded) -> None:
    """A huge count is clamped to the advertised maximum page size."""
    response = seeded.scim.get("/Users", query_string={"count": "99999999999999999999"})
    assert response.status_code == 200
    assert response.get_json()["itemsPerPage"] == 1


def test_a_patch_path_over_the_cost_bound_gets_400_invalid_path(seeded: Seeded) -> None:
    """A value-path filter of 3,000 terms is refused before it is parsed or applied."""
    before = store_state(seeded.database)
    path = f"emails[{_or_terms(3000, 'value')}].display"
    operation = {"op": "replace", "path": path, "value": "x"}
    response = seeded.scim.patch(f"/Users/{seeded.user_id}", patch_payload(operation))
    assert_scim_error(response, 400, "invalidPath")
    assert store_state(seeded.database) == before


@pytest.mark.parametrize("version", [1, ['W/"1"'], {"etag": "x"}, True])
def test_a_bulk_operation_with_a_version_that_is_not_a_string_is_refused(
    seeded: Seeded, version: Any
) -> None:
    """The operation answers 400 invalidValue in the BulkResponse; nothing changes."""
    before = store_state(seeded.database)
    operation = {
        "method": "PATCH",
        "path": f"/Users/{seeded.user_id}",
        "version": version,
        "data": patch_payload({"op": "replace", "path": "title", "value": "Boss"}),
    }
    response = seeded.scim.post("/Bulk", {"schemas": [BULK_SCHEMA], "Operations": [operation]})
    assert response.status_code == 200
    (result,) = response.get_json()["Operations"]
    assert result["status"] == "400"
    assert result["response"]["scimType"] == "invalidValue"
    assert store_state(seeded.database) == before


INVALID_BODIES: dict[str, tuple[str, int, str]] = {
    "empty userName": (json.dumps(user_payload("")), 400, "invalidValue"),
    "blank userName": (json.dumps(user_payload("   ")), 400, "invalidValue"),
    "NUL in userName": (json.dumps(user_payload("a\x00b")), 400, "invalidValue"),
    "NUL in a nested value": (
        json.dumps(user_payload("nul", name={"givenName": "a\x00"})),
        400,
        "invalidValue",
    ),
    "empty schemas": (json.dumps({"schemas": [], "userName": "x"}), 400, "invalidValue"),
    "no schemas": (json.dumps({"userName": "x"}), 400, "invalidValue"),
    "repeated member": (
        f'{{"schemas": ["{USER_SCHEMA}"], "userName": "x", "userName": "y"}}',
        400,
        "invalidSyntax",
    ),
    "repeated nested member": (
        f'{{"schemas": ["{USER_SCHEMA}"], "userName": "x", "name": {{"a": 1, "a": 2}}}}',
        400,
        "invalidSyntax",
    ),
}


@pytest.mark.parametrize("case", INVALID_BODIES)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_invalid_resource_body_is_refused(seeded: Seeded, case: str, method: str) -> None:
    """Bodies once accepted (or failing on PostgreSQL) get the RFC's 400 and change nothing."""
    body, status, scim_type = INVALID_BODIES[case]
    before = store_state(seeded.database)
    path = "/Users" if method == "POST" else f"/Users/{seeded.user_id}"
    response = seeded.scim.request(
        method, path, data=body, headers={"Content-Type": "application/scim+json"}
    )
    assert_scim_error(response, status, scim_type)
    assert store_state(seeded.database) == before


def test_patch_to_an_empty_user_name_is_refused(seeded: Seeded) -> None:
    """A PATCH may not empty userName either."""
    before = store_state(seeded.database)
    operation = {"op": "replace", "path": "userName", "value": ""}
    response = seeded.scim.patch(f"/Users/{seeded.user_id}", patch_payload(operation))
    assert_scim_error(response, 400, "invalidValue")
    assert store_state(seeded.database) == before


@pytest.mark.parametrize("path", ["/Users/a%00b", "/Users?attributes=user%00Name"])
def test_a_nul_in_the_url_is_refused(seeded: Seeded, path: str) -> None:
    """NUL cannot reach a PostgreSQL query through the path or query string."""
    assert_scim_error(seeded.scim.get(path), 400, "invalidValue")


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "LINK"])
def test_an_unknown_method_gets_a_scim_405(seeded: Seeded, method: str) -> None:
    """Routing's 405 is a SCIM Error with Allow, not Werkzeug's HTML page."""
    response = seeded.scim.request(method, "/Users")
    assert_scim_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_a_path_no_route_matches_gets_a_scim_404(seeded: Seeded) -> None:
    """Even /scim/v2 itself, which no route takes, answers in SCIM's format."""
    assert_scim_error(seeded.scim.get(""), 404)


def test_json_answers_are_never_sniffed(seeded: Seeded) -> None:
    """Every SCIM answer, success or error, carries X-Content-Type-Options: nosniff."""
    for response in (
        seeded.scim.get("/Users"),
        seeded.scim.get("/Users/nope"),
        seeded.scim.request("TRACE", "/Users"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_refusal_logs_one_short_line(seeded: Seeded, caplog: pytest.LogCaptureFixture) -> None:
    """The log says what was refused in a line, never the filter or a statement."""
    caplog.set_level(logging.INFO, logger="scimbridge")
    text = " and ".join(["active eq true"] * 500)
    seeded.scim.post("/Users/.search", {"filter": text})
    lines = [record.getMessage() for record in caplog.records]
    assert any("invalidFilter" in line for line in lines), lines
    assert all(len(line) < 400 for line in lines), lines


# -- what gunicorn refuses before the app sees the request ----------------------------------------


def test_a_request_line_too_long_gets_a_scim_414(live: LiveServer) -> None:
    """Over gunicorn's request-line limit, the answer is a SCIM Error, not gunicorn's HTML."""
    response = requests.get(
        f"{live.scim_url}/Users",
        params={"filter": 'userName eq "' + "x" * 9000 + '"'},
        headers={"Authorization": f"Bearer {live.token}"},
        timeout=30,
    )
    assert_live_scim_error(response, 414)


def test_a_long_filter_within_the_bound_reaches_the_app(live: LiveServer) -> None:
    """The request-line limit is raised: a 5,000-character GET filter is answered."""
    response = requests.get(
        f"{live.scim_url}/Users",
        params={"filter": 'userName eq "' + "x" * 5000 + '"'},
        headers={"Authorization": f"Bearer {live.token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_an_oversized_header_gets_a_scim_431(live: LiveServer) -> None:
    """A header over gunicorn's field limit gets a SCIM Error too."""
    response = requests.get(
        f"{live.scim_url}/Users",
        headers={"Authorization": f"Bearer {live.token}", "X-Padding": "x" * 9000},
        timeout=30,
    )
    assert_live_scim_error(response, 431)


def assert_live_scim_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/scim+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)


def test_the_system_api_answers_an_unknown_method_with_a_problem(seeded: Seeded) -> None:
    """Routing's 405 under /api/v1 is the API's problem document, not Werkzeug's HTML."""
    response = seeded.scim.client.open("/api/v1/users", method="TRACE")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
