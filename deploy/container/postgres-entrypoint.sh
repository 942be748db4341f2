#!/bin/sh
# First start: a cluster in $PGDATA whose user POSTGRES_USER (password POSTGRES_PASSWORD) owns
# the database POSTGRES_DB; clients connect over TCP with scram-sha-256. Then runs postgres.
set -eu
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres-entrypoint: set POSTGRES_PASSWORD" >&2
        exit 1
    fi
    password_file="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    # UTF8: with SQL_ASCII (initdb's choice without a locale) psycopg returns bytes, not text.
    initdb -D "$PGDATA" -U "$user" --pwfile="$password_file" -E UTF8 --locale=C.UTF-8 --auth-local=trust \
        --auth-host=scram-sha-256 >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /tmp" start >/dev/null
        psql -h /tmp -U "$user" -d postgres -q -c "CREATE DATABASE \"$database\""
        pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /tmp "$@"
