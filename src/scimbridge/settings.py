"""The one typed settings object, read from the environment and a TOML file.

Every setting can be given as an environment variable (prefix ``SCIMBRIDGE_``, nested
sections joined with ``__``, e.g. ``SCIMBRIDGE_SCIM__MAX_PAGE_SIZE``) or in the TOML file named
by ``SCIMBRIDGE_CONFIG`` (default ``config/scimbridge.toml`` when it exists). The environment
wins over the file. ``config/scimbridge.example.toml`` documents every setting.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel
from pydantic import Field
from pydantic_settings import BaseSettings
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict
from pydantic_settings import TomlConfigSettingsSource

DEFAULT_CONFIG_FILE = Path("config/scimbridge.toml")


class ServerSettings(BaseModel):
    """How ``scimbridge serve`` listens."""

    host: str = "127.0.0.1"
    """Address gunicorn binds to."""

    port: int = 8080
    """TCP port gunicorn binds to."""

    workers: int = 2
    """Gunicorn worker processes."""

    threads: int = 4
    """Threads per worker (gthread worker class, which keeps client connections alive)."""


class ScimSettings(BaseModel):
    """Limits of the SCIM protocol endpoint, advertised in ``/ServiceProviderConfig``."""

    max_page_size: int = Field(default=1000, ge=100)
    """Largest ``count`` honoured on a list or search; larger requests are capped to it."""

    default_page_size: int = Field(default=100, ge=1)
    """``count`` used when a list or search names none."""

    max_payload_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted; larger bodies get 413."""

    max_bulk_operations: int = Field(default=1000, ge=1)
    """Largest number of operations in one ``/Bulk`` request."""

    max_patch_members: int = Field(default=10_000, ge=1)
    """Largest number of member values one group PATCH may carry."""


class Settings(BaseSettings):
    """All of scimbridge's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SCIMBRIDGE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = "sqlite:///var/scimbridge.db"
    """SQLAlchemy URL of the store: SQLite (default, a file under ``var/``) or
    ``postgresql+psycopg://user:password@host/db``."""

    public_url: str = "http://127.0.0.1:8080"
    """Base URL users and identity providers see; used in ``Location`` headers,
    ``meta.location`` and links."""

    log_level: str = "INFO"
    """Level of scimbridge's own log (tolerated client deviations are logged at INFO)."""

    server: ServerSettings = ServerSettings()
    scim: ScimSettings = ScimSettings()

    @property
    def scim_base_url(self) -> str:
        """Absolute URL of the SCIM endpoint."""
        return self.public_url.rstrip("/") + "/scim/v2"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read keyword arguments, then the environment, then the TOML file."""
        config_file = Path(os.environ.get("SCIMBRIDGE_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
