#!/usr/bin/env bash
# One command from a fresh machine to a full test run: system packages (as root, when
# missing), .venv with the test extras, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends postgresql-15
fi
# The admin UI's browser tests drive Debian's Chromium through Playwright (never
# `playwright install`, which downloads a browser of its own).
if [ "$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium
fi
# LDAP sync tests run a private OpenLDAP (slapd) of Debian's package; no daemon is started.
if [ "$(id -u)" = 0 ] && [ ! -x /usr/sbin/slapd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slapd ldap-utils
fi
# Active Directory tests run a private Samba AD DC of Debian's packages (samba-ad-provision
# holds the provisioning templates); the test session starts and stops it.
if [ "$(id -u)" = 0 ] && { [ ! -x /usr/sbin/samba ] || [ ! -d /usr/share/samba/setup ]; }; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends samba samba-ad-dc samba-ad-provision \
        samba-dsdb-modules samba-vfs-modules winbind ldb-tools
fi
bash deploy/setup-env.sh test
exec .venv/bin/python -m pytest "$@"
