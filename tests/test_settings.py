"""Settings: a public URL left unset follows the address ``serve`` listens on."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimbridge.settings import Settings
from scimbridge.settings import listener_url


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCIMBRIDGE_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("SCIMBRIDGE_PUBLIC_URL", raising=False)


def test_an_unset_public_url_is_the_listening_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().public_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("SCIMBRIDGE_SERVER__PORT", "9000")
    settings = Settings()
    assert settings.public_url == "http://127.0.0.1:9000"
    assert settings.scim_base_url == "http://127.0.0.1:9000/scim/v2"


def test_a_public_url_that_is_set_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMBRIDGE_PUBLIC_URL", "https://scim.example.com")
    monkeypatch.setenv("SCIMBRIDGE_SERVER__PORT", "9000")
    settings = Settings()
    assert settings.public_url == "https://scim.example.com"
    assert settings.listening_on("10.0.0.5", 9001).public_url == "https://scim.example.com"


def test_serve_options_move_the_listener_and_an_unset_public_url() -> None:
    settings = Settings().listening_on("127.0.0.1", 9100)
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 9100)
    assert settings.public_url == "http://127.0.0.1:9100"
    assert settings.listening_on("127.0.0.1", 9200).public_url == "http://127.0.0.1:9200"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("scim.internal", "http://scim.internal:8080"),
    ],
)
def test_listener_urls(host: str, url: str) -> None:
    assert listener_url(host, 8080) == url
