"""RFC 9865 cursor paging on /Users and /Groups: stable walks, signed cursors, their errors."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import itsdangerous.timed
import pytest

from scimbridge.settings import Settings
from scimbridge.store.database import Database

from .conftest import ScimClient
from .conftest import group_payload
from .conftest import make_settings
from .conftest import user_payload
from .store_support import store_users
from .test_errors import assert_scim_error

SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def insert_users(database: Database, count: int, prefix: str = "user") -> list[str]:
    """Store users ``<prefix>00000``… in one transaction; return their ids in creation order.

    A walk needs thousands of users: writing them through the store keeps the module fast,
    while every read goes through the SCIM endpoint.
    """
    names = [f"{prefix}{n:05d}" for n in range(count)]
    with database.write() as conn:
        return store_users(conn, names, datetime.now(UTC), apart=timedelta(milliseconds=1))


def cursor_page(scim: ScimClient, path: str = "/Users", **query: Any) -> dict[str, Any]:
    response = scim.get(path, query_string=query)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def walk(scim: ScimClient, path: str = "/Users", **query: Any) -> list[dict[str, Any]]:
    """Follow nextCursor from the first page to the last; return every resource seen."""
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = cursor_page(scim, path, cursor=cursor, **query)
        seen.extend(body["Resources"])
        if "nextCursor" not in body:
            return seen
        cursor = body["nextCursor"]


# -- stability ------------------------------------------------------------------------------


def test_walk_of_10000_users_meets_each_survivor_once_while_500_come_and_go(
    scim: ScimClient, database: Database
) -> None:
    """Pages of 100 over 10,000 users, with 500 created and 500 deleted between pages.

    Every user that exists from the first page to the last is seen exactly once; no user is
    seen twice; nothing is seen that never existed.
    """
    seeded = insert_users(database, 10_000)
    deleted: set[str] = set()
    created: set[str] = set()
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        body = cursor_page(scim, cursor=cursor, count=100)
        assert body["itemsPerPage"] == len(body["Resources"]) <= 100
        assert "startIndex" not in body
        seen.extend(user["id"] for user in body["Resources"])
        pages += 1
        if "nextCursor" not in body:
            break
        cursor = body["nextCursor"]
        if len(created) < 500:
            # Between pages: 5 new users, and 5 deletions spread over the whole order
            # (behind the cursor, just ahead of it, far ahead, and one just created).
            batch = 5 * (pages - 1)
            victims = [seeded[(batch * 97 + k * 1999) % len(seeded)] for k in range(4)]
            victims = [victim for victim in victims if victim not in deleted]
            operations: list[dict[str, Any]] = [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"n{pages}-{k}",
                    "data": user_payload(f"churn{pages:03d}-{k}"),
                }
                for k in range(5)
            ]
            operations += [{"method": "DELETE", "path": f"/Users/{victim}"} for victim in victims]
            response = scim.post("/Bulk", {"schemas": [BULK_SCHEMA], "Operations": operations})
            assert response.status_code == 200, response.get_json()
            results = response.get_json()["Operations"]
            assert all(result["status"] in ("201", "204") for result in results), results
            fresh = [r["location"].rsplit("/", 1)[1] for r in results if r["status"] == "201"]
            created.update(fresh)
            deleted.update(victims)
            # One of the new users goes again at once.
            assert scim.delete(f"/Users/{fresh[0]}").status_code == 204
            deleted.add(fresh[0])
    assert len(created) == 500
    assert len(seen) == len(set(seen)), "a user was seen twice"
    survivors = set(seeded) - deleted
    assert survivors <= set(seen), f"{len(survivors - set(seen))} surviving users were missed"
    assert set(seen) <= set(seeded) | created
    assert pages >= 100


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
class TestSortedWalks:
    """Cursor paging keeps ``sortBy``/``sortOrder`` across pages, on both databases."""

    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        return make_settings(database_url)

    def test_sorted_descending_walk_is_in_order_and_complete(
        self, scim: ScimClient, database: Database
    ) -> None:
        """A walk sorted by userName descending lists every user once, in order."""
        ids = insert_users(database, 250)
        # Users without a displayName sort last; ties of displayName go by store order.
        for n, user_id in enumerate(ids[:60]):
            response = scim.patch(
                f"/Users/{user_id}",
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "displayName", "value": f"Name {n % 7}"}],
                },
            )
            assert response.status_code == 200
        names = [
            user["userName"]
            for user in walk(scim, sortBy="userName", sortOrder="descending", count=40)
        ]
        assert names == sorted((f"user{n:05d}" for n in range(250)), reverse=True)
        by_display = walk(scim, sortBy="displayName", count=25)
        assert len({user["id"] for user in by_display}) == 250
        keys = [user.get("displayName") for user in by_display]
        assert keys[:60] == sorted(keys[:60]) and all(key is None for key in keys[60:])

    def test_walk_by_timestamp_keeps_its_order(self, scim: ScimClient, database: Database) -> None:
        """Sorted by meta.lastModified (a timestamp in the cursor), newest first, each once."""
        ids = insert_users(database, 45)
        walked = walk(scim, sortBy="meta.lastModified", sortOrder="descending", count=10)
        assert [user["id"] for user in walked] == ids[::-1]

    def test_previous_cursor_goes_back_a_page(self, scim: ScimClient, database: Database) -> None:
        """The previousCursor returns the page before, with the same cursors onward."""
        insert_users(database, 50)
        first = cursor_page(scim, cursor="", count=20, sortBy="userName")
        assert "previousCursor" not in first
        second = cursor_page(scim, cursor=first["nextCursor"], count=20, sortBy="userName")
        back = cursor_page(scim, cursor=second["previousCursor"], count=20, sortBy="userName")
        assert [u["id"] for u in back["Resources"]] == [u["id"] for u in first["Resources"]]
        assert "previousCursor" not in back
        again = cursor_page(scim, cursor=back["nextCursor"], count=20, sortBy="userName")
        assert [u["id"] for u in again["Resources"]] == [u["id"] for u in second["Resources"]]
        last = cursor_page(scim, cursor=second["nextCursor"], count=20, sortBy="userName")
        assert len(last["Resources"]) == 10 and "nextCursor" not in last
        assert last["totalResults"] == 50


def test_groups_and_post_search_page_by_cursor(scim: ScimClient) -> None:
    """/Groups and /Groups/.search page by cursor too, the cursor in the search body."""
    for n in range(7):
        assert scim.post("/Groups", group_payload(f"team {n}")).status_code == 201
    names = [group["displayName"] for group in walk(scim, "/Groups", count=3)]
    assert sorted(names) == [f"team {n}" for n in range(7)]
    seen: list[str] = []
    cursor = ""
    while True:
        body = {
            "schemas": [SEARCH_SCHEMA],
            "filter": 'displayName sw "team"',
            "sortBy": "displayName",
            "cursor": cursor,
            "count": 2,
        }
        response = scim.post("/Groups/.search", body)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert page["totalResults"] == 7
        seen.extend(group["displayName"] for group in page["Resources"])
        if "nextCursor" not in page:
            break
        cursor = page["nextCursor"]
    assert seen == [f"team {n}" for n in range(7)]


def test_bare_cursor_parameter_asks_for_the_first_page(
    scim: ScimClient, database: Database
) -> None:
    """``?cursor&count=10`` (no value, as RFC 9865 writes it) starts a cursor walk."""
    insert_users(database, 15)
    response = scim.get("/Users?cursor&count=10")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["itemsPerPage"] == 10 and "nextCursor" in body and "startIndex" not in body


def test_index_paging_stays_the_default(scim: ScimClient, database: Database) -> None:
    """Without cursor, a list is index-paged as before: startIndex, and no cursors."""
    insert_users(database, 30)
    body = cursor_page(scim, count=10, startIndex=11)
    assert body["startIndex"] == 11 and body["itemsPerPage"] == 10
    assert "nextCursor" not in body and "previousCursor" not in body


def test_count_zero_returns_only_the_total(scim: ScimClient, database: Database) -> None:
    """count=0 with a cursor: no resources, the total, and no cursor to follow."""
    insert_users(database, 5)
    body = cursor_page(scim, cursor="", count=0)
    assert body["totalResults"] == 5 and body["Resources"] == []
    assert "nextCursor" not in body


def test_service_provider_config_advertises_cursor_paging(scim: ScimClient) -> None:
    """The pagination object of RFC 9865 §4: both methods, index the default, the timeout."""
    config = scim.get("/ServiceProviderConfig").get_json()
    assert config["pagination"] == {
        "cursor": True,
        "index": True,
        "defaultPaginationMethod": "index",
        "defaultPageSize": 100,
        "maxPageSize": 1000,
        "cursorTimeout": 3600,
    }


# -- refused cursors ----------------------------------------------------------------------------


def test_tampered_or_foreign_cursors_are_invalid(scim: ScimClient, database: Database) -> None:
    """A cursor changed by a byte, made up, or unreadable gets 400 invalidCursor."""
    insert_users(database, 30)
    cursor = cursor_page(scim, cursor="", count=10)["nextCursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for bad in (flipped, "not-a-cursor", cursor + "x", "a b", "%ZZ"):
        response = scim.get("/Users", query_string={"cursor": bad, "count": 10})
        assert_scim_error(response, 400, "invalidCursor")


def test_cursor_of_another_query_is_invalid(scim: ScimClient, database: Database) -> None:
    """A cursor is bound to its query: another filter, sort or endpoint refuses it."""
    insert_users(database, 30)
    group = scim.post("/Groups", group_payload("g")).get_json()
    assert group["id"]
    cursor = cursor_page(scim, cursor="", count=10, sortBy="userName")["nextCursor"]
    for path, query in (
        ("/Users", {"sortBy": "userName", "filter": 'userName sw "u"'}),
        ("/Users", {"sortBy": "displayName"}),
        ("/Users", {"sortBy": "userName", "sortOrder": "descending"}),
    ):
        response = scim.get(path, query_string={**query, "cursor": cursor, "count": 10})
        assert_scim_error(response, 400, "invalidCursor")
    unsorted = cursor_page(scim, cursor="", count=10)["nextCursor"]
    response = scim.get("/Groups", query_string={"cursor": unsorted, "count": 10})
    assert_scim_error(response, 400, "invalidCursor")


def test_count_must_stay_and_fit_max_page_size(scim: ScimClient, database: Database) -> None:
    """A count changed on a later page, or beyond maxPageSize: 400 invalidCount."""
    insert_users(database, 30)
    cursor = cursor_page(scim, cursor="", count=10)["nextCursor"]
    response = scim.get("/Users", query_string={"cursor": cursor, "count": 20})
    assert_scim_error(response, 400, "invalidCount")
    response = scim.get("/Users", query_string={"cursor": "", "count": 1001})
    assert_scim_error(response, 400, "invalidCount")


def test_expired_cursor_is_refused(
    scim: ScimClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor older than cursorTimeout gets 400 expiredCursor."""
    insert_users(database, 30)
    real_time = time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() - 3601)
    cursor = cursor_page(scim, cursor="", count=10)["nextCursor"]
    monkeypatch.setattr(itsdangerous.timed.time, "time", real_time)
    response = scim.get("/Users", query_string={"cursor": cursor, "count": 10})
    assert_scim_error(response, 400, "expiredCursor")


def test_cursor_with_start_index_or_at_the_root_is_refused(scim: ScimClient) -> None:
    """Both paging methods at once, or a cursor across resource types: 400 invalidValue."""
    response = scim.get("/Users", query_string={"cursor": "", "startIndex": 1})
    assert_scim_error(response, 400, "invalidValue")
    response = scim.post("/.search", {"schemas": [SEARCH_SCHEMA], "cursor": ""})
    assert_scim_error(response, 400, "invalidValue")
