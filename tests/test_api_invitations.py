"""System API invitations, sessions, audit trail, roles and groups."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from urllib.parse import quote

from flask import Flask

from .api_support import ApiClient
from .api_support import api
from .api_support import api_app
from .api_support import api_token
from .api_support import database_of
from .api_support import directory_of
from .api_support import error_fields
from .api_support import problem_type
from .lifecycle_support import BROWSER
from .lifecycle_support import STRONG_PASSWORD
from .lifecycle_support import expire_links
from .lifecycle_support import queued_emails

__all__ = ["api", "api_app"]

MISSING = "00000000-0000-0000-0000-000000000000"


# -- invitations ---------------------------------------------------------------------------------


def test_invite_creates_an_invited_user_and_queues_the_email(
    api: ApiClient, api_app: Flask
) -> None:
    response = api.post("/invitations", {"email": "ada@example.com", "role": "manager"})
    assert response.status_code == 201
    invitation = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/users/{invitation['id']}")
    assert invitation["role"] == "manager" and invitation["expired"] is False
    assert api.get(f"/users/{invitation['id']}").get_json()["status"] == "invited"
    [email] = queued_emails(database_of(api_app), "invitation", "ada@example.com")
    assert email.context["invited_by"] == "hr-script"
    assert api.get(f"/invitations/{invitation['id']}").get_json() == invitation


def test_invite_refusals(api: ApiClient) -> None:
    api.post("/invitations", {"email": "ada@example.com"})
    taken = api.post("/invitations", {"email": "ada@example.com"})
    assert taken.status_code == 409 and problem_type(taken) == "email-taken"
    unknown = api.post("/invitations", {"email": "bob@example.com", "role": "owner"})
    assert unknown.status_code == 422 and error_fields(unknown) == {"role"}
    invalid = api.post("/invitations", {"email": "bob"})
    assert invalid.status_code == 422 and error_fields(invalid) == {"email"}


def test_invite_many_reports_each_outcome_in_order(api: ApiClient, api_app: Flask) -> None:
    api.post("/users", {"email": "taken@example.com"})
    response = api.post(
        "/invitations/batch",
        {
            "invitations": [
                {"email": "ada@example.com"},
                {"email": "taken@example.com"},
                {"email": "bob@example.com", "role": "owner"},
                {"email": "carol@example.com", "role": "admin"},
            ]
        },
    )
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["email"] for r in results] == [
        "ada@example.com",
        "taken@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert results[0]["invitation"]["role"] == "member" and results[0]["problem"] is None
    assert results[1]["problem"]["type"].endswith("/email-taken")
    assert results[1]["problem"]["status"] == 409
    assert results[2]["problem"]["type"].endswith("/unknown-role")
    assert results[3]["invitation"]["role"] == "admin"
    sent = {email.to for email in queued_emails(database_of(api_app), "invitation")}
    assert sent == {"ada@example.com", "carol@example.com"}
    for body in ({"invitations": []}, {"invitations": [{"email": "x@example.com"}] * 101}):
        refused = api.post("/invitations/batch", body)
        assert refused.status_code == 422 and error_fields(refused) == {"invitations"}


def test_pending_invitations_list_shows_expired_ones(api: ApiClient, api_app: Flask) -> None:
    ada = api.post("/invitations", {"email": "ada@example.com"}).get_json()
    bob = api.post("/invitations", {"email": "bob@example.com"}).get_json()
    api.post("/users", {"email": "carol@example.com"})
    expire_links(database_of(api_app), bob["id"])
    listing = api.get("/invitations").get_json()
    assert listing["total"] == 2
    assert [(i["id"], i["expired"]) for i in listing["items"]] == [
        (ada["id"], False),
        (bob["id"], True),
    ]
    assert [i["id"] for i in api.get("/invitations?q=bob").get_json()["items"]] == [bob["id"]]


def test_resend_sends_a_new_link_and_voids_the_old_one(api: ApiClient, api_app: Flask) -> None:
    ada = api.post("/invitations", {"email": "ada@example.com"}).get_json()
    first = queued_emails(database_of(api_app), "invitation", "ada@example.com")[0]
    response = api.post(f"/invitations/{ada['id']}/resend")
    assert response.status_code == 200 and response.get_json()["id"] == ada["id"]
    second = queued_emails(database_of(api_app), "invitation", "ada@example.com")[-1]
    assert second.token != first.token
    directory = directory_of(api_app)
    assert directory.accept_invitation(second.token, STRONG_PASSWORD, BROWSER) == ada["id"]
    accepted = api.post(f"/invitations/{ada['id']}/resend")
    assert accepted.status_code == 409 and problem_type(accepted) == "invalid-transition"
    assert api.get(f"/invitations/{ada['id']}").status_code == 404
    assert api.post(f"/invitations/{MISSING}/resend").status_code == 404


def test_cancel_removes_the_invited_user_only(api: ApiClient) -> None:
    ada = api.post("/invitations", {"email": "ada@example.com"}).get_json()
    assert api.delete(f"/invitations/{ada['id']}").status_code == 204
    assert api.get(f"/users/{ada['id']}").status_code == 404
    active = api.post("/users", {"email": "bob@example.com"}).get_json()
    refused = api.delete(f"/invitations/{active['id']}")
    assert refused.status_code == 409 and problem_type(refused) == "invalid-transition"
    assert api.delete(f"/invitations/{MISSING}").status_code == 404


# -- sessions -------------------------------------------------------------------------------------


def test_sessions_are_listed_and_ended_one_or_all(api: ApiClient, api_app: Flask) -> None:
    user = api.post(
        "/users", {"email": "ada@example.com", "temporary_password": STRONG_PASSWORD}
    ).get_json()
    directory = directory_of(api_app)
    logins = [directory.login("ada@example.com", STRONG_PASSWORD, BROWSER) for _ in range(3)]
    listing = api.get(f"/users/{user['id']}/sessions").get_json()["items"]
    assert [s["id"] for s in listing] == [login.session_id for login in reversed(logins)]
    assert listing[0]["client_address"] == "192.0.2.10"
    assert "token" not in str(listing)
    assert api.delete(f"/users/{user['id']}/sessions/{logins[0].session_id}").status_code == 204
    assert directory.session(logins[0].session_token) is None
    again = api.delete(f"/users/{user['id']}/sessions/{logins[0].session_id}")
    assert again.status_code == 404 and problem_type(again) == "not-found"
    ended = api.delete(f"/users/{user['id']}/sessions")
    assert ended.status_code == 200 and ended.get_json() == {"ended": 2}
    assert api.get(f"/users/{user['id']}/sessions").get_json()["items"] == []
    assert api.get(f"/users/{MISSING}/sessions").status_code == 404
    assert api.delete(f"/users/{MISSING}/sessions").status_code == 404


def test_ending_sessions_needs_the_sessions_scope(api_app: Flask) -> None:
    reader = ApiClient(api_app.test_client(), api_token(api_app, "support", "users:read"))
    assert reader.get(f"/users/{MISSING}/sessions").status_code == 404
    assert reader.delete(f"/users/{MISSING}/sessions").status_code == 403


# -- audit ---------------------------------------------------------------------------------------


def test_audit_events_filter_by_user_actor_action_and_time(api: ApiClient, api_app: Flask) -> None:
    ada = api.post("/users", {"email": "ada@example.com"}).get_json()
    bob = api.post("/invitations", {"email": "bob@example.com"}).get_json()
    api.post(f"/users/{ada['id']}/suspend")
    other = ApiClient(api_app.test_client(), api_token(api_app, "other"))
    other.post(f"/users/{ada['id']}/reactivate")

    def actions(query: str) -> list[str]:
        response = api.get(f"/audit/events?{query}")
        assert response.status_code == 200, response.get_json()
        return [event["action"] for event in response.get_json()["items"]]

    assert actions(f"user_id={ada['id']}") == ["user.reactivated", "user.suspended", "user.created"]
    assert actions(f"user_id={bob['id']}") == ["user.invited"]
    assert actions("actor=other") == ["user.reactivated"]
    assert actions("action=user.suspended") == ["user.suspended"]
    future = quote((datetime.now(UTC) + timedelta(hours=1)).isoformat())
    past = quote((datetime.now(UTC) - timedelta(hours=1)).isoformat())
    assert actions(f"since={future}") == []
    assert len(actions(f"since={past}&until={future}")) == 4
    event = api.get("/audit/events?action=user.suspended").get_json()["items"][0]
    assert event["actor"] == {"type": "api", "id": "hr-script", "name": "hr-script"}
    assert event["target"] == {"type": "User", "id": ada["id"], "name": "ada@example.com"}
    assert event["changes"]["status"] == {"before": "active", "after": "suspended"}
    for bad in ("since=yesterday", "until=2030-01-01T00:00", "limit=0"):
        refused = api.get(f"/audit/events?{bad}")
        assert refused.status_code == 422 and error_fields(refused) == {bad.split("=")[0]}


def test_audit_events_page_by_cursor_newest_first(api: ApiClient) -> None:
    for n in range(5):
        api.post("/invitations", {"email": f"user{n}@example.com"})
    first = api.get("/audit/events?limit=3").get_json()
    assert first["total"] == 5 and first["next_cursor"]
    second = api.get(f"/audit/events?limit=3&cursor={first['next_cursor']}").get_json()
    assert second["total"] == 5 and second["next_cursor"] is None
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5


def test_audit_needs_the_audit_scope(api_app: Flask) -> None:
    reader = ApiClient(api_app.test_client(), api_token(api_app, "reader", "users:read"))
    assert reader.get("/audit/events").status_code == 403


# -- roles and groups ----------------------------------------------------------------------------


def test_roles_list_their_granting_groups_and_member_counts(api: ApiClient) -> None:
    before = api.get("/roles").get_json()["items"]
    assert [role["name"] for role in before] == ["admin", "manager", "member"]
    assert [role["default"] for role in before] == [False, False, True]
    assert before[0]["groups"] == [
        {"spec": "scimbridge-admins", "group_id": None, "display_name": None, "member_count": None}
    ]
    assert "users:write" in before[0]["permissions"]
    api.post("/users", {"email": "ada@example.com", "role": "admin"})
    api.post("/users", {"email": "bob@example.com", "role": "admin"})
    admins = api.get("/roles").get_json()["items"][0]["groups"][0]
    assert admins["display_name"] == "scimbridge-admins" and admins["member_count"] == 2


def test_groups_are_listed_with_member_counts_and_granted_roles(api: ApiClient) -> None:
    api.post("/users", {"email": "ada@example.com", "role": "admin"})
    api.post("/users", {"email": "bob@example.com", "role": "manager"})
    api.post("/users", {"email": "carol@example.com", "role": "manager"})
    groups = api.get("/groups").get_json()
    assert groups["total"] == 2
    assert [(g["display_name"], g["member_count"], g["grants_roles"]) for g in groups["items"]] == [
        ("scimbridge-admins", 1, ["admin"]),
        ("scimbridge-managers", 2, ["manager"]),
    ]
    page = api.get("/groups?limit=1").get_json()
    rest = api.get(f"/groups?limit=1&cursor={page['next_cursor']}").get_json()
    assert [g["display_name"] for g in page["items"] + rest["items"]] == [
        "scimbridge-admins",
        "scimbridge-managers",
    ]
