"""``GET /Users?filter=userName eq "…"`` answered without parsing the filter, as if parsed.

Identity providers look a user up by userName before each create. That one request shape is
compiled from a filter parsed once; every answer must be the one the general path gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from scim2_models import SearchRequest
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from scimbridge.app import create_app
from scimbridge.domain.resources import UserResource
from scimbridge.scim.requests import _USER_NAME_EQ
from scimbridge.store.database import Database
from scimbridge.store.filters import compile_filter
from scimbridge.store.filters import user_name_eq_key
from scimbridge.store.filters import user_name_eq_where
from scimbridge.store.migrations import upgrade

from .conftest import ScimClient
from .conftest import make_settings
from .test_errors import assert_scim_error
from .test_resources import create_group
from .test_resources import create_user

_NAMES = ["Bob", "bob.smith@example.com", "ÉMILE", "E\u0301mile", "a b", "x'; drop", "%_*"]


@pytest.fixture(params=[100, 1], ids=["pages-of-100", "pages-of-1"])
def scim(database_url: str, request: pytest.FixtureRequest) -> Iterator[ScimClient]:
    """A SCIM client on a fresh store, SQLite and PostgreSQL.

    Pages of one make a found user fill the page: the total is then counted, not inferred.
    """
    database = Database(database_url)
    upgrade(database)
    limits = {"max_filter_length": 256, "default_page_size": request.param}
    settings = make_settings(database_url, scim=limits)
    app = create_app(settings, database)
    yield ScimClient(app.test_client(), app.extensions["scimbridge"].tokens.create("idp"))
    database.dispose()


def _listed(scim: ScimClient, query: dict[str, str]) -> tuple[int, Any]:
    response = scim.get("/Users", query_string=query)
    return response.status_code, response.get_json()


def test_lookups_answer_as_the_general_path(scim: ScimClient) -> None:
    """Found, found under another case or normal form, and not found: the same bodies."""
    for name in ["Bob", "ÉMILE", "a b", "%_*"]:
        user = create_user(scim, name)
        create_group(scim, f"Group of {name}", [user["id"]])
    for name in [*_NAMES, "BOB", "émile", "nobody"]:
        text = f'userName eq "{name}"'
        assert _USER_NAME_EQ.fullmatch(text), text  # the lookup does take this request
        quick = _listed(scim, {"filter": text})
        # startIndex=1 is the default: it changes nothing but the path the request takes.
        general = _listed(scim, {"filter": text, "startIndex": "1"})
        assert quick == general, name
        assert quick[0] == 200
    found = _listed(scim, {"FILTER": 'USERNAME eq "bob"'})[1]
    assert [user["userName"] for user in found["Resources"]] == ["Bob"]
    assert found["Resources"][0]["groups"][0]["display"] == "Group of Bob"


def test_lookups_keep_the_filter_cost_bound(scim: ScimClient) -> None:
    """A value past ``max_filter_length`` is refused alike, whichever way it would go."""
    text = f'userName eq "{"x" * 256}"'
    assert _USER_NAME_EQ.fullmatch(text)
    for query in ({"filter": text}, {"filter": text, "startIndex": "1"}):
        assert_scim_error(scim.get("/Users", query_string=query), 400, "invalidFilter")


def test_other_shapes_go_the_general_way(scim: ScimClient) -> None:
    """Escapes, other operators and empty values are parsed as before."""
    create_user(scim, 'say "hi"')
    for text in [r'userName eq "say \"hi\""', 'userName co "hi"', 'userName eq ""']:
        assert not _USER_NAME_EQ.fullmatch(text)
    assert _listed(scim, {"filter": r'userName eq "say \"hi\""'})[1]["totalResults"] == 1
    assert _listed(scim, {"filter": 'userName eq ""'})[1]["totalResults"] == 0


def _sql(clause: Any, dialect: Any) -> str:
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.sampled_from(_NAMES), st.text(min_size=1, max_size=40)))
def test_the_compiled_clause_is_the_parsed_filters(name: str) -> None:
    """For any value, the clause is the one the parsed filter compiles to, on both databases."""
    if not _USER_NAME_EQ.fullmatch(f'userName eq "{name}"'):
        return  # a value the lookup never takes
    parsed = SearchRequest[UserResource].model_validate({"filter": f'userName eq "{name}"'})
    assert parsed.filter is not None
    for dialect_name, dialect in (
        ("sqlite", sqlite.dialect()),
        ("postgresql", postgresql.dialect()),
    ):
        general = compile_filter(parsed.filter, "User", dialect_name)
        quick = user_name_eq_where(user_name_eq_key(name))
        assert _sql(quick, dialect) == _sql(general, dialect)
