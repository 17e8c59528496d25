#!/usr/bin/env python3
"""Replays every statement of tests/compat/fixtures/clients/*.sql through psycopg (libpq), once
with the simple query protocol and once with the extended protocol (Parse/Bind/Describe/Execute,
as pgjdbc, Npgsql and DBeaver send them), and checks the `-- expect:` annotations.

    python3 tests/compat/python/fixtures_replay.py HOST PORT [FILE.sql ...]

First loads tests/compat/fixtures/schema.sql (sensors, readings, readings_ts_idx,
hourly_temperature), then resolves the placeholders ({{oid:NAME}}, {{nspoid:NAME}}) to the oids the
server reports. The file format and the placeholders are described in tests/compat/fixtures/README.md.
Set COMPAT_SHOW=1 to print every result (for writing expectations).
"""

import glob
import os
import re
import sys

import psycopg
from psycopg import pq

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
SHOW = os.environ.get("COMPAT_SHOW") == "1"

if len(sys.argv) < 3:
    print("usage: fixtures_replay.py HOST PORT [FILE.sql ...]", file=sys.stderr)
    sys.exit(2)
HOST, PORT = sys.argv[1], int(sys.argv[2])
FILES = sys.argv[3:] or sorted(glob.glob(os.path.join(FIXTURES, "clients", "*.sql")))

PLACEHOLDER = re.compile(r"\{\{(oid|nspoid):([A-Za-z_][A-Za-z0-9_]*)\}\}")
OK_STATUSES = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)


class Statement:
    def __init__(self, path, line, source):
        self.path = path
        self.line = line
        self.source = source
        self.expects = []
        self.sql_lines = []

    @property
    def sql(self):
        return "\n".join(self.sql_lines).strip()

    def where(self):
        return f"{os.path.basename(self.path)}:{self.line}"

    def purpose(self):
        m = re.search(r"\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$", self.source)
        text = m.group(1) if m else self.source
        return text if len(text) <= 90 else text[:87] + "..."


def parse(path):
    """A statement starts at a `-- source:` line and runs to the next one. `-- expect:` lines
    right after the source line are its expectations; other comment lines before the SQL are
    skipped."""
    statements = []
    cur = None
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("-- source:"):
                cur = Statement(path, no, line[len("-- source:"):].strip())
                statements.append(cur)
                continue
            if cur is None:
                continue
            if not cur.sql_lines:
                if line.startswith("-- expect:"):
                    cur.expects.append(line[len("-- expect:"):].strip())
                    continue
                if line.startswith("--") or not line.strip():
                    continue
            cur.sql_lines.append(line)
    for st in statements:
        if not st.sql.endswith(";"):
            raise SystemExit(f"{st.where()}: statement does not end with ';'")
    return statements


def connect():
    return psycopg.connect(host=HOST, port=PORT, user="kura", dbname="kura", autocommit=True,
                           connect_timeout=10)


def error_text(res, pgconn):
    state = res.error_field(pq.DiagnosticField.SQLSTATE) if res is not None else None
    msg = res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) if res is not None else None
    state = state.decode() if state else "-----"
    if msg:
        msg = msg.decode(errors="replace")
    else:
        msg = (pgconn.error_message or b"no error message").decode(errors="replace").strip()
    return f"{state} {msg}".replace("\n", " ")


def run_one(pgconn, sql, extended):
    """Runs one statement; returns (ok, error text, rows as lists of str/None)."""
    data = sql.encode()
    if extended:
        res = pgconn.exec_params(data.rstrip().rstrip(b";"), [], result_format=0)
    else:
        res = pgconn.exec_(data)
    if res is None or res.status not in OK_STATUSES:
        return False, error_text(res, pgconn), []
    rows = []
    for r in range(res.ntuples):
        row = []
        for c in range(res.nfields):
            v = res.get_value(r, c)
            row.append(None if v is None else v.decode(errors="replace"))
        rows.append(row)
    return True, None, rows


def check_expect(expect, rows):
    """Returns None when satisfied, else a reason."""
    m = re.fullmatch(r"rows\s*(>=|=)\s*(\d+)", expect)
    if m:
        n = int(m.group(2))
        if (m.group(1) == "=" and len(rows) != n) or (m.group(1) == ">=" and len(rows) < n):
            return f"expected rows {m.group(1)} {n}, got {len(rows)}"
        return None
    m = re.fullmatch(r"cell\s+(.*)", expect)
    if m:
        want = m.group(1)
        if any(want in row for row in rows):
            return None
        return f"no cell equals {want!r} (first rows: {rows[:3]})"
    m = re.fullmatch(r"row-contains\s+(.*)", expect)
    if m:
        wants = [w.strip() for w in m.group(1).split("|")]
        if any(all(w in row for w in wants) for row in rows):
            return None
        return f"no row contains all of {wants} (first rows: {rows[:3]})"
    if expect == "error-ok":
        return None
    return f"unknown expectation {expect!r}"


def resolve_placeholders(pgconn, needed):
    values, problems = {}, {}
    for kind, name in sorted(needed):
        key = f"{{{{{kind}:{name}}}}}"
        if kind == "oid":
            queries = [f"SELECT '{name}'::regclass::oid",
                       f"SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = '{name}'"]
        else:
            queries = [f"SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = '{name}'"]
        errs = []
        for q in queries:
            ok, err, rows = run_one(pgconn, q, False)
            if ok and len(rows) == 1 and rows[0][0] and rows[0][0].isdigit():
                values[key] = rows[0][0]
                break
            errs.append(err if not ok else f"{q!r} returned {rows!r}")
        else:
            problems[key] = "; ".join(errs)
    return values, problems


def load_schema():
    """Returns the failures of loading schema.sql (empty when it loaded)."""
    path = os.path.join(FIXTURES, "schema.sql")
    text = "\n".join(l for l in open(path, encoding="utf-8").read().splitlines()
                     if not l.startswith("--"))
    failures = []
    with connect() as conn:
        for stmt in [s.strip() for s in re.split(r";\s*\n", text) if s.strip()]:
            ok, err, _ = run_one(conn.pgconn, stmt, False)
            if not ok:
                failures.append(f"{stmt.splitlines()[0]}: {err}")
    return failures


def report(name, reason):
    """One check line: `ok   NAME` or `FAIL NAME: reason`. NAME is the check's stable
    identifier (tests/compat/expected_failures.txt refers to it): no oids, no timings."""
    if reason is None:
        print(f"ok   {name}", flush=True)
        return True
    reason = str(reason).replace("\n", " | ")
    if len(reason) > 400:
        reason = reason[:400] + "..."
    print(f"FAIL {name}: {reason}", flush=True)
    return False


def main():
    passed = failed = 0
    summary = []

    def tally(ok):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1

    # A server that cannot be reached fails every check with the connection error: the checks
    # never silently disappear from the report.
    try:
        schema_failures = load_schema()
    except psycopg.Error as e:
        schema_failures = [f"connection error: {e}"]
    tally(report("load schema.sql", "; ".join(schema_failures) or None))
    parsed = [(path, parse(path)) for path in FILES]
    needed = {(k, n) for _, sts in parsed for st in sts for k, n in PLACEHOLDER.findall(st.sql)}
    try:
        with connect() as conn:
            values, problems = resolve_placeholders(conn.pgconn, needed)
    except psycopg.Error as e:
        values = {}
        problems = {f"{{{{{k}:{n}}}}}": f"connection error: {e}" for k, n in needed}
    for kind, name in sorted(needed):
        key = f"{{{{{kind}:{name}}}}}"
        tally(report(f"placeholder {key}", f"unresolved: {problems[key]}" if key in problems else None))

    for path, statements in parsed:
        counts = {}
        for mode in ("simple", "extended"):
            ok_count = 0
            conn = None
            for st in statements:
                reason = None
                if conn is None or conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
                    try:
                        conn = connect()
                    except psycopg.Error as e:
                        conn = None
                        reason = f"connection error: {e}"
                sql = st.sql
                missing = [k for k in PLACEHOLDER.finditer(sql) if k.group(0) not in values]
                if reason is not None:
                    pass
                elif missing:
                    reason = f"placeholder {missing[0].group(0)} unresolved"
                else:
                    sql = PLACEHOLDER.sub(lambda m: values[m.group(0)], sql)
                    try:
                        ok, err, rows = run_one(conn.pgconn, sql, mode == "extended")
                    except psycopg.Error as e:  # connection-level failure
                        ok, err, rows = False, f"connection error: {e}", []
                    if SHOW:
                        print(f"--- {st.where()} [{mode}] {'ok' if ok else err}")
                        for r in rows[:20]:
                            print("    ", r)
                    if ok:
                        reasons = [r for r in (check_expect(e, rows) for e in st.expects) if r]
                        reason = reasons[0] if reasons else None
                    elif "error-ok" in st.expects:
                        # An ordinary ErrorResponse is acceptable; a dropped connection is not.
                        try:
                            usable = conn.pgconn.status == pq.ConnStatus.OK and \
                                run_one(conn.pgconn, "SELECT 1", False)[0]
                        except psycopg.Error:
                            usable = False
                        reason = None if usable else f"connection unusable after the error ({err})"
                    else:
                        reason = err
                # The check's name is `file.sql:LINE [mode]`; what the statement is for follows
                # the reason.
                ok = report(f"{st.where()} [{mode}]",
                            None if reason is None else f"{reason} -- {st.purpose()}")
                tally(ok)
                ok_count += ok
            counts[mode] = ok_count
            if conn is not None:
                conn.close()
        n = len(statements)
        summary.append(f"  {os.path.basename(path):14} {n:3} statements   simple {counts['simple']:3}/{n}"
                       f"   extended {counts['extended']:3}/{n}")

    print("per file (statements passing):")
    for line in summary:
        print(line)
    print(f"fixtures: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


main()
