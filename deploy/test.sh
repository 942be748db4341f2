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
bash deploy/setup-env.sh test
exec .venv/bin/python -m pytest "$@"
