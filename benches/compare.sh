#!/usr/bin/env bash
# Kura against PostgreSQL 15, side by side on the same machine, the same data and the same SQL
# over the wire. Starts both servers itself (PostgreSQL from Debian's postgresql-15, installed
# when missing), loads the same rows, runs the same workloads and prints one table: workload,
# Kura, PostgreSQL, and the ratio (above 1 means Kura is ahead).
#
#   benches/compare.sh                                   # 10 million rows, durable commits
#   COMPARE_ROWS=1000000 COMPARE_DURABILITY=relaxed benches/compare.sh
#   COMPARE_WORKLOADS=copy,analytics benches/compare.sh
#
# Settings (environment):
#   COMPARE_ROWS        rows of the time-series table (default 10000000)
#   COMPARE_DURABILITY  strict: every commit fsynced (Kura SYNC, PostgreSQL fsync=on and
#                       synchronous_commit=on); relaxed: Kura DELAYED_SYNC, PostgreSQL
#                       synchronous_commit=off (default strict)
#   COMPARE_SECONDS     length of each pgbench run (default 10)
#   COMPARE_CLIENTS     pgbench client counts (default 1,16)
#   COMPARE_WORKLOADS   subset of copy,insert,pgbench,tpcb,analytics,memory (default all)
#   KURA_BENCH_BIN      the kura binary (default target/release/kura, built when missing)
#   COMPARE_WORK        working directory (default a new one under TMPDIR, removed at the end)
#
# Needs root (to run PostgreSQL as the postgres user), python3, psql and pgbench; about
# 3 GB of free disk per 10 million rows. benches/README.md says how to read the table.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${COMPARE_ROWS:-10000000}
durability=${COMPARE_DURABILITY:-strict}
seconds=${COMPARE_SECONDS:-10}
clients=${COMPARE_CLIENTS:-1,16}
workloads=${COMPARE_WORKLOADS:-copy,insert,pgbench,tpcb,analytics,memory}
kura_bin=${KURA_BENCH_BIN:-target/release/kura}
kura_port=${COMPARE_KURA_PORT:-5471}
pg_port=${COMPARE_PG_PORT:-5472}
kv_rows=100000
insert_batches=${COMPARE_INSERT_BATCHES:-200}

case "$durability" in
strict) kura_mode=0 pg_sync=on ;;
relaxed) kura_mode=1 pg_sync=off ;;
*) echo "COMPARE_DURABILITY must be strict or relaxed" >&2; exit 2 ;;
esac
wants() { [[ ",$workloads," == *",$1,"* ]]; }

# ------------------------------------------------------------------ tools and binaries
pg_bin=""
for dir in /usr/lib/postgresql/15/bin "$(dirname "$(command -v postgres 2>/dev/null || echo /x/x)")"; do
    if [ -x "$dir/postgres" ] && "$dir/postgres" --version | grep -q ' 15\.'; then pg_bin=$dir; break; fi
done
if [ -z "$pg_bin" ]; then
    echo "compare: installing postgresql-15" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
    pg_bin=/usr/lib/postgresql/15/bin
fi
for tool in psql pgbench python3; do
    command -v "$tool" >/dev/null || { echo "compare: $tool is missing" >&2; exit 2; }
done
if [ ! -x "$kura_bin" ]; then
    echo "compare: building $kura_bin" >&2
    cargo build --release --locked >&2
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres

work=${COMPARE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/kura-compare.XXXXXX")}
mkdir -p "$work"
chmod 755 "$work"
kura_pid=""
cleanup() {
    [ -n "$kura_pid" ] && kill "$kura_pid" 2>/dev/null && wait "$kura_pid" 2>/dev/null || true
    if [ -f "$work/pg/postmaster.pid" ]; then
        su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $work/pg -m immediate stop" >/dev/null 2>&1 || true
    fi
    [ -z "${COMPARE_WORK:-}" ] && rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------------------------ servers
cat >"$work/kura.json" <<EOF
{"dataStore": {"logWriteMode": $kura_mode}}
EOF
KURA_ADMIN_PASSWORD=admin "$kura_bin" serve --listen "127.0.0.1:$kura_port" \
    --data-dir "$work/kura" --config "$work/kura.json" >"$work/kura.out" 2>"$work/kura.err" &
kura_pid=$!

install -d -o postgres -g postgres "$work/pg" "$work/pgsock"
su postgres -s /bin/sh -c "$pg_bin/initdb -D $work/pg -A trust -U postgres" >/dev/null
su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D $work/pg -l $work/pg/server.log -w start -o \
  \"-p $pg_port -k $work/pgsock -c listen_addresses=127.0.0.1 -c fsync=on \
  -c synchronous_commit=$pg_sync -c shared_buffers=2GB -c max_wal_size=4GB \
  -c max_connections=100\"" >/dev/null

for _ in $(seq 1 600); do
    grep -q "listening on" "$work/kura.out" 2>/dev/null && break
    kill -0 "$kura_pid" 2>/dev/null || { cat "$work/kura.err" >&2; exit 1; }
    sleep 0.1
done
grep -q "listening on" "$work/kura.out" || { echo "compare: kura did not start" >&2; exit 1; }

# sql SYSTEM SQL...: runs statements with psql, quietly, stopping at the first error.
sql() {
    local system=$1; shift
    if [ "$system" = kura ]; then
        PGPASSWORD=admin psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$kura_port" -U admin -d public "$@"
    else
        psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"
    fi
}
bench() {
    local system=$1; shift
    if [ "$system" = kura ]; then
        PGPASSWORD=admin pgbench -h 127.0.0.1 -p "$kura_port" -U admin "$@" public
    else
        pgbench -h 127.0.0.1 -p "$pg_port" -U postgres "$@" postgres
    fi
}
now() { date +%s.%N; }
# rate COUNT START: COUNT per second since START (a `now`).
rate() { python3 -c "print(round($1 / ($(now) - $2)))"; }

# ------------------------------------------------------------------ the results table
results=()
# record NAME KURA PG BETTER(higher|lower) UNIT
record() {
    results+=("$1|$2|$3|$4|$5")
    printf 'compare: %s: kura %s, postgresql %s %s\n' "$1" "$2" "$3" "$5" >&2
}
print_table() {
    echo
    echo "Kura ($kura_bin, $(git rev-parse --short HEAD 2>/dev/null || echo '?')) vs $("$pg_bin/postgres" --version)"
    echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $rows rows, durability $durability, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| workload | unit | Kura | PostgreSQL | ratio (>1: Kura ahead) |"
    echo "|---|---|---:|---:|---:|"
    local line name k p better unit ratio
    for line in "${results[@]}"; do
        IFS='|' read -r name k p better unit <<<"$line"
        ratio=$(python3 - "$k" "$p" "$better" <<'EOF'
import sys
k, p, better = sys.argv[1:4]
try:
    k, p = float(k), float(p)
    r = k / p if better == "higher" else p / k
    print(f"{r:.2f}x")
except (ValueError, ZeroDivisionError):
    print("-")
EOF
)
        echo "| $name | $unit | $k | $p | $ratio |"
    done
}

# ------------------------------------------------------------------ data
series_ddl="CREATE TABLE series (device integer NOT NULL, ts timestamp NOT NULL, value double precision, PRIMARY KEY (device, ts))"
# 1000 devices, one reading each per second from 2024-01-01 on.
python3 - "$rows" >"$work/series.csv" <<'EOF'
import sys, datetime
rows = int(sys.argv[1])
out = sys.stdout
base = datetime.datetime(2024, 1, 1)
devices = 1000
seconds = rows // devices + 1
for sec in range(seconds):
    first = sec * devices
    if first >= rows:
        break
    stamp = (base + datetime.timedelta(seconds=sec)).strftime("%Y-%m-%d %H:%M:%S")
    n = min(devices, rows - first)
    out.write("".join(f"{d},{stamp},{((first + d) * 7919 % 100000) / 100}\n" for d in range(n)))
EOF
span_seconds=$(( (rows + 999) / 1000 ))

for system in kura pg; do
    sql "$system" -c "$series_ddl" \
        -c "CREATE TABLE devices (device integer PRIMARY KEY, site text)" \
        -c "INSERT INTO devices SELECT g, 'site ' || (g % 10) FROM generate_series(0, 999) AS t(g)"
done

# The server's resident memory before the rows arrive, to count what storing them costs.
kura_rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$kura_pid/status")

# (a) COPY of the time series
load_series() {
    local system=$1 start
    start=$(now)
    sql "$system" -c "\\copy series FROM '$work/series.csv' WITH (FORMAT csv)"
    rate "$rows" "$start"
}
copy_kura=$(load_series kura)
# Kura's resident memory once the COPY's buffers are gone: it returns them to the OS when the
# COPY commits, on a thread of its own, so wait until the resident size stops falling.
settled_rss() {
    local previous=0 current
    current=$(awk '/VmRSS/ {print $2}' "/proc/$kura_pid/status")
    for _ in $(seq 30); do
        [ "$previous" -ne 0 ] && [ $((previous - current)) -le $((previous / 100)) ] && break
        sleep 1
        previous=$current
        current=$(awk '/VmRSS/ {print $2}' "/proc/$kura_pid/status")
    done
    echo "$current"
}
kura_rss_loaded=$(settled_rss)
copy_pg=$(load_series pg)
sql pg -c "VACUUM ANALYZE series" -c "VACUUM ANALYZE devices"
wants copy && record "COPY FROM STDIN, $rows time-series rows" "$copy_kura" "$copy_pg" higher "rows/s"

# (b) multi-row INSERT batches of 1000 rows
if wants insert; then
    python3 - "$insert_batches" >"$work/inserts.sql" <<'EOF'
import sys
for b in range(int(sys.argv[1])):
    values = ",".join(f"({b * 1000 + i},{i % 100},'row {b * 1000 + i}')" for i in range(1000))
    print(f"INSERT INTO batch_rows VALUES {values};")
EOF
    for system in kura pg; do
        sql "$system" -c "CREATE TABLE batch_rows (id integer PRIMARY KEY, k integer, note text)"
        start=$(now)
        sql "$system" -f "$work/inserts.sql"
        eval "insert_$system=$(rate $((insert_batches * 1000)) "$start")"
    done
    record "INSERT, 1000-row batches, 1 client" "$insert_kura" "$insert_pg" higher "rows/s"
fi

# (c) pgbench with custom scripts, prepared
tps() { sed -n 's/^tps = \([0-9]*\)\.[0-9]* (without initial connection time)$/\1/p' | head -1; }
# The tps of one pgbench run, or nothing (shown as "-") when a client was aborted by an error.
run_tps() {
    local out
    if out=$(bench "$@" 2>&1); then
        tps <<<"$out"
    else
        echo "compare: pgbench $* failed: $(grep -m1 -i error <<<"$out")" >&2
    fi
}
if wants pgbench; then
    printf '\\set id random(1, %s)\nSELECT v FROM kv WHERE id = :id;\n' "$kv_rows" >"$work/select.sql"
    printf '\\set id random(1, %s)\n\\set d random(1, 1000)\nUPDATE kv SET v = v + :d WHERE id = :id;\n' "$kv_rows" >"$work/update.sql"
    printf '\\set id random(1, 2000000000)\nINSERT INTO kv_new VALUES (:id, :id) ON CONFLICT (id) DO NOTHING;\n' >"$work/insert.sql"
    for system in kura pg; do
        sql "$system" -c "CREATE TABLE kv (id integer PRIMARY KEY, v integer, pad text)" \
            -c "INSERT INTO kv SELECT g, g, 'pad' FROM generate_series(1, $kv_rows) AS t(g)" \
            -c "CREATE TABLE kv_new (id integer PRIMARY KEY, v integer)"
    done
    sql pg -c "VACUUM ANALYZE kv"
    for script in select update insert; do
        for c in ${clients//,/ }; do
            for system in kura pg; do
                eval "pgb_$system=\$(run_tps $system -n -M prepared -f $work/$script.sql -c $c -j $c -T $seconds)"
            done
            record "pgbench $script by key, prepared, $c clients" "${pgb_kura:--}" "${pgb_pg:--}" higher "tps"
        done
    done
fi

# (d) pgbench's own TPC-B-like script
if wants tpcb; then
    for system in kura pg; do
        if bench "$system" -i -s 1 -q >"$work/tpcb-init-$system.log" 2>&1; then
            eval "tpcb_$system=\$(run_tps $system -n -M prepared -c 16 -j 16 -T $seconds)"
        else
            eval "tpcb_$system=-"
            echo "compare: pgbench -i failed on $system: $(grep -m1 -i error "$work/tpcb-init-$system.log" || tail -1 "$work/tpcb-init-$system.log")" >&2
        fi
    done
    record "pgbench TPC-B-like (-s 1), prepared, 16 clients" "${tpcb_kura:--}" "${tpcb_pg:--}" higher "tps"
fi

# (e) analytical queries on the time series: best of 3, in milliseconds
best_ms() {
    local system=$1 query=$2 best="" t
    for _ in 1 2 3; do
        t=$(sql "$system" -c '\timing on' -c "$query" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
        if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $t < $best else 1)"; then best=$t; fi
    done
    echo "$best"
}
if wants analytics; then
    range_start=$((span_seconds * 495 / 1000))
    range_end=$((span_seconds * 505 / 1000))
    queries=(
        "full-table aggregates|SELECT count(*), avg(value), min(value), max(value), sum(device) FROM series"
        "GROUP BY device, hourly buckets|SELECT count(*), sum(a) FROM (SELECT device, date_trunc('hour', ts) AS h, avg(value) AS a FROM series GROUP BY device, date_trunc('hour', ts)) AS g"
        "1% time-range aggregate|SELECT count(*), avg(value) FROM series WHERE ts >= TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '$range_start seconds' AND ts < TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '$range_end seconds'"
        "top-N by value|SELECT device, ts, value FROM series ORDER BY value DESC, device, ts LIMIT 10"
        "join with a dimension table|SELECT d.site, count(*), avg(s.value) FROM series AS s JOIN devices AS d ON s.device = d.device GROUP BY d.site ORDER BY d.site"
    )
    for entry in "${queries[@]}"; do
        name=${entry%%|*}
        query=${entry#*|}
        record "$name" "$(best_ms kura "$query")" "$(best_ms pg "$query")" lower "ms"
    done
fi

# (f) memory per million rows stored
if wants memory; then
    # Kura keeps rows in memory: the growth of its resident memory from before to after the
    # COPY. PostgreSQL: the table with its index on disk.
    kura_rss=$kura_rss_loaded
    pg_bytes=$(sql pg -At -c "SELECT pg_total_relation_size('series')")
    record "memory (Kura RSS growth) / disk (PostgreSQL table+index) per million rows" \
        "$(python3 -c "print(round(($kura_rss - $kura_rss_before) / 1024 / ($rows / 1e6), 1))")" \
        "$(python3 -c "print(round($pg_bytes / 1048576 / ($rows / 1e6), 1))")" lower "MiB"
fi

print_table
