"""System API behaviour every operation shares.

Tokens and scopes, problem documents for every refusal, Idempotency-Key replays, and the
audit trail's actor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from scimbridge.api.operations import OPERATIONS
from scimbridge.api.operations import Operation
from scimbridge.api.operations import request_fingerprint
from scimbridge.service.clients.idempotency import IdempotencyKeys

from .api_support import ApiClient
from .api_support import api
from .api_support import api_app
from .api_support import api_token
from .api_support import build_app
from .api_support import database_of
from .api_support import problem_type
from .lifecycle_support import audit_rows
from .lifecycle_support import queued_emails

__all__ = ["api", "api_app"]

SOME_ID = "00000000-0000-0000-0000-000000000000"


def _path(spec: Operation) -> str:
    return re.sub(r"{\w+}", SOME_ID, spec.path)


# -- tokens and scopes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000],
)
def test_requests_without_a_valid_api_token_get_401(api_app: Flask, header: str | None) -> None:
    client = api_app.test_client()
    headers = {"Authorization": header} if header else {}
    for spec in OPERATIONS:
        response = client.open(f"/api/v1{_path(spec)}", method=spec.method, headers=headers)
        assert response.status_code == 401, spec.operation_id
        assert problem_type(response) == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_scim_and_api_tokens_do_not_open_each_other(api_app: Flask) -> None:
    tokens = api_app.extensions["scimbridge"].tokens
    scim_token = tokens.create("idp")
    api_token_value = api_token(api_app, "program")
    client = api_app.test_client()
    as_scim = client.get("/api/v1/users", headers={"Authorization": f"Bearer {scim_token}"})
    assert as_scim.status_code == 401 and problem_type(as_scim) == "unauthorized"
    as_api = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {api_token_value}"})
    assert as_api.status_code == 401
    assert (
        client.get(
            "/api/v1/users", headers={"Authorization": f"Bearer {api_token_value}"}
        ).status_code
        == 200
    )


def test_revoked_api_token_is_refused(api_app: Flask) -> None:
    tokens = api_app.extensions["scimbridge"].tokens
    api = ApiClient(api_app.test_client(), api_token(api_app, "temporary"))
    assert api.get("/users").status_code == 200
    tokens.revoke("temporary")
    assert api.get("/users").status_code == 401


@pytest.mark.parametrize("scope", ["users:read", "users:write", "invitations:write"])
def test_every_operation_refuses_a_token_without_its_scope_with_403(
    api_app: Flask, scope: str
) -> None:
    """A token with only ``scope`` gets 403 from every operation needing another scope."""
    api = ApiClient(api_app.test_client(), api_token(api_app, f"only-{scope}", scope))
    for spec in OPERATIONS:
        if spec.scope == scope:
            continue
        response = api.request(spec.method, _path(spec), {} if spec.body else None)
        assert response.status_code == 403, spec.operation_id
        assert problem_type(response) == "insufficient-scope"
        assert spec.scope in response.get_json()["detail"]
        assert f'scope="{spec.scope}"' in response.headers["WWW-Authenticate"]


def test_token_scopes_open_exactly_their_operations(api_app: Flask) -> None:
    reader = ApiClient(api_app.test_client(), api_token(api_app, "reader", "users:read"))
    assert reader.get("/users").status_code == 200
    assert reader.get("/roles").status_code == 200
    assert reader.post("/users", {"email": "a@example.com"}).status_code == 403
    auditor = ApiClient(api_app.test_client(), api_token(api_app, "auditor", "audit:read"))
    assert auditor.get("/audit/events").status_code == 200
    assert auditor.get("/users").status_code == 403


def test_token_scopes_must_be_known_and_for_api_tokens_only(api_app: Flask) -> None:
    tokens = api_app.extensions["scimbridge"].tokens
    with pytest.raises(ValueError, match="unknown scopes"):
        tokens.create("bad", kind="api", scopes=["users:admin"])
    with pytest.raises(ValueError, match="scopes are for api tokens"):
        tokens.create("scim-with-scope", kind="scim", scopes=["users:read"])
    with pytest.raises(ValueError, match="unknown kind"):
        tokens.create("odd", kind="ldap")


# -- problem documents ---------------------------------------------------------------------------


def test_malformed_json_is_a_400_problem(api: ApiClient) -> None:
    for raw in (b"{nope", b'{"email": "a@example.com"', b'{"email": "\\ud800@example.com"}'):
        response = api.post("/users", data=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert problem_type(response) == "malformed-request"


def test_a_body_that_is_not_json_is_a_415_problem(api: ApiClient) -> None:
    response = api.post("/users", data="email=a@example.com", content_type="text/plain")
    assert response.status_code == 415
    assert problem_type(response) == "unsupported-media-type"


def test_an_oversized_body_is_a_413_problem(api: ApiClient) -> None:
    response = api.post(
        "/users",
        data=b'{"email": "' + b"a" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert problem_type(response) == "payload-too-large"


def test_unknown_paths_and_methods_are_problems(api: ApiClient) -> None:
    for path in ("/nothing/here", "/users/%0A/sessions", "/users/x%0Ay", "/%0A"):
        missing = api.get(path)
        assert missing.status_code == 404 and problem_type(missing) == "not-found", path
    wrong_method = api.patch("/users")
    assert wrong_method.status_code == 405
    assert problem_type(wrong_method) == "method-not-allowed"
    assert wrong_method.headers["Allow"] == "GET, POST"
    assert api.put(f"/users/{SOME_ID}").headers["Allow"] == "DELETE, GET, PATCH"


def test_every_answer_carries_a_request_id_and_the_audit_trail_keeps_it(
    api: ApiClient, api_app: Flask
) -> None:
    response = api.post(
        "/invitations", {"email": "ada@example.com"}, headers={"X-Request-Id": "hr-run-42"}
    )
    assert response.headers["X-Request-Id"] == "hr-run-42"
    [event] = audit_rows(database_of(api_app), "user.invited")
    assert (event.actor_type, event.actor_id, event.actor_name) == ("api", "hr-script", "hr-script")
    assert event.request_id == "hr-run-42"
    assert event.client_address == "127.0.0.1"
    generated = api.get("/users", headers={"X-Request-Id": "not valid!"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


# -- idempotency ---------------------------------------------------------------------------------


@pytest.fixture
def any_db_app(database_url: str) -> Iterator[Flask]:
    yield from build_app(database_url)


def test_a_retry_with_the_same_key_replays_the_answer_without_acting_twice(
    any_db_app: Flask,
) -> None:
    api = ApiClient(any_db_app.test_client(), api_token(any_db_app, "hr-script"))
    database = database_of(any_db_app)
    key = {"Idempotency-Key": "invite-ada-1"}
    first = api.post("/invitations", {"email": "ada@example.com", "role": "manager"}, headers=key)
    assert first.status_code == 201
    retry = api.post("/invitations", {"role": "manager", "email": "ada@example.com"}, headers=key)
    assert retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(queued_emails(database, "invitation", "ada@example.com")) == 1
    assert len(audit_rows(database, "user.invited")) == 1
    other_body = api.post("/invitations", {"email": "bob@example.com"}, headers=key)
    assert other_body.status_code == 422
    assert problem_type(other_body) == "idempotency-key-reused"
    assert queued_emails(database, "invitation", "bob@example.com") == []


def test_a_replayed_creation_never_shows_the_generated_password_again(api: ApiClient) -> None:
    key = {"Idempotency-Key": "create-ada"}
    first = api.post("/users", {"email": "ada@example.com"}, headers=key)
    assert first.get_json()["temporary_password"]
    retry = api.post("/users", {"email": "ada@example.com"}, headers=key)
    assert retry.status_code == 201
    assert retry.get_json()["temporary_password"] is None
    assert retry.get_json()["id"] == first.get_json()["id"]


def test_idempotency_keys_belong_to_one_token(api: ApiClient, api_app: Flask) -> None:
    other = ApiClient(api_app.test_client(), api_token(api_app, "other-script"))
    key = {"Idempotency-Key": "same-key"}
    assert api.post("/invitations", {"email": "ada@example.com"}, headers=key).status_code == 201
    answer = other.post("/invitations", {"email": "ada@example.com"}, headers=key)
    assert answer.status_code == 409 and problem_type(answer) == "email-taken"


def test_a_refused_request_keeps_no_answer_so_a_retry_acts(api: ApiClient) -> None:
    create = api.post("/users", {"email": "ada@example.com"})
    user_id = create.get_json()["id"]
    key = {"Idempotency-Key": "reset-1"}
    api.post(f"/users/{user_id}/suspend")
    refused = api.post(f"/users/{user_id}/password-reset", headers=key)
    assert refused.status_code == 409
    api.post(f"/users/{user_id}/reactivate")
    assert api.post(f"/users/{user_id}/password-reset", headers=key).status_code == 202


def test_a_key_still_in_use_is_a_409_and_a_malformed_key_a_422(
    api: ApiClient, api_app: Flask
) -> None:
    keys: IdempotencyKeys = api_app.extensions["scimbridge_api"].idempotency
    body = {"email": "ada@example.com"}
    with api_app.test_request_context("/api/v1/invitations", method="POST", json=body):
        fingerprint = request_fingerprint()
    # The same request, sent a moment earlier, holds the key and is not answered yet.
    assert keys.begin("hr-script", "busy", fingerprint) is None
    busy = api.post("/invitations", body, headers={"Idempotency-Key": "busy"})
    assert busy.status_code == 409
    assert problem_type(busy) == "idempotency-key-in-progress"
    assert busy.headers["Retry-After"] == "1"
    for bad in ("", "with space", "x" * 256, "naïve"):
        response = api.post(
            "/invitations", {"email": "bob@example.com"}, headers={"Idempotency-Key": bad}
        )
        assert response.status_code == 422, bad
        assert problem_type(response) == "validation"
    assert api.get("/invitations").get_json()["total"] == 0


def test_a_reservation_abandoned_by_a_dead_process_is_taken_over(api_app: Flask) -> None:
    keys: IdempotencyKeys = api_app.extensions["scimbridge_api"].idempotency
    assert keys.begin("hr-script", "k", "hash") is None
    keys.stale_after = keys.stale_after * 0
    assert keys.begin("hr-script", "k", "hash") is None
    keys.finish("hr-script", "k", 201, {"id": "x"}, {})
    replay = keys.begin("hr-script", "k", "hash")
    assert replay is not None and replay.body == {"id": "x"}
