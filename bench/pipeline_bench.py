"""Pipeline benchmark: LDAP sync with invitations in flight, against raw ldap3 on the same slapd.

Starts a private slapd (the test suite's recipe) and an SMTP sink in its own process
(aiosmtpd's ``Sink`` handler: a real SMTP conversation per message, nothing kept), then:

- **raw ldap3**: one connection adding N inetOrgPerson entries (the ceiling of a Python
  client, as in ``ldap_bench.py``).
- **pipeline**: N users created through the provisioning service with invitations on (each
  commit queues an ``ldap`` job and an ``email`` job; not timed), then the outbox lanes run as
  ``scimbridge worker`` runs them: a process per kind (``--threads``: one thread per kind in
  this process, as ``serve``'s in-process worker). Timed from the moment the lanes run: until
  the LDAP lane is empty (its entries per second), and the invitations sent meanwhile.

Target: LDAP throughput with mail in flight ≥ 70 % of raw ldap3 in the same run.
Exit status 0 when met, 1 otherwise.

    python bench/pipeline_bench.py [--users 5000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ldap_bench import raw_adds  # noqa: E402
from scimbridge.domain.resources import UserResource  # noqa: E402
from scimbridge.service.directory.lifecycle import UserDirectory  # noqa: E402
from scimbridge.service.directory.provisioning import ProvisioningService  # noqa: E402
from scimbridge.service.directory.roles import load_roles  # noqa: E402
from scimbridge.service.ldap.sync import LDAP_JOB  # noqa: E402
from scimbridge.service.mail.queue import EMAIL_JOB  # noqa: E402
from scimbridge.service.outbox.status import lane_metrics  # noqa: E402
from scimbridge.settings import LdapSettings  # noqa: E402
from scimbridge.settings import MailSettings  # noqa: E402
from scimbridge.settings import Settings  # noqa: E402
from scimbridge.store.database import Database  # noqa: E402
from scimbridge.store.migrations import upgrade  # noqa: E402
from scimbridge.worker import build_lanes  # noqa: E402
from tests.ldap_server import SlapdServer  # noqa: E402
from tests.ldap_server import slapd_server  # noqa: E402
from tests.services import wait_for_port  # noqa: E402

TARGET = 0.70


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def smtp_sink() -> tuple[subprocess.Popen[bytes], int]:
    """Start aiosmtpd's discarding server in its own process; return it and its port."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=20, process=process)
    return process, port


def _settings(server: SlapdServer, workdir: Path, smtp_port: int) -> Settings:
    base = f"ou=pipeline,{server.suffix}"
    return Settings(
        database_url=f"sqlite:///{workdir / 'pipeline.db'}",
        ldap=LdapSettings(
            url=server.url,
            bind_dn=server.admin_dn,
            bind_password=server.admin_password,
            users_dn=f"ou=people,{base}",
            groups_dn=f"ou=groups,{base}",
        ),
        mail=MailSettings(
            transport="smtp", smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_security="none"
        ),
    )


def create_invited_users(
    settings: Settings, database: Database, count: int, invite: bool = True
) -> None:
    """Create users with invitations on: each commit queues an LDAP job and an email job."""
    directory = UserDirectory(database, settings, load_roles(settings.roles.file))
    provisioning = ProvisioningService(database, directory, invite_on_create=invite)
    for index in range(count):
        name = f"pipe{index:06d}"
        user = UserResource.model_validate(
            {
                "userName": name,
                "displayName": f"User {name}",
                "name": {"givenName": f"Given{index}", "familyName": f"Family{index}"},
                "emails": [{"value": f"{name}@example.org", "primary": True}],
                "title": "Engineer",
            }
        )
        provisioning.create_user(user)


@dataclass(frozen=True)
class Drain:
    """How the lanes did until the LDAP lane was empty."""

    ldap_seconds: float
    """Seconds the LDAP lane took to empty."""
    mail_pending: int
    """Invitations not sent yet when it was."""


def _time_ldap_lane(database: Database, started: float) -> Drain:
    """Wait until the LDAP lane is empty; say how long it took and how much mail is left."""
    while True:
        now = time.perf_counter()
        lanes = {lane.kind: lane for lane in lane_metrics(database, [LDAP_JOB, EMAIL_JOB])}
        if lanes[LDAP_JOB].pending == 0:
            return Drain(now - started, lanes[EMAIL_JOB].pending)
        # Measuring costs a scan of the job table: often enough, not so often that it
        # takes a share of the lanes' CPU.
        time.sleep(0.1)


def drain_with_threads(settings: Settings, database: Database) -> Drain:
    """Run the lanes on threads of this process until both are empty."""
    lanes = build_lanes(settings, database)
    stop = threading.Event()
    runner = threading.Thread(target=lanes.run, args=(stop, 0.05), daemon=True)
    started = time.perf_counter()
    runner.start()
    try:
        return _time_ldap_lane(database, started)
    finally:
        stop.set()
        runner.join(60)


def drain_with_worker(settings: Settings, database: Database) -> Drain:
    """Run ``scimbridge worker`` (a process per lane) until both lanes are empty."""
    assert settings.ldap.bind_password is not None
    env = {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": settings.database_url,
        "SCIMBRIDGE_WORKER__POLL_INTERVAL_SECONDS": "0.05",
        "SCIMBRIDGE_MAIL__TRANSPORT": "smtp",
        "SCIMBRIDGE_MAIL__SMTP_HOST": settings.mail.smtp_host,
        "SCIMBRIDGE_MAIL__SMTP_PORT": str(settings.mail.smtp_port),
        "SCIMBRIDGE_MAIL__SMTP_SECURITY": "none",
        "SCIMBRIDGE_LDAP__URL": settings.ldap.url or "",
        "SCIMBRIDGE_LDAP__BIND_DN": settings.ldap.bind_dn or "",
        "SCIMBRIDGE_LDAP__BIND_PASSWORD": settings.ldap.bind_password.get_secret_value(),
        "SCIMBRIDGE_LDAP__USERS_DN": settings.ldap.users_dn or "",
        "SCIMBRIDGE_LDAP__GROUPS_DN": settings.ldap.groups_dn or "",
        "SCIMBRIDGE_LOG_LEVEL": "WARNING",
    }
    running = threading.Event()
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("scimbridge")), "worker"],
        env={**env, "SCIMBRIDGE_LOG_LEVEL": "INFO"},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )

    def watch() -> None:
        assert worker.stderr is not None
        for line in worker.stderr:
            if "outbox lanes running" in line:
                running.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not running.wait(120):
            raise RuntimeError("scimbridge worker did not start")
        return _time_ldap_lane(database, time.perf_counter())
    finally:
        worker.terminate()
        worker.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000, help="users imported")
    parser.add_argument(
        "--no-invitations", action="store_true", help="LDAP sync alone, for comparison"
    )
    parser.add_argument(
        "--threads", action="store_true", help="lanes as threads of this process, not processes"
    )
    options = parser.parse_args()
    count = options.users

    sink, smtp_port = smtp_sink()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="scimbridge-pipeline-bench-") as tmp,
            slapd_server() as server,
        ):
            raw = raw_adds(server, count, 0)
            print(f"raw ldap3                  {raw.per_second:6.0f} adds/s", flush=True)
            settings = _settings(server, Path(tmp), smtp_port)
            database = Database(settings.database_url)
            upgrade(database)
            try:
                create_invited_users(settings, database, count, not options.no_invitations)
                drain = drain_with_threads if options.threads else drain_with_worker
                result = drain(settings, database)
            finally:
                database.dispose()
    finally:
        sink.terminate()
        sink.wait(10)

    ldap_rate = count / result.ldap_seconds
    mail_rate = (count - result.mail_pending) / result.ldap_seconds
    ratio = ldap_rate / raw.per_second
    print(
        f"pipeline LDAP lane         {ldap_rate:6.0f} entries/s "
        f"(empty after {result.ldap_seconds:.1f} s)"
    )
    print(
        f"pipeline mail lane         {mail_rate:6.0f} messages/s meanwhile "
        f"({result.mail_pending} invitations still queued when LDAP was done)"
    )
    print(f"LDAP with mail / raw       {ratio:6.0%}      target >= {TARGET:.0%}")
    met = ratio >= TARGET
    print("target met" if met else "target missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
