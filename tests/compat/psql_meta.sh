#!/usr/bin/env bash
# psql's backslash commands against a PostgreSQL-protocol server, asserting on what psql prints:
# \l \dn \dt \d \d readings \d+ readings \d+ view \di \dv \du \df \x \timing, and \copy both ways.
#
#   bash tests/compat/psql_meta.sh HOST PORT
#
# Loads tests/compat/fixtures/schema.sql first (sensors, readings with PRIMARY KEY (sensor_id, ts),
# readings_ts_idx, the view hourly_temperature). Every check must pass against PostgreSQL 15.
set -uo pipefail
cd "$(dirname "$0")"
host=${1:?usage: psql_meta.sh HOST PORT}
port=${2:?usage: psql_meta.sh HOST PORT}

passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One psql invocation; stdout+stderr in $out, exit status in $status.
p() {
    out=$(psql -X -v ON_ERROR_STOP=1 -P pager=off -h "$host" -p "$port" -U kura -d kura "$@" 2>&1)
    status=$?
}

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
    failed=$((failed + 1))
    local reason=$2
    [ -n "${out:-}" ] && reason="$reason; psql printed: $(printf '%s' "$out" | head -c 300 | tr '\n' '|')"
    echo "FAIL $1: $reason"
}

# expect NAME REGEX... : every extended regex must match a line of $out, and psql must exit 0.
expect() {
    local name=$1; shift
    if [ "$status" != 0 ]; then fail "$name" "psql exited $status"; return; fi
    local re
    for re in "$@"; do
        if ! printf '%s\n' "$out" | grep -Eq -- "$re"; then fail "$name" "no line matches /$re/"; return; fi
    done
    ok "$name"
}

p -q -f fixtures/schema.sql
expect "load fixtures/schema.sql"

p -c '\l'
expect '\l lists the database' 'List of databases' '^ *kura +\|'

p -c '\dn'
expect '\dn lists public' 'List of schemas' '^ *public +\|'

p -c '\dt'
expect '\dt lists the tables' 'List of relations' '^ *public +\| readings +\| table +\|' \
    '^ *public +\| sensors +\| table +\|'

p -c '\d'
expect '\d lists tables and the view' '^ *public +\| hourly_temperature +\| view +\|' \
    '^ *public +\| readings +\| table +\|' '^ *public +\| sensors +\| table +\|'

p -c '\d readings'
expect '\d readings shows columns and indexes' 'Table "public\.readings"' \
    '^ *sensor_id +\| integer +\| +\| not null +\|' \
    '^ *ts +\| timestamp without time zone +\| +\| not null +\|' \
    '^ *temperature +\| double precision +\| +\| +\|' \
    '^ *humidity +\| real +\| +\| +\|' \
    '^Indexes:' '"readings_pkey" PRIMARY KEY, btree \(sensor_id, ts\)' '"readings_ts_idx" btree \(ts\)'

p -c '\d sensors'
expect '\d sensors shows the default' '^ *active +\| boolean +\| +\| not null +\| true' \
    '^ *location +\| character varying\(64\) +\|' '"sensors_pkey" PRIMARY KEY, btree \(id\)'

p -c '\d+ readings'
expect '\d+ readings shows storage and indexes' 'Table "public\.readings"' '\| Storage +\|' \
    '^ *sensor_id +\| integer +\| +\| not null +\| +\| plain +\|' \
    '"readings_pkey" PRIMARY KEY, btree \(sensor_id, ts\)' '"readings_ts_idx" btree \(ts\)'

p -c '\d+ hourly_temperature'
expect '\d+ hourly_temperature shows the view definition' 'View "public\.hourly_temperature"' \
    '^ *avg_temp +\| numeric\(6,2\) +\|' '^View definition:' 'FROM readings'

p -c '\di'
expect '\di lists the indexes' '^ *public +\| readings_pkey +\| index +\| [^|]+\| readings *$' \
    '^ *public +\| readings_ts_idx +\| index +\| [^|]+\| readings *$' \
    '^ *public +\| sensors_pkey +\| index +\| [^|]+\| sensors *$'

p -c '\dv'
expect '\dv lists the view' '^ *public +\| hourly_temperature +\| view +\|'

p -c '\du'
expect '\du lists the current user' 'List of roles' '^ *kura +\|'

p -c '\df'
expect '\df runs' 'List of functions' 'Schema +\| Name +\| Result data type'

p -c '\x on' -c 'SELECT 1 AS a, '"'"'b'"'"' AS b'
expect '\x expanded output' 'Expanded display is on' '^-\[ RECORD 1 \]' '^a +\| 1$' '^b +\| b$'

p -c '\timing on' -c 'SELECT 1'
expect '\timing prints the time' 'Timing is on' '^Time: [0-9]+[.,][0-9]+ ms'

# \copy both ways: out of readings, into a copy of it, and compare.
copy_drop="DROP TABLE IF EXISTS compat_psql_copy"
copy_ddl="CREATE TABLE compat_psql_copy (sensor_id integer NOT NULL, ts timestamp NOT NULL, temperature double precision, humidity real, PRIMARY KEY (sensor_id, ts))"
p -c "\\copy (SELECT * FROM readings ORDER BY sensor_id, ts) TO '$tmp/readings.txt'"
expected=$'1\t2024-05-01 08:00:00\t21\t60.5\n1\t2024-05-01 08:30:00\t22\t58\n1\t2024-05-01 09:00:00\t23\t55.5\n1\t2024-05-01 09:30:00\t24\t52\n2\t2024-05-01 08:00:00\t12.5\t80\n2\t2024-05-01 09:00:00\t13.5\t79.5\n3\t2024-05-01 08:00:00\t30.5\t35'
if [ "$status" != 0 ]; then fail '\copy (query) TO file' "psql exited $status"
elif [ "$(cat "$tmp/readings.txt")" != "$expected" ]; then
    out=$(cat "$tmp/readings.txt"); fail '\copy (query) TO file' "unexpected file content"
else ok '\copy (query) TO file'; fi

p -q -c "$copy_drop" -c "$copy_ddl" -c "\\copy compat_psql_copy FROM '$tmp/readings.txt'" \
    -c "SELECT 'same:' || count(*) FROM (SELECT * FROM readings EXCEPT SELECT * FROM compat_psql_copy) d
        WHERE (SELECT count(*) FROM compat_psql_copy) = 7"
expect '\copy table FROM file' '^ *same:0$'

p -c "\\copy readings TO '$tmp/readings.csv' WITH (FORMAT csv, HEADER true)"
if [ "$status" != 0 ]; then fail '\copy table TO file (CSV, header)' "psql exited $status"
elif [ "$(head -n1 "$tmp/readings.csv")" != "sensor_id,ts,temperature,humidity" ] ||
     [ "$(wc -l <"$tmp/readings.csv")" != 8 ] ||
     ! grep -qx '2,2024-05-01 09:00:00,13.5,79.5' "$tmp/readings.csv"; then
    out=$(cat "$tmp/readings.csv"); fail '\copy table TO file (CSV, header)' "unexpected file content"
else ok '\copy table TO file (CSV, header)'; fi

p -q -c "$copy_drop" -c "$copy_ddl" -c "\\copy compat_psql_copy (sensor_id, ts, temperature, humidity) FROM '$tmp/readings.csv' WITH (FORMAT csv, HEADER true)" \
    -c "SELECT 'same:' || count(*) FROM (SELECT * FROM readings EXCEPT SELECT * FROM compat_psql_copy) d
        WHERE (SELECT count(*) FROM compat_psql_copy) = 7"
expect '\copy table FROM file (CSV, header)' '^ *same:0$'

printf '1\tx\n1\ty\n' >"$tmp/dup.txt"
p -q -c "DROP TABLE IF EXISTS compat_psql_copy2" -c "CREATE TABLE compat_psql_copy2 (id integer PRIMARY KEY, v text)" \
    -c "\\copy compat_psql_copy2 FROM '$tmp/dup.txt'"
dup='\copy with a duplicate key fails and leaves nothing'
if [ "$status" = 0 ]; then fail "$dup" "psql exited 0"
elif ! printf '%s' "$out" | grep -q 'duplicate key'; then fail "$dup" "no duplicate-key error"
else
    p -At -c 'SELECT count(*) FROM compat_psql_copy2'
    if [ "$out" = 0 ]; then ok "$dup"
    else fail "$dup" "rows left"; fi
fi

p -q -c 'DROP TABLE IF EXISTS compat_psql_copy' -c 'DROP TABLE IF EXISTS compat_psql_copy2'
out=""

echo "psql: $passed passed, $failed failed"
[ "$failed" = 0 ]
