"""The ``scimbridge`` command: serve, migrate, manage tokens; outbox commands in outbox."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from gunicorn.app.base import BaseApplication

from .. import __version__
from ..logs import configure_logging
from ..logs import gunicorn_log_config
from ..service.clients.tokens import KINDS
from ..service.clients.tokens import SCOPES
from ..service.operations.metrics import MULTIPROCESS_DIR_VARIABLE
from ..service.operations.metrics import forget_process
from ..service.operations.metrics import use_multiprocess_directory
from ..serving import LIMIT_REQUEST_LINE
from ..serving import KeepAliveWorker
from ..serving import close_after_requests
from ..settings import Settings
from ..store.database import database_for
from ..store.migrations import upgrade
from . import backup
from . import ldap
from . import outbox
from . import users
from .data import existing_database


def _settings() -> Settings:
    return Settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="scimbridge")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SCIMBRIDGE_DATA_DIR",
    help="Directory of the SQLite database, secret key and mail files (default: ./var).",
)
def main(data_dir: Path | None) -> None:
    """Scimbridge: SCIM 2.0 provisioning and user lifecycle."""
    if data_dir is not None:
        # Every command reads its settings from the environment: this is how they see it.
        os.environ["SCIMBRIDGE_DATA_DIR"] = str(data_dir.resolve())


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """Gunicorn running ``create_app`` in each worker (no preloading: one engine per process)."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        self.outbox_worker: Any = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_exit", self._stop_outbox_worker)
        self.cfg.set("child_exit", lambda _server, worker: forget_process(worker.pid))
        limit = self.settings.server.requests_per_connection
        if limit:
            self.cfg.set("pre_request", close_after_requests(limit))

    def load(self) -> Any:
        from ..app import create_app

        configure_logging(self.settings.log_level, self.settings.log_format)
        app = create_app(self.settings)
        if self.settings.worker.in_process:
            from ..worker import InProcessWorker

            # Every gunicorn process starts one; an election lets only one of them work.
            self.outbox_worker = InProcessWorker.for_settings(
                self.settings, app.extensions["scimbridge"].database
            )
            self.outbox_worker.start()
        # The app's own objects (models, schemas, table metadata: about 125,000) live as long
        # as the process. Frozen, they are left out of the garbage collector's full passes,
        # which otherwise stop the worker for about 70 ms each (gc.freeze in the docs).
        gc.collect()
        gc.freeze()
        return app

    def _stop_outbox_worker(self, _server: Any, _worker: Any) -> None:
        if self.outbox_worker is not None:
            self.outbox_worker.stop()


@main.command()
@click.option("--host", help="Address to bind (default: settings server.host).")
@click.option("--port", type=int, help="Port to bind (default: settings server.port).")
@click.option("--workers", type=int, help="Worker processes (default: settings).")
@click.option("--threads", type=int, help="Threads per worker (default: settings).")
def serve(host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Apply migrations, then serve the app under gunicorn."""
    settings = _settings()
    settings = settings.listening_on(host or settings.server.host, port or settings.server.port)
    configure_logging(settings.log_level, settings.log_format)
    upgrade(database_for(settings))
    bind = f"{settings.server.host}:{settings.server.port}"
    click.echo(f"scimbridge: SCIM endpoint at {settings.scim_base_url} (listening on {bind})")
    # The workers count into files here, and /metrics sums them (one directory per server).
    given_dir = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    metrics_dir = given_dir or tempfile.mkdtemp(prefix="scimbridge-metrics-")
    use_multiprocess_directory(metrics_dir)
    master = os.getpid()
    try:
        _Gunicorn(
            settings,
            {
                "bind": bind,
                "workers": workers or settings.server.workers,
                "threads": threads or settings.server.threads,
                "worker_class": KeepAliveWorker,
                "limit_request_line": LIMIT_REQUEST_LINE,
                "keepalive": 5,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "logconfig_dict": gunicorn_log_config(settings.log_level, settings.log_format),
            },
        ).run()
    finally:
        # A gunicorn worker that exits unwinds through here too; only the master cleans up.
        if not given_dir and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = _settings()
    upgrade(database_for(settings))
    click.echo("database is up to date")


@main.group()
def token() -> None:
    """Bearer tokens for SCIM clients and System API programs."""


@contextmanager
def _tokens() -> Iterator[Any]:
    from ..service.clients.tokens import TokenService

    database = existing_database(_settings())
    try:
        yield TokenService(database)
    finally:
        database.dispose()


@token.command("create")
@click.argument("name")
@click.option(
    "--profile",
    type=click.Choice(["strict", "entra", "okta", "generic"]),
    # generic lets Entra ID and Okta pass their first "Test connection" and first cycle
    # alike; strict (every deviation refused) is for clients known to follow the RFC.
    default="generic",
    show_default=True,
    help="Which known deviations of an identity provider this client may send.",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="scim",
    show_default=True,
    help="scim: for /scim/v2 (identity providers); api: for the System API (/api/v1).",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="What an api token may do (repeatable; at least one for --kind api).",
)
def token_create(name: str, profile: str, kind: str, scopes: tuple[str, ...]) -> None:
    """Create a token; it is printed once, as the last line."""
    from ..service.clients.tokens import TokenNameTaken

    if kind == "api" and not scopes:
        raise click.UsageError("an api token needs at least one --scope")
    if kind == "scim" and scopes:
        raise click.UsageError("--scope is for api tokens; a scim token may do all of SCIM")
    try:
        with _tokens() as tokens:
            value = tokens.create(name, profile, kind, scopes)
    except TokenNameTaken:
        raise click.ClickException(f"a token named {name!r} already exists") from None
    granted = f"scopes {' '.join(sorted(set(scopes)))}" if kind == "api" else f"profile {profile}"
    click.echo(f"{kind} token {name!r} created ({granted}); it is shown only once:")
    click.echo(value)


@token.command("list")
def token_list() -> None:
    """List tokens (never their values): name, kind, profile or scopes, dates."""
    with _tokens() as tokens:
        listed = tokens.list()
    for info in listed:
        last_used = info.last_used.isoformat(timespec="seconds") if info.last_used else "never"
        granted = " ".join(sorted(info.scopes)) if info.kind == "api" else info.profile
        click.echo(
            f"{info.name}\t{info.kind}\t{granted}"
            f"\tcreated {info.created.isoformat(timespec='seconds')}\tlast used {last_used}"
        )


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke a token by name."""
    with _tokens() as tokens:
        revoked = tokens.revoke(name)
    if not revoked:
        raise click.ClickException(f"no token named {name!r}")
    click.echo(f"token {name!r} revoked")


@main.group()
def admin() -> None:
    """Administrators of the User Directory."""


@admin.command("create")
@click.argument("email")
@click.option("--given-name", help="The administrator's given name.")
@click.option("--family-name", help="The administrator's family name.")
def admin_create(email: str, given_name: str | None, family_name: str | None) -> None:
    """Create an active user with the admin role; the temporary password is the last line.

    The password is shown once and must be changed at the first login.
    """
    from pydantic import ValidationError

    from ..domain.lifecycle import Actor
    from ..domain.lifecycle import LifecycleError
    from ..domain.lifecycle import UnknownRole
    from ..domain.resources import accept_internal_email_domains
    from ..service.directory.lifecycle import UserDirectory
    from ..service.directory.roles import load_roles

    settings = _settings()
    database = existing_database(settings)
    accept_internal_email_domains()
    directory = UserDirectory(database, settings, load_roles(settings.roles.file))
    try:
        created = directory.create_user(
            email.strip(),
            given_name,
            family_name,
            "admin",
            None,
            Actor("cli", None, "scimbridge admin create"),
        )
    except UnknownRole as exc:
        raise click.ClickException(f"{exc} in {settings.roles.file}") from None
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from None
    except ValidationError:
        raise click.ClickException(f"{email!r} is not a valid email address") from None
    click.echo(f"admin {email} created; they must change this temporary password at first login:")
    click.echo(created.generated_password)


for _command in (
    *outbox.COMMANDS,
    *users.COMMANDS,
    *ldap.COMMANDS,
    *backup.COMMANDS,
):
    main.add_command(_command)
