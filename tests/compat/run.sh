#!/usr/bin/env bash
# Real-client compatibility: starts a Kura server built from this tree and drives it with real
# PostgreSQL clients, suite by suite (tests/compat/README.md):
#   basic     psql: quickstart, errors, CHECKPOINT, pgbench -i and TPC-B, clean SIGTERM stop
#             and restart
#   psql      psql backslash commands and \copy            (psql_meta.sh)
#   psycopg   psycopg 3                                      (python/psycopg_compat.py)
#   odbc      psqlODBC through unixODBC, driven by pyodbc    (python/odbc_compat.py)
#   jdbc      pgjdbc 42.x                                    (jdbc/KuraJdbcCompat.java)
#   fixtures  the BI tools' and drivers' catalog queries     (python/fixtures_replay.py)
# Every suite runs even when an earlier one failed; a summary per suite comes last.
#
# Against Kura, each check is classified with tests/compat/expected_failures.txt (the checks known
# to fail today, one "suite<TAB>check name<TAB># reason" line each):
#   ok     passed, not listed
#   XFAIL  failed, listed                    (does not fail the run)
#   FAIL   failed, not listed                (fails the run: a regression, or a new check)
#   XPASS  passed, listed; or listed but not reported by its suite (fails the run: delete the line)
# A suite that crashes, times out, or whose output is inconsistent fails the run too ("suite
# crashed"), whatever the list says. Against COMPAT_TARGET the list is ignored: every check must
# pass. The script exits 1 on any FAIL or XPASS.
#
# Environment:
#   COMPAT_TARGET=HOST:PORT   test a server that is already running (e.g. PostgreSQL 15, see
#                             pg_reference.sh) instead of starting Kura; the Kura-only checks of
#                             the basic suite are skipped. It must accept user kura, database kura
#                             (with the password in PGPASSWORD, if it asks for one).
#   KURA_BIN=PATH             the Kura binary to start (default: build with cargo, then
#                             target/debug/kura)
#   COMPAT_SUITES="psql jdbc" run only these suites (default: all)
#   COMPAT_UPDATE_EXPECTED=1  rewrite expected_failures.txt from this run (Kura only): the checks
#                             that failed are listed, the ones that passed are dropped, reasons of
#                             remaining lines are kept; refused when a suite crashed
#   COMPAT_EXPECTED_FILE=PATH another expected-failure list (default tests/compat/expected_failures.txt;
#                             a relative path is taken from the repository root)
#   COMPAT_LONG_QUERY_ROWS=N  size of the cancellation checks' long query (README.md)
#   COMPAT_SUITE_TIMEOUT=S    seconds a suite may run before it is killed and fails (default 180)
#   COMPAT_ALLOW_FAILURES=1   exit 0 even if checks failed (local use only; CI must not set it)
#   COMPAT_SKIP_INSTALL=1     do not install missing clients (their suites then fail)
set -uo pipefail
cd "$(dirname "$0")/../.."
compat=tests/compat
suites=${COMPAT_SUITES:-"basic psql psycopg odbc jdbc fixtures"}
expected_file=${COMPAT_EXPECTED_FILE:-$compat/expected_failures.txt}
update=${COMPAT_UPDATE_EXPECTED:-}
suite_timeout=${COMPAT_SUITE_TIMEOUT:-180}
all_suites="basic psql psycopg odbc jdbc fixtures"
want() { case " $suites " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if [ "$update" = 1 ] && [ -n "${COMPAT_TARGET:-}" ]; then
    echo "COMPAT_UPDATE_EXPECTED=1 applies to Kura only: the list is ignored against COMPAT_TARGET" >&2
    exit 2
fi

# ----------------------------------------------------------------------------- client installs
# Idempotent: only what is missing is installed (apt as root, pip for the Python drivers).
apt_updated=""
missing=()
apt_install() {
    [ "${COMPAT_SKIP_INSTALL:-}" = 1 ] && return 1
    [ "$(id -u)" = 0 ] || { echo "cannot install $* without root" >&2; return 1; }
    if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null && apt_updated=1 || return 1; fi
    echo "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
py_has() { python3 -c "import $1" >/dev/null 2>&1; }
pip_install() {
    [ "${COMPAT_SKIP_INSTALL:-}" = 1 ] && return 1
    echo "installing $* with pip"
    python3 -m pip install -q --disable-pip-version-check "$@" >/dev/null 2>&1 ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@" >/dev/null 2>&1
}
install_clients() {
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client || missing+=(psql)
    if want jdbc; then
        if ! command -v java >/dev/null 2>&1 || ! java --list-modules 2>/dev/null | grep -q '^jdk.compiler'; then
            apt_install openjdk-17-jdk-headless || missing+=(java)
        fi
        [ -f /usr/share/java/postgresql.jar ] || apt_install libpostgresql-jdbc-java || missing+=(pgjdbc)
    fi
    if want psycopg || want odbc || want fixtures; then
        command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip || missing+=(python3)
        if ! py_has psycopg; then
            pip_install 'psycopg[binary]' || apt_install python3-psycopg || missing+=(psycopg)
        fi
    fi
    if want odbc; then
        if ! odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1; then
            apt_install unixodbc unixodbc-dev odbc-postgresql || missing+=(psqlodbc)
        fi
        py_has pyodbc || pip_install pyodbc || apt_install python3-pyodbc || missing+=(pyodbc)
    fi
    return 0
}
install_clients

# ----------------------------------------------------------------------------- expected failures
# expected["suite<TAB>name"] = reason (may be empty), for every line of the list; expected_order
# keeps the file's order. A malformed list fails the run (list_errors).
declare -A expected=()
expected_order=()
expected_header=()
list_errors=()
load_expected() {
    [ -f "$expected_file" ] || return 0
    local line no=0 suite name rest key in_header=1
    while IFS= read -r line || [ -n "$line" ]; do
        no=$((no + 1))
        line=${line%$'\r'}
        case "$line" in
            '# -- '*) # a section heading, regenerated by COMPAT_UPDATE_EXPECTED=1
                in_header=""
                continue
                ;;
            '' | '#'*)
                [ -n "$in_header" ] && expected_header+=("$line")
                continue
                ;;
        esac
        in_header=""
        suite=${line%%$'\t'*}
        rest=${line#"$suite"}
        rest=${rest#$'\t'}
        name=${rest%%$'\t'*}
        rest=${rest#"$name"}
        rest=${rest#$'\t'}
        if [[ " $all_suites " != *" $suite "* ]] || [ -z "$name" ] || [ "$suite" = "$line" ]; then
            list_errors+=("$expected_file:$no: expected 'suite<TAB>check name[<TAB># reason]' with a suite of: $all_suites")
            continue
        fi
        if [ -n "$rest" ] && [[ "$rest" != '#'* ]]; then
            list_errors+=("$expected_file:$no: the text after the check name must be a '# reason' comment")
            continue
        fi
        key="$suite"$'\t'"$name"
        if [ -n "${expected[$key]+set}" ]; then
            list_errors+=("$expected_file:$no: '$name' ($suite) is listed twice")
            continue
        fi
        rest=${rest#\#}
        rest=${rest# }
        expected[$key]=$rest
        expected_order+=("$key")
    done <"$expected_file"
}
load_expected
if [ "${#list_errors[@]}" != 0 ]; then
    printf '%s\n' "${list_errors[@]}" >&2
fi

# ----------------------------------------------------------------------------- the server
server=""
data_dir=""
log=$(mktemp)
tmp_files=("$log")
stop_server() { # SIGTERM, then SIGKILL after 60 s; sets stop_status (exit status or a message)
    kill -TERM "$server" 2>/dev/null
    local i
    for i in $(seq 1 600); do
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server" 2>/dev/null; then
        kill -KILL "$server" 2>/dev/null
        wait "$server" 2>/dev/null
        stop_status="still running 60 s after SIGTERM"
    else
        wait "$server"
        stop_status=$?
    fi
    server=""
}
cleanup() {
    # Wait for the shutdown checkpoint before removing the data directory.
    [ -n "$server" ] && stop_server
    [ -n "$data_dir" ] && rm -rf "$data_dir"
    rm -f "${tmp_files[@]}"
}
trap cleanup EXIT

# Every client logs in with this password: Kura's administrator `admin` and the general user
# `kura` (owner of database kura) share it; PostgreSQL's trust authentication ignores it.
export PGPASSWORD=${PGPASSWORD:-kura-compat}

start_kura() {
    : >"$log"
    KURA_ADMIN_PASSWORD=$PGPASSWORD "$kura_bin" serve --listen 127.0.0.1:0 --data-dir "$data_dir" >"$log" 2>&1 &
    server=$!
    port=""
    for _ in $(seq 1 600); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$port" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    echo "kura did not become ready" >&2
    return 1
}

if [ -n "${COMPAT_TARGET:-}" ]; then
    host=${COMPAT_TARGET%:*}
    port=${COMPAT_TARGET##*:}
    echo "== target: $host:$port (COMPAT_TARGET; Kura-only checks skipped, expected failures ignored)"
else
    host=127.0.0.1
    if [ -n "${KURA_BIN:-}" ]; then
        kura_bin=$KURA_BIN
    else
        # Build the server the way `cargo test` does (same features), so the artifacts of the test
        # run are reused instead of rebuilding the dependency tree for a plain `cargo build`.
        cargo test --locked --quiet --no-run 2>/dev/null || cargo test --locked --no-run || exit 1
        kura_bin=./target/debug/kura
    fi
    data_dir=$(mktemp -d)
    start_kura || exit 1
    # The clients' database and user, as pg_reference.sh makes them on PostgreSQL.
    psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U admin -d public \
        -c "CREATE DATABASE kura" \
        -c "CREATE USER kura IDENTIFIED BY '$PGPASSWORD'" \
        -c "GRANT ALL ON DATABASE kura TO kura" || exit 1
    echo "== target: Kura ($kura_bin) on $host:$port; expected failures: $expected_file (${#expected_order[@]})"
fi

# ----------------------------------------------------------------------------- classification
summary=()
declare -A reported=()  # "suite<TAB>name" -> 1 for every check a suite reported
observed_failures=()    # "suite<TAB>name<TAB>reason" of every failed check, in order (for the update)
incomplete=()           # suites whose report cannot be trusted to be complete (crash, missing client)
total_passed=0 total_xfail=0 total_failed=0 total_xpass=0
s_passed=0 s_xfail=0 s_failed=0 s_xpass=0

# A check's outcome: NAME pass|fail [REASON]. Against Kura the list decides ok/XFAIL/FAIL/XPASS.
outcome() {
    local suite=$1 name=$2 result=$3 reason=${4:-}
    reason=${reason//$'\t'/ }
    local key="$suite"$'\t'"$name"
    if [ -n "${reported[$key]+set}" ]; then
        s_failed=$((s_failed + 1))
        echo "FAIL $name: reported twice by the $suite suite (check names must be unique)"
        return
    fi
    reported[$key]=1
    local listed=""
    [ -z "${COMPAT_TARGET:-}" ] && [ -n "${expected[$key]+set}" ] && listed=1
    if [ "$result" = pass ]; then
        if [ -n "$listed" ]; then
            s_xpass=$((s_xpass + 1))
            echo "XPASS $name: passes now${reason:+ $reason}; delete its line from $expected_file"
        else
            s_passed=$((s_passed + 1))
            echo "ok   $name${reason:+ $reason}"
        fi
    else
        observed_failures+=("$key"$'\t'"$reason")
        if [ -n "$listed" ]; then
            s_xfail=$((s_xfail + 1))
            echo "XFAIL $name: $reason"
        else
            s_failed=$((s_failed + 1))
            echo "FAIL $name: $reason"
        fi
    fi
}

# A failure of the suite itself (crash, timeout, missing client): always FAIL, never listed, and
# the suite's report is incomplete, so listed checks it did not report are not stale.
suite_failure() { # suite name reason
    s_failed=$((s_failed + 1))
    incomplete+=("$1")
    echo "FAIL $2: $3"
}

# Reads a program's output: "ok   NAME" (optionally followed by " (N.Ns)"), "FAIL NAME: reason",
# and last "<suite>: N passed, N failed". Other lines are passed through.
classify() {
    local suite=$1 line name reason
    prog_summary=""
    local n_ok=0 n_fail=0
    while IFS= read -r line; do
        line=${line%$'\r'}
        case "$line" in
            "ok   "*)
                name=${line#"ok   "}
                reason=""
                if [[ "$name" =~ ^(.*)\ (\([0-9]+\.[0-9]+s\))$ ]]; then
                    name=${BASH_REMATCH[1]}
                    reason=${BASH_REMATCH[2]} # the time a slow check took: shown, not compared
                fi
                n_ok=$((n_ok + 1))
                outcome "$suite" "$name" pass "$reason"
                ;;
            "FAIL "*)
                name=${line#"FAIL "}
                name=${name%%: *}
                reason=${line#"FAIL $name"}
                reason=${reason#: }
                n_fail=$((n_fail + 1))
                outcome "$suite" "$name" fail "$reason"
                ;;
            *)
                if [[ "$line" =~ ^$suite:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
                    prog_summary="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
                    [ "${BASH_REMATCH[1]}" = "$n_ok" ] && [ "${BASH_REMATCH[2]}" = "$n_fail" ] ||
                        prog_summary="inconsistent: it says ${BASH_REMATCH[1]} passed, ${BASH_REMATCH[2]} failed, it printed $n_ok ok and $n_fail FAIL lines"
                fi
                printf '%s\n' "$line"
                ;;
        esac
    done
}

# After a suite: judge how it ended (exit status, summary line), report listed checks it did not
# report, and add its line to the summary.
finish_suite() { # suite exit-status elapsed
    local suite=$1 rc=$2 elapsed=$3
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        suite_failure "$suite" "suite crashed" "killed after ${suite_timeout}s (COMPAT_SUITE_TIMEOUT); checks after the last one printed did not run"
    elif [ -z "$prog_summary" ]; then
        suite_failure "$suite" "suite crashed" "exit status $rc without the '$suite: N passed, N failed' line; checks after the last one printed did not run"
    elif [[ "$prog_summary" == inconsistent* ]]; then
        suite_failure "$suite" "suite crashed" "output $prog_summary"
    elif { [ "$rc" = 0 ] && [ "${prog_summary#* }" != 0 ]; } || { [ "$rc" != 0 ] && [ "${prog_summary#* }" = 0 ]; }; then
        suite_failure "$suite" "suite crashed" "exit status $rc with ${prog_summary#* } failed checks"
    fi
    local key missing_listed=0
    if [ -z "${COMPAT_TARGET:-}" ]; then
        for key in "${expected_order[@]}"; do
            [ "${key%%$'\t'*}" = "$suite" ] || continue
            [ -n "${reported[$key]+set}" ] && continue
            if [[ " ${incomplete[*]:-} " == *" $suite "* ]]; then
                missing_listed=$((missing_listed + 1))
            else
                s_xpass=$((s_xpass + 1))
                echo "XPASS ${key#*$'\t'}: listed in $expected_file but the suite did not report it (renamed or removed?); delete its line"
            fi
        done
        [ "$missing_listed" != 0 ] && echo "($missing_listed listed checks were not reported: the suite did not complete)"
    fi
    summary+=("$(printf '  %-9s %4d passed, %4d xfail, %4d failed, %4d xpass   %4ds' \
        "$suite" "$s_passed" "$s_xfail" "$s_failed" "$s_xpass" "$elapsed")")
    total_passed=$((total_passed + s_passed))
    total_xfail=$((total_xfail + s_xfail))
    total_failed=$((total_failed + s_failed))
    total_xpass=$((total_xpass + s_xpass))
    s_passed=0 s_xfail=0 s_failed=0 s_xpass=0
}

# run_suite NAME NEEDS COMMAND...: runs a program that prints "ok"/"FAIL" lines and ends with
# "<suite>: N passed, N failed"; NEEDS lists clients that must have installed.
run_suite() {
    local name=$1 needs=$2
    shift 2
    want "$name" || return 0
    echo
    echo "== $name"
    local n start=$SECONDS
    for n in $needs; do
        if [[ " ${missing[*]:-} " == *" $n "* ]]; then
            suite_failure "$name" "suite crashed" "$n is not installed"
            prog_summary="0 1"
            finish_suite "$name" 1 0
            return
        fi
    done
    local rcfile
    rcfile=$(mktemp)
    tmp_files+=("$rcfile")
    # The exit status is written before the pipe closes, so it is there when classify returns.
    classify "$name" < <(timeout --kill-after=10 "$suite_timeout" "$@" 2>&1; echo "$?" >"$rcfile")
    finish_suite "$name" "$(cat "$rcfile")" $((SECONDS - start))
}

# ----------------------------------------------------------------------------- suites
# The original psql checks, plus Kura's clean stop and restart. Runs in this shell (not in a
# pipeline): the restart changes $server and $port.
basic_suite() {
    local passed=0 failed=0
    check() {
        local name=$1 out rc
        shift
        out=$(timeout 120 "$@" 2>&1)
        rc=$?
        if [ "$rc" = 0 ]; then
            passed=$((passed + 1))
            echo "ok   $name"
        else
            failed=$((failed + 1))
            echo "FAIL $name: exit status $rc${out:+; output: $(printf '%s' "$out" | head -c 300 | tr '\n' '|')}"
        fi
    }
    local psql_c="psql -X -h $host -p $port -U kura -d kura"
    if [ -z "${COMPAT_TARGET:-}" ]; then
        check "psql runs sql/quickstart.sql" $psql_c -q -v ON_ERROR_STOP=1 -f sql/quickstart.sql -o /dev/null
        check "psql reruns sql/quickstart.sql" $psql_c -q -v ON_ERROR_STOP=1 -f sql/quickstart.sql -o /dev/null
        check "psql sees the quickstart data" bash -c "[ \"\$($psql_c -At -c 'SELECT count(*) FROM readings')\" = 6 ]"
        check "psql runs CHECKPOINT" bash -c "[ \"\$(psql -X -h $host -p $port -U admin -d public -c 'CHECKPOINT' 2>&1)\" = CHECKPOINT ]"
    else
        # sql/quickstart.sql ends with GridDB syntax that only Kura accepts.
        check "psql runs fixtures/schema.sql" $psql_c -q -v ON_ERROR_STOP=1 -f $compat/fixtures/schema.sql -o /dev/null
    fi
    # pgbench's own schema (its DDL, COPY FREEZE, VACUUM, ADD PRIMARY KEY), then its TPC-B-like
    # transactions from 4 clients; every transaction must be counted exactly once.
    local pgbench_c="pgbench -h $host -p $port -U kura"
    check "pgbench -i builds its tables" $pgbench_c -i -s 1 -q kura
    check "pgbench runs TPC-B-like transactions" $pgbench_c -n -c 4 -j 2 -t 25 -M prepared kura
    check "pgbench history holds every transaction" bash -c "[ \"\$($psql_c -At -c 'SELECT count(*) FROM pgbench_history')\" = 100 ]"
    check "pgbench balances add up" bash -c "[ \"\$($psql_c -At -c 'SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history) AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history) AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history)')\" = t ]"
    check "psql exits 1 on a failing command" bash -c "$psql_c -q -c 'SELECT * FROM no_such_table' >/dev/null 2>&1; [ \$? = 1 ]"
    check "psql reports the SQLSTATE" bash -c "$psql_c -v VERBOSITY=verbose -c '\\set VERBOSITY verbose' -c 'SELECT * FROM no_such_table' 2>&1 | grep -q 42P01"
    if [ -z "${COMPAT_TARGET:-}" ]; then
        # A clean stop writes a checkpoint and exits 0; a restart on the same directory has the data.
        stop_server
        check "SIGTERM stops the server with status 0" test "$stop_status" = 0
        if start_kura; then
            psql_c="psql -X -h $host -p $port -U kura -d kura"
            check "the restarted server sees the quickstart data" bash -c "[ \"\$($psql_c -At -c 'SELECT count(*) FROM readings')\" = 6 ]"
        else
            check "the restarted server sees the quickstart data" false
        fi
    fi
    echo "basic: $passed passed, $failed failed"
    [ "$failed" = 0 ]
}

if want basic; then
    echo
    echo "== basic"
    start=$SECONDS
    if [[ " ${missing[*]:-} " == *" psql "* ]]; then
        suite_failure basic "suite crashed" "psql is not installed"
        prog_summary="0 1"
        finish_suite basic 1 0
    else
        basic_out=$(mktemp)
        tmp_files+=("$basic_out")
        basic_suite >"$basic_out" 2>&1
        basic_rc=$?
        classify basic <"$basic_out"
        finish_suite basic "$basic_rc" $((SECONDS - start))
    fi
fi

suite_programs=(
    "psql|psql|bash $compat/psql_meta.sh"
    "psycopg|python3 psycopg|python3 $compat/python/psycopg_compat.py"
    "odbc|python3 psqlodbc pyodbc|python3 $compat/python/odbc_compat.py"
    "jdbc|java pgjdbc|java -cp /usr/share/java/postgresql.jar $compat/jdbc/KuraJdbcCompat.java"
    "fixtures|python3 psycopg|python3 $compat/python/fixtures_replay.py"
)
for entry in "${suite_programs[@]}"; do
    IFS='|' read -r name needs command <<<"$entry"
    want "$name" || continue
    if [ -z "${COMPAT_TARGET:-}" ] && ! kill -0 "${server:-0}" 2>/dev/null; then
        echo
        echo "== $name"
        suite_failure "$name" "suite crashed" "not run: Kura is not running (see the log above)"
        prog_summary="0 1"
        finish_suite "$name" 1 0
        continue
    fi
    # shellcheck disable=SC2086 # the command is split into words on purpose (no spaces in paths)
    run_suite "$name" "$needs" $command "$host" "$port"
done
if [ -z "${COMPAT_TARGET:-}" ] && [ -n "$server" ] && ! kill -0 "$server" 2>/dev/null; then
    echo "kura exited during the run:" >&2
    tail -n 20 "$log" >&2
fi

# ----------------------------------------------------------------------------- update of the list
if [ "$update" = 1 ]; then
    echo
    if [ "${#incomplete[@]}" != 0 ] || [ "${#list_errors[@]}" != 0 ]; then
        echo "== $expected_file NOT updated: ${incomplete[*]:-the list is malformed}${incomplete[*]:+ did not complete}" >&2
        update=refused
    else
        declare -A now_failing=()
        for f in "${observed_failures[@]}"; do
            key=${f%$'\t'*}
            now_failing[$key]=${f##*$'\t'}
        done
        new=$(mktemp)
        tmp_files+=("$new")
        {
            if [ "${#expected_header[@]}" != 0 ]; then
                printf '%s\n' "${expected_header[@]}"
            else
                printf '%s\n' "# Checks of tests/compat/run.sh known to fail on Kura: suite<TAB>check name<TAB># reason." \
                    "# Maintained with COMPAT_UPDATE_EXPECTED=1 (tests/compat/README.md)." ""
            fi
            added=0 removed=0 kept=0
            added_lines=()
            for s in $all_suites; do
                lines=()
                if want "$s"; then
                    # This run's failures, in the order the suite reported them.
                    for f in "${observed_failures[@]}"; do
                        key=${f%$'\t'*}
                        [ "${key%%$'\t'*}" = "$s" ] || continue
                        if [ -n "${expected[$key]+set}" ]; then
                            reason=${expected[$key]}
                            kept=$((kept + 1))
                        else
                            # A new line: the failure message is its first reason (pids of the
                            # programs' table names masked, so that reruns give the same text).
                            reason=$(printf '%s' "${now_failing[$key]}" |
                                sed -E 's/(compat_[a-z]+)_[0-9]+_/\1_PID_/g' | cut -c1-160)
                            added=$((added + 1))
                            added_lines+=("  $s: ${key#*$'\t'}")
                        fi
                        lines+=("$key${reason:+$'\t'# $reason}")
                    done
                    for key in "${expected_order[@]}"; do
                        [ "${key%%$'\t'*}" = "$s" ] && [ -z "${now_failing[$key]+set}" ] && removed=$((removed + 1))
                    done
                else
                    # Not run: its lines stay as they are.
                    for key in "${expected_order[@]}"; do
                        [ "${key%%$'\t'*}" = "$s" ] || continue
                        lines+=("$key${expected[$key]:+$'\t'# ${expected[$key]}}")
                    done
                fi
                [ "${#lines[@]}" = 0 ] && continue
                echo "# -- $s (${#lines[@]})"
                printf '%s\n' "${lines[@]}"
                echo
            done
        } >"$new" # a group, not a subshell: the counts stay set
        # No trailing blank line.
        sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$new" >"$expected_file"
        expected_order=()
        expected=()
        list_errors=()
        expected_header=()
        load_expected
        echo "== $expected_file updated: $added added, $removed removed (passing now), $kept kept; ${#expected_order[@]} expected failures"
        if [ "$added" != 0 ]; then
            echo "added (new checks that fail, or regressions: a check that used to pass must be fixed, not listed):"
            printf '%s\n' "${added_lines[@]}"
        fi
    fi
fi

# ----------------------------------------------------------------------------- summary
echo
note=""
[ "$update" = 1 ] && note=" (classified with the list as it was before the update)"
echo "== summary${COMPAT_TARGET:+ (target $COMPAT_TARGET, expected failures ignored)}$note"
printf '%s\n' "${summary[@]}"
if [ "${#list_errors[@]}" != 0 ]; then
    printf '  %s\n' "${list_errors[@]}"
    total_failed=$((total_failed + ${#list_errors[@]}))
fi
echo "compat: $total_passed passed, $total_xfail xfail, $total_failed failed, $total_xpass xpass"
if [ -z "${COMPAT_TARGET:-}" ]; then
    echo "compat: ${#expected_order[@]} expected failures remain in $expected_file"
fi
if [ "$update" = 1 ]; then
    # The list now matches this run; only failures of the suites themselves still count.
    [ "${#incomplete[@]}" = 0 ] && exit 0
    exit 1
fi
if [ "$total_failed" != 0 ] || [ "$total_xpass" != 0 ]; then
    [ "$total_failed" != 0 ] && echo "FAIL lines: checks that fail and are not in $expected_file: a regression to fix (or a new check that fails)"
    [ "$total_xpass" != 0 ] && echo "XPASS lines: listed checks that pass now: delete their lines (COMPAT_UPDATE_EXPECTED=1 does it)"
    [ "${COMPAT_ALLOW_FAILURES:-}" = 1 ] && exit 0
    exit 1
fi
exit 0
