#!/usr/bin/env bash
# Real-client compatibility: starts a Kura server built from this tree and drives it with real
# PostgreSQL clients. Today: psql (the quickstart script, multi-statement input, error exit
# status). The client-ecosystem work adds pgjdbc, psqlODBC and psycopg here.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Build the server the way `cargo test` does (same features), so the artifacts of the test run
# are reused instead of rebuilding the dependency tree for a plain `cargo build`.
cargo test --locked --quiet --no-run 2>/dev/null || cargo test --locked --no-run
data_dir=$(mktemp -d)
log=$(mktemp)
./target/debug/kura serve --listen 127.0.0.1:0 --data-dir "$data_dir" >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$data_dir"; }
trap cleanup EXIT

port=""
for _ in $(seq 1 600); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; echo "kura exited before it was ready" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "kura did not become ready" >&2; exit 1; }

psql_run() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U kura -d kura "$@"; }
passed=0
failed=0
check() {
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}

check "psql runs sql/quickstart.sql" psql_run -f sql/quickstart.sql -o /dev/null
check "psql reruns sql/quickstart.sql" psql_run -f sql/quickstart.sql -o /dev/null
check "psql sees the quickstart data" bash -c "[ \"\$(psql -X -At -h 127.0.0.1 -p $port -U kura -d kura -c 'SELECT count(*) FROM readings')\" = 6 ]"
check "psql runs CHECKPOINT" bash -c "[ \"\$(psql -X -h 127.0.0.1 -p $port -U kura -d kura -c 'CHECKPOINT' 2>&1)\" = CHECKPOINT ]"
check "psql exits 1 on a failing command" bash -c "psql -X -q -h 127.0.0.1 -p $port -U kura -d kura -c 'SELECT * FROM no_such_table' >/dev/null 2>&1; [ \$? = 1 ]"
check "psql reports the SQLSTATE" bash -c "psql -X -h 127.0.0.1 -p $port -U kura -d kura -v VERBOSITY=verbose -c '\\set VERBOSITY verbose' -c 'SELECT * FROM no_such_table' 2>&1 | grep -q 42P01"

# A clean stop writes a checkpoint and exits 0; a restart on the same directory has the data.
kill -TERM "$server"
wait "$server"; status=$?
check "SIGTERM stops the server with status 0" test "$status" = 0
: >"$log"
./target/debug/kura serve --listen 127.0.0.1:0 --data-dir "$data_dir" >"$log" 2>&1 &
server=$!
port=""
for _ in $(seq 1 600); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
check "the restarted server sees the quickstart data" bash -c "[ \"\$(psql -X -At -h 127.0.0.1 -p $port -U kura -d kura -c 'SELECT count(*) FROM readings')\" = 6 ]"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
