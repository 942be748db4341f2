#!/usr/bin/env bash
# One command from a fresh checkout to a running scimbridge on SQLite (var/scimbridge.db):
# installs into .venv, applies migrations, creates a first SCIM token (printed once), serves.
# Settings come from SCIMBRIDGE_* variables or config/scimbridge.toml (see config/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup-env.sh
scimbridge=.venv/bin/scimbridge
$scimbridge db upgrade
if ! $scimbridge token list | grep -q '^default\b'; then
    echo "First start: a SCIM bearer token named 'default', profile generic (Entra ID, Okta and"
    echo "other clients connect with it; save it, it is not shown again):"
    $scimbridge token create default --profile generic | tail -1
else
    echo "SCIM token 'default' exists; make another with: .venv/bin/scimbridge token create NAME"
fi
exec $scimbridge serve "$@"
