"""System API ``/users``, each operation with its refusals.

Listing and filters, reading, creating, editing, roles, suspension, deletion, password resets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from flask import Flask

from scimbridge.domain.lifecycle import Actor

from .api_support import ApiClient
from .api_support import api
from .api_support import api_app
from .api_support import api_token
from .api_support import build_app
from .api_support import database_of
from .api_support import directory_of
from .api_support import error_fields
from .api_support import problem_type
from .conftest import ScimClient
from .conftest import group_payload
from .conftest import patch_payload
from .lifecycle_support import BROWSER
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import audit_rows
from .lifecycle_support import password_hashes
from .lifecycle_support import queued_emails

__all__ = ["api", "api_app"]

ADMIN = Actor("admin", "admin-1", "alice.admin")


def create(api: ApiClient, email: str, **fields: object) -> dict[str, object]:
    response = api.post("/users", {"email": email, **fields})
    assert response.status_code == 201, response.get_json()
    body: dict[str, object] = response.get_json()
    return body


# -- creating -----------------------------------------------------------------------------------


def test_create_user_returns_the_generated_temporary_password_once(
    api: ApiClient, api_app: Flask
) -> None:
    """The 201 body carries the generated password; nothing else ever shows it again."""
    response = api.post(
        "/users", {"email": "ada@example.com", "given_name": "Ada", "role": "manager"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"http://scim.test/api/v1/users/{body['id']}"
    assert body["status"] == "active" and body["role"] == "manager"
    assert body["password_change_required"] is True
    password = body["temporary_password"]
    assert password and len(password) >= 12
    shown = api.get(f"/users/{body['id']}")
    assert shown.status_code == 200
    assert "temporary_password" not in shown.get_json()
    assert password not in shown.get_data(as_text=True)
    assert password not in api.get("/audit/events").get_data(as_text=True)
    assert all(password not in stored for stored in password_hashes(database_of(api_app)))


def test_create_user_with_a_chosen_password_does_not_echo_it(api: ApiClient) -> None:
    body = create(api, "bob@example.com", temporary_password=STRONG_PASSWORD)
    assert body["temporary_password"] is None


def test_create_user_refuses_a_weak_password_naming_the_field(api: ApiClient) -> None:
    response = api.post("/users", {"email": "bob@example.com", "temporary_password": "short"})
    assert response.status_code == 422
    assert problem_type(response) == "password-rejected"
    assert error_fields(response) == {"temporary_password"}
    assert "short" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email"}),
        ({"email": "not an address"}, {"email"}),
        ({"email": "a@example.com", "password": "x"}, {"password"}),
        ({"email": "a@example.com", "given_name": 7}, {"given_name"}),
        ({"email": "a@example.com", "given_name": "x" * 101}, {"given_name"}),
        ({"email": "a@example.com", "given_name": "nul\u0000"}, {"given_name"}),
        ([{"email": "a@example.com"}], {"body"}),
    ],
)
def test_create_user_validation_names_each_field(
    api: ApiClient, body: object, fields: set[str]
) -> None:
    response = api.post("/users", body)
    assert response.status_code == 422
    assert problem_type(response) == "validation"
    assert error_fields(response) == fields


def test_create_user_refuses_a_taken_email_and_an_unknown_role(api: ApiClient) -> None:
    create(api, "ada@example.com")
    taken = api.post("/users", {"email": "ADA@example.com"})
    assert taken.status_code == 409
    assert problem_type(taken) == "email-taken"
    assert error_fields(taken) == {"email"}
    unknown = api.post("/users", {"email": "bob@example.com", "role": "owner"})
    assert unknown.status_code == 422
    assert problem_type(unknown) == "unknown-role"
    assert error_fields(unknown) == {"role"}


# -- reading and listing -------------------------------------------------------------------------


def test_get_user_answers_404_for_unknown_and_impossible_ids(api: ApiClient) -> None:
    for user_id in ("00000000-0000-0000-0000-000000000000", "x" * 65, "a%00b", "é"):
        response = api.get(f"/users/{user_id}")
        assert response.status_code == 404
        assert problem_type(response) == "not-found"


@pytest.fixture
def any_db_app(database_url: str) -> Iterator[Flask]:
    """The app on SQLite and on PostgreSQL: the listing queries differ per dialect."""
    yield from build_app(database_url)


def test_list_users_filters_by_status_role_and_text_in_the_database(any_db_app: Flask) -> None:
    """Roles come from nested groups; the default role is held by users in no role group."""
    api = ApiClient(any_db_app.test_client(), api_token(any_db_app, "lister"))
    scim = ScimClient(
        any_db_app.test_client(), any_db_app.extensions["scimbridge"].tokens.create("idp")
    )
    admin = create(api, "grace.admin@example.com", given_name="Grace", role="admin")
    manager = create(api, "ada.manager@example.com", given_name="Ada", role="manager")
    nested = create(api, "linus@example.com", given_name="Linus")
    member = create(api, "margaret@example.com", given_name="Margaret")
    invited = api.post("/invitations", {"email": "ken@example.com"}).get_json()
    api.post(f"/users/{member['id']}/suspend")
    # Linus is an admin through a group nested in the admins' group.
    ops = scim.post("/Groups", group_payload("ops", [str(nested["id"])])).get_json()
    admins = api.get("/roles").get_json()["items"][0]["groups"][0]["group_id"]
    scim.patch(
        f"/Groups/{admins}",
        patch_payload({"op": "add", "path": "members", "value": [{"value": ops["id"]}]}),
    )

    def ids(query: str) -> list[object]:
        response = api.get(f"/users?{query}")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["total"] == len(body["items"])
        return [user["id"] for user in body["items"]]

    assert ids("role=admin") == [admin["id"], nested["id"]]
    assert ids("role=manager") == [manager["id"]]
    assert ids("role=member") == [member["id"], invited["id"]]
    assert ids("status=suspended") == [member["id"]]
    assert ids("status=invited&role=member") == [invited["id"]]
    assert ids("q=ADA") == [manager["id"]]
    assert ids("q=example.com&status=active") == [admin["id"], manager["id"], nested["id"]]
    assert ids("q=100%25") == []
    assert api.get(f"/users/{nested['id']}").get_json()["role"] == "admin"
    unknown = api.get("/users?role=owner")
    assert unknown.status_code == 422 and problem_type(unknown) == "unknown-role"


def test_list_users_pages_by_cursor_and_by_offset(api: ApiClient) -> None:
    created = [create(api, f"user{n}@example.com")["id"] for n in range(5)]
    seen: list[object] = []
    query = "/users?limit=2"
    while True:
        page = api.get(query).get_json()
        assert page["total"] == 5
        seen += [user["id"] for user in page["items"]]
        if page["next_cursor"] is None:
            break
        query = f"/users?limit=2&cursor={page['next_cursor']}"
    assert seen == created
    by_offset = api.get("/users?limit=2&offset=3").get_json()
    assert [user["id"] for user in by_offset["items"]] == created[3:]
    assert by_offset["next_cursor"] is None
    bad_queries = (
        "limit=0",
        "limit=201",
        "limit=1.0",
        "offset=-1",
        "cursor=abc",
        "status=gone",
        "limit=1&limit=2",
    )
    for bad in bad_queries:
        response = api.get(f"/users?{bad}")
        assert response.status_code == 422, bad
        assert problem_type(response) == "validation"
        assert error_fields(response) == {bad.split("=")[0]}


# -- editing -------------------------------------------------------------------------------------


def test_update_user_changes_profile_and_tells_the_old_address(
    api: ApiClient, api_app: Flask
) -> None:
    user = create(api, "ada@example.com", given_name="Ada")
    response = api.patch(
        f"/users/{user['id']}",
        {
            "family_name": "Lovelace",
            "email": "ada.lovelace@example.com",
            "phone_numbers": [{"value": "+44 20 7946 0000", "type": "mobile"}],
            "title": "Analyst",
            "department": "Engines",
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["display_name"] == "Ada Lovelace"
    assert body["email"] == body["user_name"] == "ada.lovelace@example.com"
    assert body["phone_numbers"] == [{"value": "+44 20 7946 0000", "type": "mobile"}]
    assert (body["title"], body["department"]) == ("Analyst", "Engines")
    notices = queued_emails(database_of(api_app), "email_changed", "ada@example.com")
    assert notices[0].context["new_email"] == "ada.lovelace@example.com"
    cleared = api.patch(f"/users/{user['id']}", {"title": "", "phone_numbers": []}).get_json()
    assert cleared["title"] is None and cleared["phone_numbers"] == []


def test_update_user_refusals(api: ApiClient) -> None:
    ada = create(api, "ada@example.com")
    create(api, "bob@example.com")
    taken = api.patch(f"/users/{ada['id']}", {"email": "bob@example.com"})
    assert taken.status_code == 409 and problem_type(taken) == "email-taken"
    invalid = api.patch(f"/users/{ada['id']}", {"phone_numbers": [{"type": "mobile"}]})
    assert invalid.status_code == 422 and error_fields(invalid) == {"phone_numbers.0.value"}
    missing = api.patch("/users/00000000-0000-0000-0000-000000000000", {"title": "x"})
    assert missing.status_code == 404


def test_change_role_for_good_and_until_a_date(api: ApiClient) -> None:
    user = create(api, "ada@example.com")
    promoted = api.put(f"/users/{user['id']}/role", {"role": "manager"}).get_json()
    assert (promoted["role"], promoted["role_until"]) == ("manager", None)
    until = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    temporary = api.put(
        f"/users/{user['id']}/role", {"role": "admin", "until": until.isoformat()}
    ).get_json()
    assert temporary["role"] == "admin"
    assert datetime.fromisoformat(temporary["role_until"]) == until
    past = api.put(f"/users/{user['id']}/role", {"role": "admin", "until": "2000-01-01T00:00:00Z"})
    assert past.status_code == 422 and error_fields(past) == {"until"}
    naive = api.put(f"/users/{user['id']}/role", {"role": "admin", "until": "2030-01-01T00:00"})
    assert naive.status_code == 422 and error_fields(naive) == {"until"}
    edge = api.put(
        f"/users/{user['id']}/role", {"role": "admin", "until": "9999-12-31T23:59:59-05:00"}
    )
    assert edge.status_code == 422 and error_fields(edge) == {"until"}
    unknown = api.put(f"/users/{user['id']}/role", {"role": "owner"})
    assert unknown.status_code == 422 and problem_type(unknown) == "unknown-role"


# -- suspension, deletion, resets -------------------------------------------------------------


def test_suspend_ends_sessions_and_reactivate_allows_login_again(
    api: ApiClient, api_app: Flask
) -> None:
    user = create(api, "ada@example.com", temporary_password=STRONG_PASSWORD)
    directory = directory_of(api_app)
    directory.login("ada@example.com", STRONG_PASSWORD, BROWSER)
    suspended = api.post(f"/users/{user['id']}/suspend")
    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"
    assert api.get(f"/users/{user['id']}/sessions").get_json()["items"] == []
    [event] = audit_rows(database_of(api_app), "user.suspended")
    assert event.changes["sessions_ended"] == 1
    again = api.post(f"/users/{user['id']}/suspend")
    assert again.status_code == 200
    assert len(audit_rows(database_of(api_app), "user.suspended")) == 1
    reactivated = api.post(f"/users/{user['id']}/reactivate").get_json()
    assert reactivated["status"] == "active"
    assert directory.login("ada@example.com", STRONG_PASSWORD, BROWSER).user_id == user["id"]


def test_delete_user_is_final_and_leaves_a_tombstone(api: ApiClient, api_app: Flask) -> None:
    user = create(api, "ada@example.com")
    deleted = api.delete(f"/users/{user['id']}")
    assert deleted.status_code == 204 and deleted.data == b""
    assert "Content-Type" not in deleted.headers
    assert api.get(f"/users/{user['id']}").status_code == 404
    assert api.delete(f"/users/{user['id']}").status_code == 404
    [tombstone] = audit_rows(database_of(api_app), "user.deleted")
    assert tombstone.target_id == user["id"] and tombstone.actor_type == "api"


def test_password_reset_queues_a_link_for_active_users_only(api: ApiClient, api_app: Flask) -> None:
    user = create(api, "ada@example.com")
    response = api.post(f"/users/{user['id']}/password-reset")
    assert response.status_code == 202
    assert response.get_json() == {"user_id": user["id"], "email": "ada@example.com"}
    [email] = queued_emails(database_of(api_app), "password_reset", "ada@example.com")
    assert email.context["link"].startswith("http://scim.test/password/reset/")
    invited = api.post("/invitations", {"email": "bob@example.com"}).get_json()
    refused = api.post(f"/users/{invited['id']}/password-reset")
    assert refused.status_code == 409 and problem_type(refused) == "invalid-transition"
    api.post(f"/users/{user['id']}/suspend")
    suspended = api.post(f"/users/{user['id']}/password-reset")
    assert suspended.status_code == 409
    missing = api.post("/users/00000000-0000-0000-0000-000000000000/password-reset")
    assert missing.status_code == 404
