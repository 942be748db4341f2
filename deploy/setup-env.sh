#!/usr/bin/env bash
# Creates .venv and installs scimbridge into it (editable). Sourced by run.sh and test.sh.
# Usage: deploy/setup-env.sh [extras], e.g. "test".
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    if [ -n "$extras" ]; then
        .venv/bin/pip install -q -e ".[${extras}]"
    else
        .venv/bin/pip install -q -e .
    fi
    touch "$stamp"
fi
