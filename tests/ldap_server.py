"""A private OpenLDAP ``slapd`` for the tests: built from a cn=config LDIF, run on a free port.

The server has the overlays a production directory for scimbridge has (memberof, refint,
ppolicy with a default policy that honours ``pwdAccountLockedTime``), the argon2 password
module, and no fsync. ``stop()`` and ``start()`` simulate an outage: the data survives, the
port stays the same.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from .services import free_port
from .services import wait_for_port

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
PLACEHOLDER_DN = "cn=nobody"
"""The member of an otherwise empty groupOfNames; refint writes it too (olcRefintNothing)."""

_CONFIG = """\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {workdir}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
{modules}

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {suffix}
olcRootDN: {admin_dn}
olcRootPW: {admin_password}
olcDbDirectory: {workdir}/data
olcDbNoSync: TRUE
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: cn eq
olcDbIndex: mail eq
olcDbIndex: member eq
olcDbIndex: manager eq
olcSizeLimit: unlimited
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by * read
{overlays}"""

_OPENLDAP_MODULES = ("back_mdb", "memberof", "refint", "ppolicy", "argon2")
_OPENLDAP_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_OPENLDAP_OVERLAYS = """\
olcDbIndex: memberOf eq

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefint: TRUE

dn: olcOverlay={{1}}refint,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{1}}refint
olcRefintAttribute: member
olcRefintNothing: {placeholder}

dn: olcOverlay={{2}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{2}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{suffix}
"""

# Active Directory keeps member values true by itself (linked attributes); Debian's msuser
# schema brings its own memberOf, which the memberof overlay would define a second time.
_ACTIVE_DIRECTORY_MODULES = ("back_mdb",)
_ACTIVE_DIRECTORY_SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "msuser")

_BASE_ENTRIES = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example
"""

_PASSWORD_POLICY = """\

dn: ou=policies,{suffix}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{suffix}
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
"""


@dataclass
class SlapdServer:
    """A running slapd; ``stop`` and ``start`` it to simulate an outage."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    suffix: str = SUFFIX
    admin_dn: str = ADMIN_DN
    admin_password: str = ADMIN_PASSWORD

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start slapd on its port (again, after ``stop``), and wait until it accepts."""
        self.process = subprocess.Popen(
            [
                str(SLAPD),
                "-F",
                str(self.workdir / "slapd.d"),
                "-h",
                f"ldap://127.0.0.1:{self.port}/",
                "-d",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=10, process=self.process)

    def stop(self) -> None:
        """Stop slapd and wait for it to exit; the data stays."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        # slapd closes its listener before it exits, but give the port a moment anyway.
        time.sleep(0.05)


@contextmanager
def slapd_server(*, active_directory: bool = False) -> Iterator[SlapdServer]:
    """Build a fresh directory in a temporary folder, run slapd on it, remove it afterwards.

    ``active_directory`` loads Microsoft's user schema instead of the OpenLDAP overlays, for
    the activedirectory profile.
    """
    if not SLAPD.exists():
        raise RuntimeError(f"{SLAPD} not found: apt-get install slapd ldap-utils")
    workdir = Path(tempfile.mkdtemp(prefix="scimbridge-slapd-"))
    (workdir / "slapd.d").mkdir()
    (workdir / "data").mkdir()
    values = {
        "workdir": workdir,
        "suffix": SUFFIX,
        "admin_dn": ADMIN_DN,
        "admin_password": ADMIN_PASSWORD,
        "placeholder": PLACEHOLDER_DN,
    }
    modules = _ACTIVE_DIRECTORY_MODULES if active_directory else _OPENLDAP_MODULES
    schemas = _ACTIVE_DIRECTORY_SCHEMAS if active_directory else _OPENLDAP_SCHEMAS
    config = workdir / "config.ldif"
    config.write_text(
        _CONFIG.format(
            **values,
            modules="\n".join(f"olcModuleLoad: {module}" for module in modules),
            schemas="\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in schemas),
            overlays="" if active_directory else _OPENLDAP_OVERLAYS.format(**values),
        )
    )
    base = workdir / "base.ldif"
    entries = _BASE_ENTRIES if active_directory else _BASE_ENTRIES + _PASSWORD_POLICY
    base.write_text(entries.format(**values))
    try:
        for number, ldif in (("-n0", config), ("-n1", base)):
            subprocess.run(
                [str(SLAPADD), number, "-F", str(workdir / "slapd.d"), "-l", str(ldif)],
                check=True,
                capture_output=True,
            )
        server = SlapdServer(workdir, free_port())
        server.start()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
