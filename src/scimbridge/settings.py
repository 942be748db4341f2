"""The one typed settings object, read from the environment and a TOML file.

Every setting can be given as an environment variable (prefix ``SCIMBRIDGE_``, nested
sections joined with ``__``, e.g. ``SCIMBRIDGE_SCIM__MAX_PAGE_SIZE``) or in the TOML file named
by ``SCIMBRIDGE_CONFIG`` (default ``config/scimbridge.toml`` when it exists). The environment
wins over the file. ``config/scimbridge.example.toml`` documents every setting.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from pydantic import Field
from pydantic import SecretStr
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict
from pydantic_settings import TomlConfigSettingsSource

DEFAULT_CONFIG_FILE = Path("config/scimbridge.toml")


def default_worker_count() -> int:
    """Return gunicorn's advice for worker processes: two per CPU, plus one."""
    return 2 * (os.cpu_count() or 1) + 1


class ServerSettings(BaseModel):
    """How ``scimbridge serve`` listens."""

    host: str = "127.0.0.1"
    """Address gunicorn binds to."""

    port: int = 8080
    """TCP port gunicorn binds to."""

    workers: int = Field(default_factory=default_worker_count, ge=1)
    """Gunicorn worker processes; by default twice the CPUs plus one, as gunicorn advises.
    Python runs one thread at a time per process, so processes, not threads, use the CPUs."""

    threads: int = 2
    """Threads per worker (a gthread worker class, which keeps client connections alive)."""

    requests_per_connection: int = Field(default=100, ge=0)
    """Requests answered on one kept-alive connection before the answer says
    ``Connection: close`` and the client opens a new one (0: no limit), as Apache's
    MaxKeepAliveRequests does. A connection stays with the worker process that accepted it, and
    the first worker up after a start accepts every connection waiting: without a limit, an
    identity provider's few long-lived connections can all stay on one process, which runs one
    thread at a time."""

    proxy_hops: int = Field(default=0, ge=0)
    """Reverse proxies in front of scimbridge whose X-Forwarded-For/-Proto/-Host headers are
    trusted (0: none). Client addresses in the audit trail and in rate limits come from them."""


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

    cursor_timeout_seconds: int = Field(default=3600, ge=60)
    """How long a ``nextCursor``/``previousCursor`` (RFC 9865) stays valid; later: 400
    ``expiredCursor``."""

    max_filter_length: int = Field(default=8192, ge=256)
    """Longest filter or PATCH path accepted, in characters; longer ones get 400
    ``invalidFilter`` (``invalidPath`` for a PATCH path) before they are parsed."""

    max_filter_terms: int = Field(default=100, ge=1)
    """Most comparisons one filter or PATCH path may join with ``and``/``or``: each costs the
    database (and a PATCH value path, Python) time on every resource it is tested on."""

    max_filter_depth: int = Field(default=10, ge=1)
    """Deepest nesting of parentheses and ``[...]`` value filters in a filter or PATCH path."""


class RateLimitSettings(BaseModel):
    """Requests each bearer token may make (SCIM and the System API); 429 past the limit."""

    enabled: bool = True
    """Count requests per token and answer 429 with ``Retry-After`` past the limits."""

    scim_per_token: str = "20000/minute"
    """Limits of one SCIM token, in the ``limits`` library's notation (``N/second``,
    ``N/minute``; several joined with ``;``). The default is a safety net against a runaway
    client, far above what identity providers send (Entra ID asks endpoints to take 25
    requests a second, 1,500 a minute), so it never throttles a provisioning cycle."""

    api_per_token: str = "20000/minute"
    """Limits of one System API token, in the same notation."""

    storage_uri: str = "memory://"
    """Where requests are counted: ``memory://`` counts in each gunicorn process on its own
    (a token may then make up to the limit in every process of every instance), a shared
    store such as ``redis://host:6379`` (its client library installed) counts across all of
    them."""


class LifecycleSettings(BaseModel):
    """Invitations, password resets, passwords and rate limits."""

    invitation_ttl_hours: int = Field(default=168, ge=1)
    """How long an invitation link stays valid (default 7 days)."""

    reset_ttl_minutes: int = Field(default=60, ge=5)
    """How long a password reset link stays valid."""

    on_scim_create: Literal["none", "invite"] = "none"
    """``invite``: a user created through SCIM is ``invited`` and gets an invitation email to
    set a local password; ``none``: the user is ``active`` with no local password."""

    password_min_length: int = Field(default=12, ge=8)
    """Shortest password accepted."""

    reject_common_passwords: bool = True
    """Refuse passwords from the built-in list of the most common (breached) ones."""

    login_attempts_per_account: int = Field(default=5, ge=1)
    """Failed logins allowed per account per rate window before further tries are refused."""

    requests_per_address: int = Field(default=30, ge=1)
    """Login and reset requests allowed per client address per rate window."""

    rate_window_minutes: int = Field(default=15, ge=1)
    """Length of the rate-limit window."""

    send_suspension_notice: bool = False
    """Email users when their account is suspended."""


class SessionSettings(BaseModel):
    """Login sessions of the web pages."""

    cookie_name: str = "scimbridge_session"
    """Name of the session cookie."""

    idle_minutes: int = Field(default=60, ge=1)
    """A session unused for this long ends."""

    lifetime_hours: int = Field(default=12, ge=1)
    """A session ends this long after login, used or not."""


class RolesSettings(BaseModel):
    """Where roles are defined."""

    file: Path = Path("config/roles.yaml")
    """YAML file naming the roles, their permissions and priority, and the groups granting
    them (see config/roles.yaml)."""


class MailSettings(BaseModel):
    """How emails (invitations, password resets, notices) are rendered and sent."""

    transport: Literal["smtp", "http", "file"] = "file"
    """``smtp``: an SMTP server; ``http``: a JSON POST to an email API (payload in the README);
    ``file``: one ``.eml`` file per message under ``file_dir``, for development."""

    sender: str = "scimbridge <no-reply@localhost>"
    """``From`` of every message: an address, optionally with a display name."""

    product_name: str = "scimbridge"
    """Name of the platform as the messages call it."""

    template_dir: Path = Path("config/templates/mail")
    """Directory whose templates (``<name>.subject``, ``<name>.txt``, ``<name>.html``) override
    the ones shipped with scimbridge, file by file; a missing directory overrides nothing."""

    timeout_seconds: float = Field(default=10.0, gt=0)
    """Connect and read timeout of one delivery (SMTP or HTTP); a timeout is retried."""

    smtp_host: str = "localhost"
    """SMTP server host name."""

    smtp_port: int = 587
    """SMTP server port: usually 587 with ``starttls``, 465 with ``tls``, 25 with ``none``."""

    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    """``starttls``: upgrade the connection with STARTTLS (required); ``tls``: TLS from the
    first byte (implicit TLS); ``none``: plain text, for a relay on the same host only."""

    smtp_username: str | None = None
    """User to log in as; no login when unset."""

    smtp_password: SecretStr | None = None
    """Password of ``smtp_username``."""

    smtp_ca_file: Path | None = None
    """PEM file of the certificate authorities trusted for the SMTP server (a private relay);
    the system's trust store when unset."""

    http_url: str | None = None
    """Endpoint of the email API that ``http`` posts each message to; required for ``http``."""

    http_api_key: SecretStr | None = None
    """API key sent with each request in the ``http_api_key_header`` header."""

    http_api_key_header: str = "X-Api-Key"
    """Name of the header carrying ``http_api_key``."""

    file_dir: Path = Path("mail")
    """Directory the ``file`` transport writes messages to; a relative one is under
    ``data_dir``."""


class WorkerSettings(BaseModel):
    """The outbox workers that apply side effects (LDAP changes, emails): one lane per kind."""

    in_process: bool = True
    """``scimbridge serve`` also runs a worker (one per machine and database, a thread inside
    one gunicorn process); set ``false`` when ``scimbridge worker`` processes run instead."""

    lane_processes: bool = True
    """``scimbridge worker`` runs each lane (job kind) in a child process of its own, so that
    no kind takes CPU time from another through Python's interpreter lock; ``false``: one
    thread per lane in one process (as ``serve``'s in-process worker always does)."""

    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """How long an idle worker waits before looking for due jobs again."""

    batch_size: int = Field(default=100, ge=1)
    """Jobs claimed at once (at most one per ordering key). Jobs of a kind whose handler takes
    batches (LDAP sync) share one read of the store and one commit: larger batches keep sync
    close to the directory's own speed."""

    lease_seconds: float = Field(default=6.0, gt=0)
    """How long a claim lasts without renewal. A live worker renews the lease of the jobs in
    hand every quarter of it, however long they take; a job whose worker died is claimed again
    at most this long after the worker's last renewal."""

    max_attempts: int = Field(default=10, ge=1)
    """Attempts before a job that keeps failing is parked as ``failed``."""

    backoff_base_seconds: float = Field(default=10.0, gt=0)
    """Delay before the second attempt; each further delay doubles (with jitter)."""

    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    """Longest delay between two attempts."""


class LdapSettings(BaseModel):
    """The LDAP directory scimbridge mirrors users and groups into (off while ``url`` is unset)."""

    url: str | None = None
    """``ldap://host:389`` or ``ldaps://host:636``. LDAP sync is off when unset: no directory
    job is queued."""

    bind_dn: str | None = None
    """DN scimbridge binds as; it needs to add, modify, rename and delete entries under
    ``users_dn`` and ``groups_dn`` (and to write ``pwdAccountLockedTime`` with OpenLDAP).
    Anonymous when unset."""

    bind_password: SecretStr | None = None
    """Password of ``bind_dn``."""

    users_dn: str | None = None
    """Container of the user entries, e.g. ``ou=people,dc=example,dc=org``; required with
    ``url``. Created when missing. scimbridge owns the entries of its object classes here:
    reconcile deletes those it does not know."""

    groups_dn: str | None = None
    """Container of the group entries, e.g. ``ou=groups,dc=example,dc=org``; required with
    ``url``. Created when missing; owned like ``users_dn``."""

    profile: Literal["openldap", "activedirectory"] = "openldap"
    """``openldap``: inetOrgPerson users, groupOfNames groups, suspension through ppolicy's
    ``pwdAccountLockedTime``, argon2id password hashes. ``activedirectory``: user objects with
    sAMAccountName and userPrincipalName, suspension through the ACCOUNTDISABLE bit of
    userAccountControl, group objects, clear passwords written as unicodePwd over TLS when
    they are set (never kept)."""

    mapping_file: Path | None = None
    """YAML attribute map (object classes, RDN, SCIM attribute of each LDAP attribute, static
    attributes, suspension, passwords). When unset: ``config/ldap-<profile>.yaml`` if it
    exists, else the map shipped with scimbridge for the profile."""

    start_tls: bool = False
    """Upgrade an ``ldap://`` connection with StartTLS before binding (Active Directory
    refuses a simple bind without TLS: use this or an ``ldaps://`` URL)."""

    ca_file: Path | None = None
    """PEM file of the certificate authorities trusted for the directory's certificate; the
    system's trust store when unset."""

    verify_tls: bool = True
    """Check the directory's certificate and host name (turn off only for a test directory)."""

    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Timeout of opening a connection; an unreachable directory delays jobs, never SCIM."""

    timeout_seconds: float = Field(default=30.0, gt=0)
    """Timeout of one LDAP operation's answer."""

    page_size: int = Field(default=500, ge=1)
    """Entries per page of the paged searches ``scimbridge ldap reconcile`` makes."""

    password_job_ttl_hours: float = Field(default=72.0, gt=0)
    """How long a password the directory could not take at once (Active Directory) may wait,
    encrypted, in the outbox; an older one is dropped and must be set again."""

    @property
    def enabled(self) -> bool:
        """Whether LDAP sync is on."""
        return bool(self.url)

    @model_validator(mode="after")
    def _containers_named(self) -> LdapSettings:
        if self.url and not (self.users_dn and self.groups_dn):
            raise ValueError("ldap.users_dn and ldap.groups_dn are required with ldap.url")
        return self


_SQLITE_PREFIX = re.compile(r"^sqlite(\+\w+)?:///")


def sqlite_file(url: str) -> Path | None:
    """Return the file of a SQLite URL (``sqlite:///name.db``), or None for any other URL."""
    match = _SQLITE_PREFIX.match(url)
    if match is None:
        return None
    name = url[match.end() :].split("?", 1)[0]
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def sqlite_url_under(directory: Path, url: str) -> str:
    """Return ``url`` with a relative SQLite file name resolved against ``directory``."""
    name = sqlite_file(url)
    if name is None or name.is_absolute():
        return url
    match = _SQLITE_PREFIX.match(url)
    assert match is not None
    return f"{match.group(0)}{directory / url[match.end() :]}"


def listener_url(host: str, port: int) -> str:
    """Return the URL of a server listening on ``host:port``, as a client on this host uses it."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # every interface: this host reaches it on the loopback address
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


class MetricsSettings(BaseModel):
    """Prometheus metrics: what is counted, and who may read ``/metrics``."""

    enabled: bool = True
    """Count requests, jobs, logins… (a few microseconds a request). Off, nothing is counted
    and ``/metrics`` is not served."""

    token: SecretStr | None = None
    """Bearer token a scraper must send to read ``/metrics``. Unset, ``/metrics`` answers 404:
    the metrics are never readable by accident."""

    worker_listen: str | None = Field(default=None, pattern=r"^\[?[A-Za-z0-9.:-]+\]?:\d{1,5}$")
    """``host:port`` where ``scimbridge worker`` serves its own ``/metrics`` (outbox jobs, LDAP
    operations, mails; its lane processes summed). Unset: not served. With ``token`` set, a
    scraper must send it; without, only a loopback address (``127.0.0.1:9101``) is accepted,
    so the worker's metrics are never open by accident."""


def _under(directory: Path, path: Path) -> Path:
    """Return ``path`` resolved against ``directory`` when it is relative."""
    return path if path.is_absolute() else directory / path


class Settings(BaseSettings):
    """All of scimbridge's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SCIMBRIDGE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path("var")
    """Directory of scimbridge's state: the SQLite database, the generated secret key and the
    ``file`` transport's mails. Relative paths of those settings are resolved against it, not
    against the current folder. A relative ``data_dir`` is under the folder scimbridge starts
    in (``deploy/run.sh`` starts in the checkout: ``var/`` there); ``--data-dir`` or
    ``SCIMBRIDGE_DATA_DIR`` name another."""

    database_url: str = "sqlite:///scimbridge.db"
    """SQLAlchemy URL of the store: SQLite (default, ``scimbridge.db`` in ``data_dir``; a
    relative file name is under ``data_dir``) or ``postgresql+psycopg://user:password@host/db``."""

    log_format: Literal["text", "json"] = "text"
    """``text``: one readable line per record; ``json``: one JSON object per line (timestamp,
    level, logger, message, and within a request its id, actor, method, path)."""

    access_log: bool = True
    """Log one line per HTTP request (logger ``scimbridge.access``, INFO): method, path, status,
    duration, request id and the token or user acting."""

    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite only. ``FULL``: every acknowledged write is on disk before the answer, and
    survives a power loss. ``NORMAL``: faster commits; a crash of the process loses nothing,
    but a power loss or kernel crash can lose the last acknowledged writes."""

    public_url: str = "http://127.0.0.1:8080"
    """Base URL users and identity providers see; used in ``Location`` headers,
    ``meta.location`` and links. Unset, it is the address ``serve`` listens on
    (``http://HOST:PORT``; 127.0.0.1 for a server listening on every interface)."""

    log_level: str = "INFO"
    """Level of scimbridge's own log (a tolerated client deviation is logged at INFO once per
    token and process, then at DEBUG)."""

    secret_key: SecretStr | None = None
    """Key signing CSRF tokens. When unset, a random key is created once beside the SQLite
    database (``secret_key`` in ``data_dir`` by default, mode 0600) and reused; set it when
    several machines serve one PostgreSQL database."""

    server: ServerSettings = ServerSettings()
    scim: ScimSettings = ScimSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    session: SessionSettings = SessionSettings()
    roles: RolesSettings = RolesSettings()
    mail: MailSettings = MailSettings()
    worker: WorkerSettings = WorkerSettings()
    ldap: LdapSettings = LdapSettings()
    metrics: MetricsSettings = MetricsSettings()

    @model_validator(mode="after")
    def _paths_under_data_dir(self) -> Settings:
        # Resolved once here, so that every process and command finds the same files
        # whichever folder it was started in.
        self.data_dir = self.data_dir.resolve()
        self.database_url = sqlite_url_under(self.data_dir, self.database_url)
        self.mail.file_dir = _under(self.data_dir, self.mail.file_dir)
        return self

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL or an in-memory database."""
        return sqlite_file(self.database_url)

    @model_validator(mode="after")
    def _public_url_from_listener(self) -> Settings:
        if "public_url" not in self.model_fields_set:
            self.public_url = listener_url(self.server.host, self.server.port)
            # Assigning marks the field as set; it is still derived (see listening_on).
            self.model_fields_set.discard("public_url")
        return self

    def listening_on(self, host: str, port: int) -> Settings:
        """Return these settings for a server on ``host:port`` (``serve --host/--port``).

        A public URL that was not set follows the listener, so that links and ``Location``
        headers name the port the server actually answers on.
        """
        update: dict[str, object] = {
            "server": self.server.model_copy(update={"host": host, "port": port})
        }
        if "public_url" not in self.model_fields_set:
            update["public_url"] = listener_url(host, port)
        copy = self.model_copy(update=update)
        # Still derived, not chosen: a later listening_on() follows the listener again.
        copy.model_fields_set.discard("public_url")
        return copy

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
