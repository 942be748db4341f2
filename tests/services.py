"""Real servers the tests start privately: PostgreSQL and scimbridge itself under gunicorn."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster; ``url(name)`` gives a SQLAlchemy URL for one database."""

    port: int
    socket_dir: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-q",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL as the postgres user in a temporary directory (root cannot run it)."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}")
    workdir = tempfile.mkdtemp(prefix="scimbridge-pg-")
    shutil.chown(workdir, "postgres", "postgres")
    os.chmod(workdir, 0o700)
    data = os.path.join(workdir, "data")
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off"
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(workdir, "pg.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer(port, workdir)
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def scimbridge_command() -> list[str]:
    """Return the ``scimbridge`` console script of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("scimbridge"))]


@dataclass
class LiveServer:
    """scimbridge served by gunicorn on 127.0.0.1."""

    base_url: str
    token: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path | None = None
    """The server's output (stdout and stderr), readable while it runs."""

    @property
    def scim_url(self) -> str:
        return f"{self.base_url}/scim/v2"

    def cli(self, *args: str) -> str:
        """Run a scimbridge command against the same database; return its stdout."""
        result = subprocess.run(
            [*scimbridge_command(), *args], env=self.env, check=True, capture_output=True, text=True
        )
        return result.stdout


@contextmanager
def live_server(database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """Run ``scimbridge serve`` on a free port, with a fresh strict token."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SCIMBRIDGE_DATABASE_URL": database_url,
        "SCIMBRIDGE_PUBLIC_URL": base_url,
        # The in-process worker delivers queued emails: keep them out of the working tree.
        "SCIMBRIDGE_MAIL__FILE_DIR": tempfile.mkdtemp(prefix="scimbridge-mail-"),
        **(extra_env or {}),
    }
    # As deploy/run.sh does: commands other than serve refuse to create the database.
    subprocess.run(
        [*scimbridge_command(), "db", "upgrade"], env=env, check=True, capture_output=True
    )
    token = (
        subprocess.run(
            [*scimbridge_command(), "token", "create", f"tests-{port}", "--profile", "strict"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log = tempfile.NamedTemporaryFile(prefix="scimbridge-serve-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [*scimbridge_command(), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process=process)
        yield LiveServer(base_url, token, process, env, Path(log.name))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        # The server log would hold any traceback; show it when the server misbehaved.
        output = Path(log.name).read_text(errors="replace")
        os.unlink(log.name)
        if "Traceback" in output:
            print(output)
