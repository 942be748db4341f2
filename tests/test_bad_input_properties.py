"""Property-based tests: generated filters, PATCH requests and Bulk requests never get a 500.

Each refused request (4xx) must leave the store exactly as it was. Examples are bounded
(``max_examples``, no deadline) so each test takes a few seconds in CI, on SQLite and on
PostgreSQL. The store persists across the examples of one test: a request that succeeds may
change it, and the next example starts from there.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from .conftest import GROUP_SCHEMA
from .conftest import PATCH_SCHEMA
from .conftest import USER_SCHEMA
from .scim_state import store_state
from .test_bad_input import BULK_SCHEMA
from .test_bad_input import Seeded
from .test_bad_input import seeded  # noqa: F401 (the fixture, shared)
from .test_errors import ERROR_SCHEMA

BOUNDED = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ATTRIBUTES = [
    "userName",
    "displayName",
    "title",
    "active",
    "id",
    "externalId",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "name.givenName",
    "meta.created",
    "meta.lastModified",
    "meta.resourceType",
    "members",
    "members.value",
    "groups.display",
    "x509Certificates.value",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "nosuch",
    "name.nosuch",
]
OPERATORS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "Co", "xx"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2011-05-13T04:42:34Z", "not a date", "", "bulkId:x", 'W/"1"']),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _literal(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) or value else '""'


comparisons = st.builds(
    lambda attr, op, value: f"{attr} {op} {_literal(value)}" if op != "pr" else f"{attr} pr",
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(OPERATORS),
    json_scalars,
)

structured_filters = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} and {b}", inner, inner),
        st.builds(lambda a, b: f"{a} or {b}", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda attr, a: f"{attr}[{a}]", st.sampled_from(["emails", "members"]), inner),
    ),
    max_leaves=8,
)
# Mostly grammatical filters (they reach the SQL compiler), some arbitrary text (the parser).
filters = st.one_of(structured_filters, structured_filters, comparisons, st.text(max_size=60))

patch_paths = st.one_of(
    st.sampled_from(ATTRIBUTES),
    st.builds(lambda attr, f: f"{attr}[{f}]", st.sampled_from(["emails", "members"]), filters),
    st.builds(
        lambda attr, f, sub: f"{attr}[{f}].{sub}",
        st.sampled_from(["emails", "members"]),
        filters,
        st.sampled_from(["value", "display", "type", "primary", "nosuch"]),
    ),
    st.text(max_size=30),
)

patch_operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Replace", "move", ""])},
    optional={"path": patch_paths, "value": json_values},
)


def _assert_not_a_server_error(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        body = response.get_json(force=True)
        assert body["schemas"] == [ERROR_SCHEMA], body


@BOUNDED
@given(text=filters)
def test_generated_filters_never_fail_and_never_write(seeded: Seeded, text: str) -> None:  # noqa: F811
    """Any filter on a list or a search is answered (200) or refused (4xx), writing nothing."""
    before = store_state(seeded.database)
    for response in (
        seeded.scim.get("/Users", query_string={"filter": text}),
        seeded.scim.post("/Groups/.search", {"filter": text}),
        seeded.scim.post("/.search", {"filter": text, "startIndex": 1, "count": 5}),
    ):
        _assert_not_a_server_error(response)
    assert store_state(seeded.database) == before


@BOUNDED
@given(operations=st.lists(patch_operations, min_size=1, max_size=3), group=st.booleans())
def test_generated_patches_never_fail_and_refusals_change_nothing(
    seeded: Seeded,  # noqa: F811
    operations: list[dict[str, Any]],
    group: bool,
) -> None:
    """A PATCH of any paths and values succeeds or is refused whole, never a 500."""
    path = f"/Groups/{seeded.group_id}" if group else f"/Users/{seeded.user_id}"
    before = store_state(seeded.database)
    response = seeded.scim.patch(path, {"schemas": [PATCH_SCHEMA], "Operations": operations})
    _assert_not_a_server_error(response)
    if response.status_code >= 400:
        assert store_state(seeded.database) == before


bulk_operations = st.fixed_dictionaries(
    {"method": st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "post", ""])},
    optional={
        "path": st.one_of(
            st.sampled_from(
                [
                    "/Users",
                    "/Groups",
                    "/Users/{user}",
                    "/Groups/{group}",
                    "/Users/bulkId:a",
                    "/Nope",
                ]
            ),
            st.text(max_size=20),
        ),
        "bulkId": st.one_of(st.sampled_from(["a", "b"]), json_scalars),
        "version": json_values,
        "data": st.one_of(
            json_values,
            st.builds(
                lambda name, extra: {"schemas": [USER_SCHEMA], "userName": name, **extra},
                st.text(max_size=12),
                st.dictionaries(st.sampled_from(["active", "emails", "title"]), json_values),
            ),
            st.builds(
                lambda ops: {"schemas": [PATCH_SCHEMA], "Operations": ops},
                st.lists(patch_operations, max_size=2),
            ),
            st.just(
                {
                    "schemas": [PATCH_SCHEMA],
                    "Operations": [{"op": "replace", "path": "title", "value": "Boss"}],
                }
            ),
        ),
    },
)


@BOUNDED
@given(
    operations=st.lists(bulk_operations, min_size=1, max_size=4),
    fail_on_errors=st.one_of(st.none(), st.integers(min_value=-1, max_value=3), st.text()),
)
def test_generated_bulk_requests_never_fail(
    seeded: Seeded,  # noqa: F811
    operations: list[dict[str, Any]],
    fail_on_errors: Any,
) -> None:
    """No operation of a Bulk request answers 500; a request refused whole changes nothing."""
    # Fresh resources for each example (an earlier one may have deleted the last), so that
    # PUT, PATCH and DELETE reach one.
    user = seeded.scim.post("/Users", {"schemas": [USER_SCHEMA], "userName": uuid.uuid4().hex})
    group = seeded.scim.post(
        "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": uuid.uuid4().hex}
    )
    for operation in operations:
        if isinstance(operation.get("path"), str):
            operation["path"] = (
                operation["path"]
                .replace("{user}", user.get_json()["id"])
                .replace("{group}", group.get_json()["id"])
            )
    body: dict[str, Any] = {"schemas": [BULK_SCHEMA], "Operations": operations}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    before = store_state(seeded.database)
    response = seeded.scim.post("/Bulk", body)
    _assert_not_a_server_error(response)
    if response.status_code >= 400:
        assert store_state(seeded.database) == before
        return
    results = response.get_json()["Operations"]
    assert all(int(result["status"]) < 500 for result in results), results
    if all(int(result["status"]) >= 400 for result in results):
        assert store_state(seeded.database) == before
