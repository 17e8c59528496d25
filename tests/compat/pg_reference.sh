#!/usr/bin/env bash
# Runs the compatibility suites against a real PostgreSQL 15, the reference every check must pass
# on: installs postgresql-15 if missing, starts a throwaway cluster (trust authentication, role and
# database kura) on a free loopback port, runs tests/compat/run.sh with COMPAT_TARGET pointing at
# it, and removes the cluster. Extra environment (COMPAT_SUITES, ...) is passed through.
#
#   bash tests/compat/pg_reference.sh
set -uo pipefail
cd "$(dirname "$0")"
pgbin=/usr/lib/postgresql/15/bin
if [ ! -x "$pgbin/postgres" ]; then
    [ "$(id -u)" = 0 ] || { echo "postgresql-15 is missing and cannot be installed without root" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null || exit 1
fi

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$dir"
}
trap stop EXIT

as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null || { cat "$dir/server.log"; exit 1; }
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE kura SUPERUSER LOGIN" -c "CREATE DATABASE kura OWNER kura" || exit 1

COMPAT_TARGET=127.0.0.1:$port bash ./run.sh
