"""The first token works with the IdP that uses it: without --profile a token is ``generic``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from scimbridge.app import create_app
from scimbridge.cli.main import main
from scimbridge.store.database import Database

from .conftest import ScimClient
from .conftest import make_settings
from .conftest import patch_payload
from .conftest import user_payload


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"SCIMBRIDGE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


def test_token_without_profile_is_generic_and_listed_so(tmp_path: Path) -> None:
    """``token create NAME`` gets generic; ``--profile strict`` is opt-in; list names both."""
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    _cli(url, "db", "upgrade")
    created = _cli(url, "token", "create", "default")
    assert "(profile generic)" in created
    _cli(url, "token", "create", "careful", "--profile", "strict")
    listing = [line.split("\t")[:3] for line in _cli(url, "token", "list").splitlines()]
    assert listing == [["default", "scim", "generic"], ["careful", "scim", "strict"]]


def test_first_token_passes_entra_and_okta_first_connection_and_cycle(tmp_path: Path) -> None:
    """With the first token, Entra's and Okta's first requests succeed and are stored."""
    url = f"sqlite:///{tmp_path / 'scimbridge.db'}"
    _cli(url, "db", "upgrade")
    token = _cli(url, "token", "create", "default").strip().splitlines()[-1]
    database = Database(url)
    try:
        scim = ScimClient(create_app(make_settings(url), database).test_client(), token)
        # Entra's "Test connection": a filter on a random attribute value, unquoted at times.
        probe = scim.get("/Users", query_string={"filter": "userName eq randomuser"})
        assert probe.status_code == 200 and probe.get_json()["totalResults"] == 0
        # Okta's "Test connector configuration".
        accept = {"Accept": "application/scim+json; charset=utf-8"}
        for path in ("/Users?startIndex=1&count=2", "/Groups?startIndex=1&count=100"):
            assert scim.get(path, headers=accept).status_code == 200
        user = scim.post("/Users", user_payload("ada", active=True)).get_json()
        # Entra's first cycle disables with its own spelling: "Replace" and "False".
        response = scim.patch(
            f"/Users/{user['id']}",
            patch_payload({"op": "Replace", "path": "active", "value": "False"}),
        )
        assert response.status_code == 200, response.get_json()
        assert scim.get(f"/Users/{user['id']}").get_json()["active"] is False
    finally:
        database.dispose()
