"""Counting the RFC 7644 deviations each token's client sends, whatever becomes of the request."""

from __future__ import annotations

import logging
from datetime import UTC
from datetime import datetime

import pytest
from flask import Flask

from scimbridge.store import deviations as deviation_store
from scimbridge.store.database import Database

from .conftest import ScimClient
from .conftest import patch_payload
from .conftest import user_payload

ENTRA_DEACTIVATION = patch_payload({"op": "Replace", "path": "active", "value": "False"})


def _client(app: Flask, profile: str) -> ScimClient:
    token = app.extensions["scimbridge"].tokens.create(profile, profile=profile)
    return ScimClient(app.test_client(), token)


def _counts(database: Database) -> dict[tuple[str, str], tuple[int, int]]:
    with database.read() as conn:
        found = deviation_store.recent_deviations(conn)
    return {(c.token_name, c.deviation): (c.tolerated, c.refused) for c in found}


def test_a_change_counts_its_deviations_once(app: Flask, database: Database) -> None:
    """Entra's deactivation PATCH: each deviation counted once per request, with the change."""
    entra = _client(app, "entra")
    user_id = entra.post("/Users", user_payload("dev@example.com")).json["id"]
    for _ in range(2):
        assert entra.patch(f"/Users/{user_id}", ENTRA_DEACTIVATION).status_code == 200
    assert _counts(database) == {("entra", "op-case"): (2, 0), ("entra", "string-boolean"): (2, 0)}


def test_a_failed_change_still_counts_its_deviations(app: Flask, database: Database) -> None:
    """A PATCH of an unknown user writes nothing, yet its deviations are counted."""
    entra = _client(app, "entra")
    assert entra.patch("/Users/unknown", ENTRA_DEACTIVATION).status_code == 404
    assert _counts(database) == {("entra", "op-case"): (1, 0), ("entra", "string-boolean"): (1, 0)}


def test_a_refused_deviation_is_counted_as_refused(app: Flask, database: Database) -> None:
    """A strict token's refusal changes nothing and is counted once."""
    strict = _client(app, "strict")
    user_id = strict.post("/Users", user_payload("strict@example.com")).json["id"]
    assert strict.patch(f"/Users/{user_id}", ENTRA_DEACTIVATION).status_code == 400
    assert strict.get(f"/Users/{user_id}").json["active"] is True
    assert _counts(database) == {("strict", "op-case"): (0, 1)}


def test_deviations_of_bulk_operations_are_counted_once_each(
    app: Flask, database: Database
) -> None:
    """Two Entra PATCHes in one /Bulk request: one request, each deviation counted once."""
    entra = _client(app, "entra")
    user_id = entra.post("/Users", user_payload("bulk@example.com")).json["id"]
    operation = {"method": "PATCH", "path": f"/Users/{user_id}", "data": ENTRA_DEACTIVATION}
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [operation, operation],
    }
    assert entra.post("/Bulk", bulk).status_code == 200
    assert _counts(database) == {("entra", "op-case"): (1, 0), ("entra", "string-boolean"): (1, 0)}


def test_each_kind_of_deviation_is_logged_once_and_counted_every_time(
    app: Flask, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """An IdP sends the same deviations on every request: INFO says each kind once."""
    entra = app.extensions["scimbridge"].tokens.create("entra-logged-once", profile="entra")
    client = ScimClient(app.test_client(), entra)
    user_id = client.post("/Users", user_payload("logged@example.com")).json["id"]
    with caplog.at_level(logging.DEBUG, logger="scimbridge.scim.quirks"):
        for _ in range(3):
            assert client.patch(f"/Users/{user_id}", ENTRA_DEACTIVATION).status_code == 200
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debugs = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(infos) == 2 and len(debugs) == 4
    assert all("'entra-logged-once'" in message for message in infos)
    assert _counts(database)[("entra-logged-once", "string-boolean")] == (3, 0)


def test_one_request_counts_several_deviations_on_either_database(db: Database) -> None:
    """The counts of one request are written together; each adds to its own row."""
    now = datetime.now(UTC)
    for _ in range(2):
        with db.write() as conn:
            deviation_store.count_deviations(
                conn, "idp", ["op-case", "string-boolean"], ["op-case"], now
            )
    assert _counts(db) == {("idp", "op-case"): (2, 2), ("idp", "string-boolean"): (2, 0)}
