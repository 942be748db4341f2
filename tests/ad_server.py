"""A private Samba Active Directory domain controller for the tests (Debian's samba-ad-dc).

Samba's LDAP ports are fixed (389, 636), so one DC runs per machine at a time: the tests start
it once per session, and only when a test asks for it. Provisioning a domain takes 4–75 s on
a loaded machine, so a provisioned domain is kept in a cache folder (keyed by Samba's
version) and copied for each session; the domain's paths inside ``smb.conf`` are absolute, so
the copy always goes to the same folder.

The DC has a private certificate authority and a server certificate for ``127.0.0.1``:
scimbridge connects with ``ldaps://`` or StartTLS and verifies it. Complexity rules stay on
(Windows' defaults), history and minimum age are off so that tests can reset passwords.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

SAMBA = Path("/usr/sbin/samba")
SAMBA_TOOL = Path("/usr/bin/samba-tool")

REALM = "AD.EXAMPLE.COM"
DOMAIN = "AD"
SUFFIX = "DC=ad,DC=example,DC=com"
ADMIN_DN = f"CN=Administrator,CN=Users,{SUFFIX}"
ADMIN_PASSWORD = "Adm1n-Pass-2026!"

RUN_DIR = Path("/tmp/scimbridge-samba-dc")
"""Where the running DC's files live (fixed: smb.conf names absolute paths)."""
CACHE_ROOT = Path("/var/tmp/scimbridge-samba-dc-cache")


def _samba_version() -> str:
    result = subprocess.run([str(SAMBA), "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip().replace(" ", "-").replace("/", "-")


def _run(*args: str) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed: {result.stdout}\n{result.stderr}")


def _make_certificates(tls_dir: Path) -> None:
    """Write a private CA and a server certificate for IP 127.0.0.1 signed by it."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = tls_dir / "ca.key", tls_dir / "ca.pem"
    key, request, cert = tls_dir / "key.pem", tls_dir / "server.csr", tls_dir / "cert.pem"
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        "-subj", "/CN=scimbridge test CA", "-keyout", str(ca_key), "-out", str(ca_cert),
    )  # fmt: skip
    _run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    extensions = tls_dir / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run(
        "openssl", "x509", "-req", "-in", str(request), "-CA", str(ca_cert),
        "-CAkey", str(ca_key), "-CAcreateserial", "-days", "3650",
        "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    key.chmod(0o600)


def _provision(directory: Path) -> None:
    """Provision a new domain into ``directory`` (removed first: a failed run leaves debris)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    tls_dir = directory / "tls"
    _make_certificates(tls_dir)
    _run(
        str(SAMBA_TOOL), "domain", "provision", f"--targetdir={directory}",
        f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc", "--dns-backend=NONE",
        f"--adminpass={ADMIN_PASSWORD}", "--use-rfc2307", "--host-ip=127.0.0.1",
        "--option=interfaces=lo", "--option=bind interfaces only=yes",
        f"--option=log file={directory}/log.%m",
        f"--option=tls keyfile={tls_dir}/key.pem", f"--option=tls certfile={tls_dir}/cert.pem",
        f"--option=tls cafile={tls_dir}/ca.pem",
    )  # fmt: skip
    _run(
        str(SAMBA_TOOL), "domain", "passwordsettings", "set",
        "-H", str(directory / "private" / "sam.ldb"),
        "--history-length=0", "--min-pwd-age=0", "--max-pwd-age=0",
    )  # fmt: skip


def _prepare(directory: Path) -> None:
    """Lay a provisioned domain in ``directory``: copied from the cache, else made (and cached)."""
    cache = CACHE_ROOT / _samba_version()
    if not (cache / "etc" / "smb.conf").is_file():
        _provision(directory)
        staging = cache.with_name(cache.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(directory, staging, symlinks=True)
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
        return
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(cache, directory, symlinks=True)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class SambaDc:
    """A running Samba AD DC; ``stop`` and ``start`` it to simulate an outage."""

    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    suffix: str = SUFFIX
    admin_dn: str = ADMIN_DN
    admin_password: str = ADMIN_PASSWORD
    ldaps_url: str = "ldaps://127.0.0.1:636"
    ldap_url: str = "ldap://127.0.0.1:389"

    @property
    def ca_file(self) -> Path:
        """The private CA that signed the DC's certificate."""
        return self.directory / "tls" / "ca.pem"

    def start(self, timeout: float = 60.0) -> None:
        """Start the DC's LDAP server and wait until LDAPS accepts connections."""
        self.process = subprocess.Popen(
            [
                str(SAMBA),
                "-i",
                "-s",
                str(self.directory / "etc" / "smb.conf"),
                "--option=server services=ldap",
                # No fsync (as the tests' slapd): a disposable directory, written 5-10x faster.
                "--option=ldb:nosync=true",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not (_port_open(636) and _port_open(389)):
            if self.process.poll() is not None:
                raise RuntimeError(f"samba exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("samba did not open its LDAP ports")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the DC (its children follow) and wait until its ports are closed."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        deadline = time.monotonic() + 10
        while (_port_open(636) or _port_open(389)) and time.monotonic() < deadline:
            time.sleep(0.1)


@contextmanager
def samba_dc() -> Iterator[SambaDc]:
    """Run a private Samba AD DC for the duration of the block."""
    if not SAMBA.exists():
        raise RuntimeError(
            f"{SAMBA} not found: apt-get install samba samba-ad-dc samba-ad-provision "
            "samba-dsdb-modules samba-vfs-modules winbind ldb-tools"
        )
    if _port_open(636):
        raise RuntimeError("port 636 is taken: another Samba DC (or LDAPS server) runs here")
    _prepare(RUN_DIR)
    dc = SambaDc(RUN_DIR)
    dc.start()
    try:
        yield dc
    finally:
        dc.stop()
        shutil.rmtree(RUN_DIR, ignore_errors=True)
