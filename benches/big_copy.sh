#!/usr/bin/env bash
# A COPY far larger than memory: streams KURA_BIG_COPY_MB megabytes of generated rows through
# psql's \copy into a fresh Kura server whose /dataStore/storeMemoryLimit is
# KURA_BIG_COPY_LIMIT, then restarts it after a SIGKILL. Prints the COPY's time and rate, the
# server's peak and final memory, what was swapped out, and the restart's time and peak memory.
#
#   KURA_BIG_COPY_MB=10000 KURA_BIG_COPY_LIMIT=1024MB benches/big_copy.sh
#
# Needs: a release build (KURA_BENCH_BIN, default target/release/kura), psql, python3, and
# about three times the data size free on the disk of TMPDIR (log, swap files, checkpoint).
set -euo pipefail

mb=${KURA_BIG_COPY_MB:-10000}
limit=${KURA_BIG_COPY_LIMIT:-1024MB}
bin=${KURA_BENCH_BIN:-target/release/kura}
port=${KURA_BIG_COPY_PORT:-5491}
row_bytes=256
rows=$((mb * 1000000 / row_bytes))

work=$(mktemp -d "${TMPDIR:-/tmp}/kura-big-copy.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/kura.json" <<EOF
{"dataStore": {"storeMemoryLimit": "$limit"}}
EOF
# Rows of 256 bytes: id, timestamp, value, and text that varies with the id.
cat > "$work/rows.py" <<'EOF'
import sys
rows = int(sys.argv[1])
out = sys.stdout
filler = "".join(chr(97 + i % 26) for i in range(200))
for start in range(0, rows, 10000):
    lines = []
    for i in range(start, min(start + 10000, rows)):
        text = (format(i * 2654435761 % 2**32, "08x") + filler)[:200]
        lines.append(f"{i:012d}\t2026-01-01 00:00:{i % 60:02d}\t{i * 0.5:017.1f}\t{text}\n")
    out.write("".join(lines))
EOF

start_server() {
    KURA_ADMIN_PASSWORD=bench "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
        --config "$work/kura.json" > "$work/server.log" 2>&1 &
    server_pid=$!
    disown "$server_pid"
    until grep -q "listening on" "$work/server.log"; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
        sleep 0.2
    done
}
status() { grep -E "^$1:" "/proc/$server_pid/status" | awk '{printf "%.0f", $2 / 1024}'; }
sql() { PGPASSWORD=bench psql -h 127.0.0.1 -p "$port" -U admin -d public -Atqc "$1"; }

start_server
sql "CREATE TABLE big (id bigint, ts timestamp, value double precision, note text)"
echo "COPY of $rows rows ($mb MB of text) under storeMemoryLimit $limit"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
began=$(now_ms)
sql "\\copy big FROM PROGRAM 'python3 $work/rows.py $rows'"
ms=$(($(now_ms) - began))
echo "copy:      $((ms / 1000)) s, $((rows * 1000 / ms)) rows/s, $((mb * 1000 / ms)) MB/s"
echo "memory:    peak $(status VmHWM) MiB, now $(status VmRSS) MiB"
echo "stored:    $(sql "SELECT sum(memory_bytes) / 1048576 || ' MiB of rows and stamps in memory, ' || sum(swapped_bytes) / 1048576 || ' MiB swapped out' FROM \"#table_partitions\" WHERE table_name = 'big'")"
check=$(sql "SELECT count(*), sum(id), max(length(note)) FROM big")
echo "contents:  count|sum(id)|max(length) = $check (expected $rows|$((rows * (rows - 1) / 2))|200)"
sql "CHECKPOINT"
echo "on disk:   $(du -sh "$work/data/txnlog" | cut -f1) log, $(du -sh "$work/data/checkpoint" | cut -f1) checkpoint, $(du -sh "$work/data/swap" | cut -f1) swap"
kill -9 "$server_pid"
while kill -0 "$server_pid" 2>/dev/null; do sleep 0.1; done
began=$(now_ms)
start_server
echo "restart:   $(($(now_ms) - began)) ms after SIGKILL, peak $(status VmHWM) MiB, now $(status VmRSS) MiB"
echo "contents:  $(sql "SELECT count(*), sum(id), max(length(note)) FROM big")"
