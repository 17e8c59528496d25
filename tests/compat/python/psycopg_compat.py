#!/usr/bin/env python3
"""psycopg 3 against a PostgreSQL-protocol server: queries, typed parameters, server-side cursors,
COPY, cancellation, session commands, version parsing.

    python3 tests/compat/python/psycopg_compat.py HOST PORT

Connects as user kura to database kura. Creates its own tables (compat_py_<pid>_*) and drops them.
Every check must pass against PostgreSQL 15 (tests/compat/run.sh with COMPAT_TARGET=host:port).
"""

import os
import re
import threading
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from psycopg import errors, pq
from psycopg.types import TypeInfo

from compat_check import LONG_QUERY, Checks, check, eq, parse_args

HOST, PORT = parse_args("psycopg_compat.py")
PREFIX = f"compat_py_{os.getpid()}"
T = f"{PREFIX}_types"       # every supported type
TC = f"{PREFIX}_copy"       # COPY target, same columns
TS = f"{PREFIX}_small"      # id + a few columns, for CSV and errors
TB = f"{PREFIX}_big"        # 1000 rows for server-side cursors
APP = "compat-start"

COLUMNS = ["id", "c_bool", "c_int2", "c_int4", "c_int8", "c_float4", "c_float8", "c_numeric",
           "c_varchar", "c_text", "c_char", "c_bytea", "c_ts", "c_tstz", "c_date"]
TYPES_DDL = """(
    id        integer PRIMARY KEY,
    c_bool    boolean,
    c_int2    smallint,
    c_int4    integer,
    c_int8    bigint,
    c_float4  real,
    c_float8  double precision,
    c_numeric numeric(12,3),
    c_varchar varchar(20),
    c_text    text,
    c_char    char(5),
    c_bytea   bytea,
    c_ts      timestamp,
    c_tstz    timestamptz,
    c_date    date
)"""
# (type name, oid) of each column as RowDescription must report it.
COLUMN_TYPES = [("int4", 23), ("bool", 16), ("int2", 21), ("int4", 23), ("int8", 20),
                ("float4", 700), ("float8", 701), ("numeric", 1700), ("varchar", 1043),
                ("text", 25), ("bpchar", 1042), ("bytea", 17), ("timestamp", 1114),
                ("timestamptz", 1184), ("date", 1082)]

PLUS2 = timezone(timedelta(hours=2))


def values(id_):
    """Three rows per id block: full values, extreme values, all NULL."""
    base = id_ % 10
    if base == 1:
        return (id_, True, 32767, 2147483647, 9223372036854775807, 1.25, 3.141592653589793,
                Decimal("123456789.125"), "héllo wörld", "multi\nline 'quoted' \"x\" \\ ✓\ttab",
                "ab", bytes(range(256)), datetime(2024, 5, 1, 8, 0, 0, 123456),
                datetime(2024, 5, 1, 8, 0, 0, 500000, tzinfo=PLUS2), date(2024, 5, 1))
    if base == 2:
        return (id_, False, -32768, -2147483648, -9223372036854775808, -0.5, -1e300,
                Decimal("-0.001"), "", "", "abcde", b"",
                datetime(1969, 12, 31, 23, 59, 59, 999999),
                datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), date(1900, 1, 1))
    return (id_,) + (None,) * 14


def same_row(actual, expected, where):
    """Compares a fetched row with what was written. char(n) is compared without its trailing
    blanks: Kura stores char(n) unpadded (docs/ARCHITECTURE.md), PostgreSQL pads."""
    eq(len(actual), len(expected), f"{where}: column count")
    for name, a, e in zip(COLUMNS, actual, expected):
        if name == "c_char" and isinstance(a, str) and e is not None:
            a = a.rstrip(" ")
        if name == "c_bytea" and isinstance(a, memoryview):
            a = bytes(a)
        if name == "c_numeric" and e is not None:
            eq(str(a), str(e), f"{where}: {name} (text, scale kept)")
        if name == "c_tstz" and e is not None:
            check(isinstance(a, datetime) and a.tzinfo is not None,
                  f"{where}: {name}: expected an aware datetime, got {a!r}")
        eq(a, e, f"{where}: {name}")


def connect(**kw):
    kw.setdefault("autocommit", True)
    return psycopg.connect(host=HOST, port=PORT, user="kura", dbname="kura",
                           application_name=APP, connect_timeout=10, **kw)


checks = Checks("psycopg")
conn = None


def c():
    """The shared autocommit connection, reopened if a previous check broke it."""
    global conn
    if conn is None or conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
        try:
            if conn is not None:
                conn.close()
        except Exception:  # noqa: BLE001
            pass
        conn = connect()
    return conn


# ---------------------------------------------------------------- connection and plain queries

def t_connect():
    global conn
    conn = connect()
    eq(conn.execute("SELECT 1").fetchone(), (1,), "SELECT 1")


def t_startup_params():
    info = c().info
    for name, expected in [("server_encoding", "UTF8"), ("client_encoding", "UTF8"),
                           ("DateStyle", "ISO, MDY"), ("integer_datetimes", "on"),
                           ("standard_conforming_strings", "on"), ("application_name", APP)]:
        eq(info.parameter_status(name), expected, f"ParameterStatus {name}")
    check(info.parameter_status("TimeZone"), "ParameterStatus TimeZone missing")
    check(info.parameter_status("server_version"), "ParameterStatus server_version missing")
    check(info.backend_pid != 0, "BackendKeyData: backend pid is 0")


def t_plain_queries():
    cur = c().cursor()
    cur.execute("SELECT 1 + 1 AS two, 'x' || 'y' AS xy, NULL::integer AS n")
    eq(cur.fetchall(), [(2, "xy", None)], "expression row")
    eq([d.name for d in cur.description], ["two", "xy", "n"], "column names")
    cur.execute("SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) AS v(i, s) ORDER BY i DESC")
    eq(cur.fetchall(), [(3, "c"), (2, "b"), (1, "a")], "VALUES rows")
    eq(cur.rowcount, 3, "rowcount of a SELECT")
    cur.execute("SELECT 1 WHERE false")
    eq(cur.fetchall(), [], "empty result")


def t_empty_query():
    # Grafana's health check (pgx Ping) is the simple query "-- ping": EmptyQueryResponse.
    res = c().pgconn.exec_(b"-- ping")
    eq(res.status, pq.ExecStatus.EMPTY_QUERY, "status of '-- ping'")
    res = c().pgconn.exec_(b"")
    eq(res.status, pq.ExecStatus.EMPTY_QUERY, "status of ''")


def t_multi_statement():
    # Npgsql and psqlODBC send several statements in one simple-query message.
    pgconn = c().pgconn
    pgconn.send_query(b"SET extra_float_digits = 3; SELECT 1 AS a; SELECT 'two' AS b, 3 AS c")
    results = []
    while True:
        res = pgconn.get_result()
        if res is None:
            break
        results.append(res)
    eq([r.status for r in results],
       [pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.TUPLES_OK], "statuses")
    eq(results[0].command_status, b"SET", "first command tag")
    eq(results[1].get_value(0, 0), b"1", "second result")
    eq((results[2].get_value(0, 0), results[2].get_value(0, 1)), (b"two", b"3"), "third result")


def t_multi_statement_ddl():
    # psql -c 'DROP TABLE IF EXISTS t; CREATE TABLE t (...)' and migration tools send DDL batches.
    name = f"{PREFIX}_batch"
    pgconn = c().pgconn
    pgconn.send_query(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (a integer PRIMARY KEY); "
                      f"INSERT INTO {name} VALUES (1), (2); DROP TABLE {name}".encode())
    results = []
    while True:
        res = pgconn.get_result()
        if res is None:
            break
        results.append(res)
    eq([(r.status, r.command_status) for r in results],
       [(pq.ExecStatus.COMMAND_OK, b"DROP TABLE"), (pq.ExecStatus.COMMAND_OK, b"CREATE TABLE"),
        (pq.ExecStatus.COMMAND_OK, b"INSERT 0 2"), (pq.ExecStatus.COMMAND_OK, b"DROP TABLE")],
       f"results ({[r.error_message for r in results if r.error_message]})")


def t_create_tables():
    cx = c()
    for t in (T, TC, TB, TS):
        cx.execute(f"DROP TABLE IF EXISTS {t}")
    cx.execute(f"CREATE TABLE {T} {TYPES_DDL}")
    cx.execute(f"CREATE INDEX {T}_int8_idx ON {T} (c_int8)")
    cx.execute(f"CREATE TABLE {TC} {TYPES_DDL}")
    cx.execute(f"CREATE TABLE {TB} (id integer PRIMARY KEY, label text NOT NULL)")
    cx.execute(f"CREATE TABLE {TS} (id integer PRIMARY KEY, c_text text, c_int4 integer, "
               f"c_bool boolean)")


# ---------------------------------------------------------------- typed parameters, every type

PLACEHOLDERS = {"auto": "%s", "binary": "%b", "text": "%t"}


def insert_rows(mode, first_id):
    ph = ", ".join([PLACEHOLDERS[mode]] * len(COLUMNS))
    cur = c().cursor()
    for i in range(3):
        cur.execute(f"INSERT INTO {T} VALUES ({ph})", values(first_id + i))
        eq(cur.rowcount, 1, f"rowcount of INSERT {first_id + i}")
        eq(cur.statusmessage, "INSERT 0 1", "command tag")


def read_rows(first_id):
    for binary in (False, True):
        cur = c().cursor(binary=binary)
        for i in range(3):
            cur.execute(f"SELECT * FROM {T} WHERE id = %s", [first_id + i])
            rows = cur.fetchall()
            eq(len(rows), 1, f"rows for id {first_id + i}")
            same_row(rows[0], values(first_id + i),
                     f"id {first_id + i} read as {'binary' if binary else 'text'}")


def t_params(mode, first_id):
    insert_rows(mode, first_id)
    read_rows(first_id)


def t_result_metadata():
    cur = c().cursor()
    cur.execute(f"SELECT * FROM {T} WHERE id = 1")
    desc = cur.description
    eq([d.name for d in desc], COLUMNS, "column names")
    eq([d.type_code for d in desc], [oid for _, oid in COLUMN_TYPES], "type oids")
    by = {d.name: d for d in desc}
    eq((by["c_numeric"].precision, by["c_numeric"].scale), (12, 3), "numeric(12,3) typmod")
    eq(by["c_varchar"].display_size, 20, "varchar(20) typmod")
    eq(by["c_char"].display_size, 5, "char(5) typmod")
    eq(by["c_int4"].internal_size, 4, "int4 length")
    eq(by["c_int8"].internal_size, 8, "int8 length")


def t_param_filters():
    cur = c().cursor()
    cur.execute(f"SELECT id FROM {T} WHERE c_int8 = %s ORDER BY id", [9223372036854775807])
    eq([r[0] for r in cur.fetchall()], [1, 11, 21], "bigint equality (index)")
    cur.execute(f"SELECT id FROM {T} WHERE c_text = %s AND c_bool = %s ORDER BY id",
                ["", False])
    eq([r[0] for r in cur.fetchall()], [2, 12, 22], "text + bool filter")
    cur.execute(f"SELECT id FROM {T} WHERE c_ts < %s ORDER BY id", [datetime(1970, 1, 1)])
    eq([r[0] for r in cur.fetchall()], [2, 12, 22], "timestamp range")
    cur.execute(f"SELECT id FROM {T} WHERE c_tstz = %s ORDER BY id",
                [datetime(2024, 5, 1, 6, 0, 0, 500000, tzinfo=timezone.utc)])
    eq([r[0] for r in cur.fetchall()], [1, 11, 21], "timestamptz equality across zones")
    cur.execute(f"SELECT id FROM {T} WHERE c_numeric = %s ORDER BY id", [Decimal("-0.001")])
    eq([r[0] for r in cur.fetchall()], [2, 12, 22], "numeric equality")
    cur.execute(f"SELECT id FROM {T} WHERE c_bytea = %s ORDER BY id", [bytes(range(256))])
    eq([r[0] for r in cur.fetchall()], [1, 11, 21], "bytea equality")
    cur.execute(f"SELECT id FROM {T} WHERE c_date IS NULL ORDER BY id")
    eq([r[0] for r in cur.fetchall()], [3, 13, 23], "IS NULL")
    cur.execute("SELECT %s::integer + %s::integer, %s::text", [40, 2, None])
    eq(cur.fetchone(), (42, None), "parameters in expressions")


def t_executemany_prepared():
    cur = c().cursor()
    cur.executemany(f"INSERT INTO {TB} (id, label) VALUES (%s, %s)",
                    [(i, f"row {i}") for i in range(1, 1001)])
    eq(c().execute(f"SELECT count(*), min(id), max(id) FROM {TB}").fetchone(), (1000, 1, 1000),
       "count after executemany")
    for i in (5, 500, 999, 1000, 7, 8):  # prepare=True: a named server-side statement, reused
        cur.execute(f"SELECT label FROM {TB} WHERE id = %s", [i], prepare=True)
        eq(cur.fetchone(), (f"row {i}",), f"prepared lookup {i}")


def t_update_delete_returning():
    cur = c().cursor()
    cur.execute(f"UPDATE {TB} SET label = label || '!' WHERE id > %s", [990])
    eq(cur.rowcount, 10, "UPDATE rowcount")
    cur.execute(f"DELETE FROM {TB} WHERE id > %s RETURNING id, label", [995])
    eq(sorted(cur.fetchall()), [(i, f"row {i}!") for i in range(996, 1001)], "DELETE RETURNING")
    eq(cur.statusmessage, "DELETE 5", "DELETE tag")
    cur.executemany(f"INSERT INTO {TB} (id, label) VALUES (%s, %s)",
                    [(i, f"row {i}") for i in range(996, 1001)])
    cur.execute(f"UPDATE {TB} SET label = 'row ' || id WHERE id > 990")


def t_pipeline():
    cx = c()
    with cx.pipeline():
        cur = cx.cursor()
        cur.execute(f"INSERT INTO {TS} (id, c_text) VALUES (%s, %s)", [901, "p1"])
        cur.execute(f"INSERT INTO {TS} (id, c_text) VALUES (%s, %s)", [902, "p2"])
        cur2 = cx.cursor()
        cur2.execute(f"SELECT c_text FROM {TS} WHERE id >= %s ORDER BY id", [901])
    eq(cur2.fetchall(), [("p1",), ("p2",)], "rows inserted in the pipeline")
    cx.execute(f"DELETE FROM {TS} WHERE id >= 901")


def t_transactions():
    with connect(autocommit=False) as cx:
        cx.execute(f"INSERT INTO {TS} (id, c_text) VALUES (801, 'rolled back')")
        cx.rollback()
        eq(cx.execute(f"SELECT count(*) FROM {TS} WHERE id = 801").fetchone(), (0,),
           "after rollback")
        cx.execute(f"INSERT INTO {TS} (id, c_text) VALUES (802, 'committed')")
        cx.commit()
        with cx.transaction():
            cx.execute(f"INSERT INTO {TS} (id, c_text) VALUES (803, 'outer')")
            try:
                with cx.transaction():  # a SAVEPOINT
                    cx.execute(f"INSERT INTO {TS} (id, c_text) VALUES (804, 'inner')")
                    raise RuntimeError("roll back to the savepoint")
            except RuntimeError:
                pass
        cx.commit()
    got = c().execute(f"SELECT id FROM {TS} WHERE id BETWEEN 801 AND 804 ORDER BY id").fetchall()
    eq(got, [(802,), (803,)], "committed rows")
    c().execute(f"DELETE FROM {TS} WHERE id BETWEEN 801 AND 804")


def t_errors():
    cx = c()
    try:
        cx.execute(f"INSERT INTO {TB} (id, label) VALUES (1, 'dup')")
        raise AssertionError("duplicate key accepted")
    except errors.UniqueViolation as e:
        eq(e.sqlstate, "23505", "SQLSTATE")
    try:
        cx.execute("SELECT * FROM compat_no_such_table")
        raise AssertionError("unknown table accepted")
    except errors.UndefinedTable as e:
        eq(e.sqlstate, "42P01", "SQLSTATE")
    with connect(autocommit=False) as tx:
        try:
            tx.execute("SELECT 1/0")
            raise AssertionError("division by zero accepted")
        except errors.DivisionByZero:
            pass
        try:
            tx.execute("SELECT 1")
            raise AssertionError("statement accepted in a failed transaction")
        except errors.InFailedSqlTransaction as e:
            eq(e.sqlstate, "25P02", "SQLSTATE")
        tx.rollback()
        eq(tx.execute("SELECT 1").fetchone(), (1,), "usable after ROLLBACK")


def t_typeinfo():
    info = TypeInfo.fetch(c(), "numeric")
    check(info is not None, "TypeInfo.fetch('numeric') found nothing")
    eq((info.name, info.oid, info.array_oid), ("numeric", 1700, 1231), "numeric type info")


# ---------------------------------------------------------------- server-side cursors

def t_named_cursor():
    with connect(autocommit=False) as cx:
        with cx.cursor(name="compat_cur") as cur:
            cur.itersize = 100
            cur.execute(f"SELECT id, label FROM {TB} WHERE id > %s ORDER BY id", [10])
            eq([d.name for d in cur.description], ["id", "label"], "description")
            eq(cur.fetchone(), (11, "row 11"), "fetchone")
            eq(cur.fetchmany(3), [(12, "row 12"), (13, "row 13"), (14, "row 14")], "fetchmany")
            rest = list(cur)
            eq(len(rest), 986, "rows left by iteration")
            eq(rest[-1], (1000, "row 1000"), "last row")
            eq(cur.fetchone(), None, "fetchone at the end")
        cx.commit()


def t_scrollable_cursor():
    with connect(autocommit=False) as cx:
        with cx.cursor(name="compat_scroll", scrollable=True) as cur:
            cur.execute(f"SELECT id FROM {TB} ORDER BY id")
            eq(cur.fetchmany(5), [(1,), (2,), (3,), (4,), (5,)], "first five")
            cur.scroll(-3)
            eq(cur.fetchone(), (3,), "after scroll(-3)")
            cur.scroll(100, mode="absolute")
            eq(cur.fetchone(), (101,), "after scroll(100, absolute)")
        cx.commit()


def t_withhold_cursor():
    cx = c()  # autocommit: WITH HOLD lets the cursor outlive its transaction
    with cx.cursor(name="compat_hold", withhold=True) as cur:
        cur.itersize = 250
        cur.execute("SELECT g, g * 2 FROM generate_series(1, 1000) AS g")
        rows = cur.fetchall()
    eq(len(rows), 1000, "row count")
    eq(rows[0], (1, 2), "first row")
    eq(rows[-1], (1000, 2000), "last row")


def t_declare_fetch_sql():
    # The statements psqlODBC (UseDeclareFetch=1) and many tools send themselves.
    with connect(autocommit=False) as cx:
        cx.execute(f"DECLARE compat_sql_cur CURSOR FOR SELECT id FROM {TB} ORDER BY id")
        eq(cx.execute("FETCH 3 FROM compat_sql_cur").fetchall(), [(1,), (2,), (3,)], "FETCH 3")
        eq(cx.execute("FETCH NEXT FROM compat_sql_cur").fetchall(), [(4,)], "FETCH NEXT")
        cx.execute("MOVE FORWARD 10 IN compat_sql_cur")
        eq(cx.execute("FETCH 1 IN compat_sql_cur").fetchall(), [(15,)], "FETCH after MOVE")
        cx.execute("CLOSE compat_sql_cur")
        cx.commit()


# ---------------------------------------------------------------- COPY

def t_copy_write_row():
    cur = c().cursor()
    with cur.copy(f"COPY {TC} ({', '.join(COLUMNS)}) FROM STDIN") as cp:
        for i in (1, 2, 3):
            cp.write_row(values(i))
    eq(cur.rowcount, 3, "COPY row count")
    for i in (1, 2, 3):
        row = c().execute(f"SELECT * FROM {TC} WHERE id = %s", [i]).fetchone()
        check(row is not None, f"row {i} missing after COPY")
        same_row(row, values(i), f"row {i} after COPY FROM STDIN")


def t_copy_to_stdout():
    cur = c().cursor()
    with cur.copy(f"COPY (SELECT * FROM {TC} ORDER BY id) TO STDOUT") as cp:
        cp.set_types([t for t, _ in COLUMN_TYPES])
        rows = list(cp.rows())
    eq(len(rows), 3, "rows copied out")
    for r in rows:
        same_row(r, values(r[0]), f"row {r[0]} from COPY TO STDOUT")
    with cur.copy(f"COPY {TC} TO STDOUT") as cp:  # the table form
        data = b"".join(bytes(b) for b in cp)
    eq(len(data.splitlines()), 3, "lines of COPY table TO STDOUT")


def t_copy_text_format():
    cx = c()
    cx.execute(f"INSERT INTO {TS} VALUES (1, %s, NULL, true)", ["a\tb\nc\\d"])
    with cx.cursor().copy(f"COPY (SELECT id, c_text, c_int4, c_bool FROM {TS} WHERE id = 1) "
                          f"TO STDOUT") as cp:
        data = b"".join(bytes(b) for b in cp)
    eq(data, b"1\ta\\tb\\nc\\\\d\t\\N\tt\n", "text-format escapes")
    cx.execute(f"DELETE FROM {TS}")
    with cx.cursor().copy(f"COPY {TS} (id, c_text, c_int4, c_bool) FROM STDIN") as cp:
        cp.write(b"7\tx\\ty\\\\z\t\\N\tf\n8\t\\N\t-1\tt\n")
    eq(cx.execute(f"SELECT * FROM {TS} ORDER BY id").fetchall(),
       [(7, "x\ty\\z", None, False), (8, None, -1, True)], "rows from escaped text")
    cx.execute(f"DELETE FROM {TS}")


def t_copy_binary():
    cx = c()
    cx.execute(f"DELETE FROM {TC}")
    types = [t for t, _ in COLUMN_TYPES]
    # psycopg has no binary dumper for bpchar; its binary form is text's.
    write_types = ["text" if t == "bpchar" else t for t in types]
    with cx.cursor().copy(f"COPY {TC} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(write_types)
        for i in (1, 2, 3):
            cp.write_row(values(i))
    with cx.cursor().copy(f"COPY (SELECT * FROM {TC} ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
        cp.set_types(types)
        rows = list(cp.rows())
    eq([r[0] for r in rows], [1, 2, 3], "ids copied out")
    for r in rows:
        same_row(r, values(r[0]), f"row {r[0]} through binary COPY")


def t_copy_csv():
    cx = c()
    cx.execute(f"DELETE FROM {TS}")
    data = ('id;c_text;c_int4;c_bool\n'
            '1;"semi;colon";10;true\n'
            '2;"quote ""x""";NA;false\n'
            '3;NA;-7;t\n'
            '4;"";0;f\n')
    with cx.cursor().copy(f"COPY {TS} (id, c_text, c_int4, c_bool) FROM STDIN WITH "
                          f"(FORMAT csv, HEADER true, DELIMITER ';', NULL 'NA')") as cp:
        cp.write(data)
    eq(cx.execute(f"SELECT id, c_text, c_int4, c_bool FROM {TS} ORDER BY id").fetchall(),
       [(1, "semi;colon", 10, True), (2, 'quote "x"', None, False), (3, None, -7, True),
        (4, "", 0, False)], "rows read from CSV")
    with cx.cursor().copy(f"COPY (SELECT id, c_text, c_int4, c_bool FROM {TS} ORDER BY id) "
                          f"TO STDOUT WITH (FORMAT csv, HEADER true)") as cp:
        out = b"".join(bytes(b) for b in cp).decode()
    eq(out, 'id,c_text,c_int4,c_bool\n1,semi;colon,10,t\n2,"quote ""x""",,f\n3,,-7,t\n4,"",0,f\n',
       "CSV written by COPY TO STDOUT")
    cx.execute(f"DELETE FROM {TS}")


def t_copy_bad_row():
    cx = c()
    cx.execute(f"DELETE FROM {TS}")
    try:
        with cx.cursor().copy(f"COPY {TS} (id, c_text, c_int4) FROM STDIN") as cp:
            cp.write_row((1, "good", 1))
            cp.write_row((2, "good", 2))
            cp.write(b"3\tbad\tnot-a-number\n")
            cp.write_row((4, "good", 4))
        raise AssertionError("COPY with a bad row succeeded")
    except psycopg.Error as e:
        check(e.sqlstate is not None and e.sqlstate.startswith("22"),
              f"expected a data exception (22xxx), got {e.sqlstate}: {e}")
    eq(cx.execute("SELECT 1").fetchone(), (1,), "connection usable after the failed COPY")
    eq(cx.execute(f"SELECT count(*) FROM {TS}").fetchone(), (0,), "rows visible after the failed COPY")


def t_copy_duplicate_key():
    cx = c()
    cx.execute(f"DELETE FROM {TS}")
    try:
        with cx.cursor().copy(f"COPY {TS} (id, c_text) FROM STDIN") as cp:
            for i in (1, 2, 3, 2):
                cp.write_row((i, f"r{i}"))
        raise AssertionError("COPY with a duplicate key succeeded")
    except errors.UniqueViolation:
        pass
    eq(cx.execute(f"SELECT count(*) FROM {TS}").fetchone(), (0,), "rows visible after the failed COPY")


def t_copy_in_transaction():
    with connect(autocommit=False) as cx:
        with cx.cursor().copy(f"COPY {TS} (id, c_text) FROM STDIN") as cp:
            cp.write_row((50, "in tx"))
        eq(cx.execute(f"SELECT c_text FROM {TS} WHERE id = 50").fetchone(), ("in tx",),
           "own COPY visible inside the transaction")
        cx.rollback()
    eq(c().execute(f"SELECT count(*) FROM {TS}").fetchone(), (0,), "rows after ROLLBACK")


# ---------------------------------------------------------------- cancellation

def t_statement_timeout():
    with connect() as cx:
        cx.execute("SET statement_timeout = 500")
        start = time.monotonic()
        try:
            cx.execute(LONG_QUERY)
            raise AssertionError(f"the query completed after {time.monotonic() - start:.1f}s "
                                 f"instead of being cancelled")
        except errors.QueryCanceled as e:
            eq(e.sqlstate, "57014", "SQLSTATE")
        elapsed = time.monotonic() - start
        check(elapsed < 8, f"cancelled only after {elapsed:.1f}s")
        cx.execute("SET statement_timeout = 0")
        eq(cx.execute("SELECT 2").fetchone(), (2,), "connection usable after the timeout")


def t_conn_cancel(method):
    cx = connect()
    outcome = {}

    def work():
        start = time.monotonic()
        try:
            cx.execute(LONG_QUERY)
            outcome["result"] = f"completed after {time.monotonic() - start:.1f}s"
        except Exception as e:  # noqa: BLE001
            outcome["error"] = e

    th = threading.Thread(target=work, daemon=True)
    th.start()
    time.sleep(1.0)
    check(th.is_alive(), f"the long query ended before the cancel: {outcome}")
    getattr(cx, method)()
    th.join(15)
    check(not th.is_alive(), "the query was still running 15s after the cancel request")
    check("error" in outcome, f"the query was not cancelled: {outcome.get('result')}")
    e = outcome["error"]
    check(isinstance(e, errors.QueryCanceled), f"expected QueryCanceled, got {type(e).__name__}: {e}")
    eq(e.sqlstate, "57014", "SQLSTATE")
    eq(cx.execute("SELECT 3").fetchone(), (3,), "connection usable after the cancel")
    cx.close()


# ---------------------------------------------------------------- session commands

def show(cx, name):
    return cx.execute(f"SHOW {name}").fetchone()[0]


def t_set_show_reset():
    with connect() as cx:
        cx.execute("SET application_name = 'compat-set'")
        eq(show(cx, "application_name"), "compat-set", "SHOW after SET")
        eq(cx.info.parameter_status("application_name"), "compat-set",
           "ParameterStatus after SET")
        cx.execute("RESET application_name")
        eq(show(cx, "application_name"), APP, "SHOW after RESET (the startup value)")
        cx.execute("SET statement_timeout = 1500")
        eq(show(cx, "statement_timeout"), "1500ms", "statement_timeout")
        cx.execute("SET statement_timeout TO DEFAULT")
        eq(show(cx, "statement_timeout"), "0", "statement_timeout after SET TO DEFAULT")
        cx.execute("SET SESSION search_path TO public")
        eq(show(cx, "search_path"), "public", "search_path")
        cx.execute("SET extra_float_digits = 2")
        eq(show(cx, "extra_float_digits"), "2", "extra_float_digits")
        cx.execute("SET client_min_messages TO warning")
        eq(show(cx, "client_min_messages"), "warning", "client_min_messages")
        cx.execute("RESET ALL")
        eq(show(cx, "search_path"), '"$user", public', "search_path after RESET ALL")
        eq(show(cx, "extra_float_digits"), "1", "extra_float_digits after RESET ALL")
        eq(show(cx, "application_name"), APP, "application_name after RESET ALL")


def t_show_variants():
    with connect() as cx:
        eq(show(cx, "TRANSACTION ISOLATION LEVEL"), "read committed", "SHOW TRANSACTION ISOLATION LEVEL")
        eq(show(cx, "transaction_isolation"), "read committed", "transaction_isolation")
        eq(show(cx, "server_encoding"), "UTF8", "server_encoding")
        eq(show(cx, "DateStyle"), "ISO, MDY", "DateStyle")
        eq(show(cx, "standard_conforming_strings"), "on", "standard_conforming_strings")
        eq(show(cx, "max_identifier_length"), "63", "max_identifier_length")
        check(show(cx, "lc_collate"), "lc_collate is empty")
        cur = cx.execute("SHOW ALL")
        names = [d.name for d in cur.description]
        eq(names[:2], ["name", "setting"], "SHOW ALL columns")
        settings = {r[0]: r[1] for r in cur.fetchall()}
        for name in ("application_name", "statement_timeout", "server_version", "TimeZone",
                     "search_path", "client_encoding"):
            check(name in settings, f"SHOW ALL lacks {name} (has {len(settings)} rows)")
        eq(settings["application_name"], APP, "application_name in SHOW ALL")


def t_set_local():
    with connect() as cx:
        with cx.transaction():
            cx.execute("SET LOCAL statement_timeout = 2500")
            eq(show(cx, "statement_timeout"), "2500ms", "inside the transaction")
        eq(show(cx, "statement_timeout"), "0", "after COMMIT")


def t_session_isolation():
    with connect() as cx:
        cx.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        eq(show(cx, "default_transaction_isolation"), "repeatable read", "default_transaction_isolation")
        with cx.transaction():
            eq(show(cx, "transaction_isolation"), "repeatable read", "transaction_isolation in a block")


def t_timezone():
    with connect() as cx:
        cx.execute("SET TIME ZONE 'Asia/Tokyo'")
        eq(show(cx, "TimeZone"), "Asia/Tokyo", "SHOW TimeZone")
        eq(cx.info.parameter_status("TimeZone"), "Asia/Tokyo", "ParameterStatus TimeZone")
        v = cx.execute("SELECT '2024-01-01 00:00:00+00'::timestamptz").fetchone()[0]
        eq(v.utcoffset(), timedelta(hours=9), "offset of a timestamptz in the session zone")
        eq(v, datetime(2024, 1, 1, tzinfo=timezone.utc), "instant")
        text = cx.execute("SELECT CAST('2024-01-01 00:00:00+00'::timestamptz AS text) = "
                          "'2024-01-01 09:00:00+09'").fetchone()[0]
        eq(text, True, "timestamptz text in the session zone")
        cx.execute("SET timezone = 'UTC'")
        eq(cx.execute("SELECT '2024-01-01 00:00:00+00'::timestamptz").fetchone()[0].utcoffset(),
           timedelta(0), "offset after SET timezone = 'UTC'")


def t_discard_all():
    with connect() as cx:
        cx.execute("SET application_name = 'before-discard'")
        cx.execute("SET statement_timeout = 4000")
        cx.execute("PREPARE compat_discard AS SELECT 1")
        cx.execute("DISCARD ALL")
        eq(show(cx, "application_name"), APP, "application_name after DISCARD ALL")
        eq(show(cx, "statement_timeout"), "0", "statement_timeout after DISCARD ALL")
        try:
            cx.execute("EXECUTE compat_discard")
            raise AssertionError("prepared statement survived DISCARD ALL")
        except errors.InvalidSqlStatementName:
            pass


def t_prepare_deallocate():
    with connect() as cx:
        cx.execute("PREPARE compat_p1 (integer) AS SELECT $1 + 1")
        eq(cx.execute("EXECUTE compat_p1(41)").fetchone(), (42,), "EXECUTE")
        cx.execute("DEALLOCATE compat_p1")
        try:
            cx.execute("EXECUTE compat_p1(1)")
            raise AssertionError("EXECUTE after DEALLOCATE succeeded")
        except errors.InvalidSqlStatementName as e:
            eq(e.sqlstate, "26000", "SQLSTATE")
        cx.execute("PREPARE compat_p2 AS SELECT 2")
        cx.execute("PREPARE compat_p3 AS SELECT 3")
        cx.execute("DEALLOCATE PREPARE compat_p2")
        cx.execute("DEALLOCATE ALL")
        try:
            cx.execute("EXECUTE compat_p3")
            raise AssertionError("EXECUTE after DEALLOCATE ALL succeeded")
        except errors.InvalidSqlStatementName:
            pass


def t_set_config():
    with connect() as cx:
        eq(cx.execute("SELECT set_config('application_name', 'via-set-config', false)").fetchone(),
           ("via-set-config",), "set_config result")
        eq(show(cx, "application_name"), "via-set-config", "SHOW after set_config")
        eq(cx.execute("SELECT current_setting('application_name')").fetchone(),
           ("via-set-config",), "current_setting")
        with cx.transaction():
            cx.execute("SELECT set_config('statement_timeout', '3000', true)")
            eq(cx.execute("SELECT current_setting('statement_timeout')").fetchone(), ("3s",),
               "is_local set_config inside the transaction")
        eq(cx.execute("SELECT current_setting('statement_timeout')").fetchone(), ("0",),
           "is_local set_config after COMMIT")
        eq(cx.execute("SELECT current_setting('compat.no_such_setting', true)").fetchone(),
           (None,), "current_setting(missing_ok)")
        try:
            cx.execute("SELECT current_setting('compat.no_such_setting')")
            raise AssertionError("current_setting of an unknown name succeeded")
        except errors.UndefinedObject as e:
            eq(e.sqlstate, "42704", "SQLSTATE")


# ---------------------------------------------------------------- version parsing

# SQLAlchemy's PGDialect._get_server_version_info regex, applied to version().
SQLALCHEMY_RE = re.compile(
    r".*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?(?:\.(\d+))?(?:\.\d+)?(?:devel|beta)?")


def t_version_parse():
    cx = c()
    v = cx.execute("SELECT pg_catalog.version()").fetchone()[0]
    m = SQLALCHEMY_RE.match(v)
    check(m is not None, f"SQLAlchemy's regex does not match version() {v!r}")
    major = int(m.group(1))
    m2 = re.match(r"PostgreSQL (\d+)\.?(\d+)?", v)
    check(m2 is not None, f"version() does not start with 'PostgreSQL N.N': {v!r}")
    num = int(cx.execute("SHOW server_version_num").fetchone()[0])
    eq(int(cx.execute("SELECT current_setting('server_version_num')").fetchone()[0]), num,
       "current_setting('server_version_num')")
    eq(cx.info.server_version, num, "libpq PQserverVersion")
    eq(major, num // 10000, "major version from version() vs server_version_num")
    check(major >= 10, f"major version {major} < 10")
    sv = cx.execute("SHOW server_version").fetchone()[0]
    m3 = re.match(r"(\d+)(?:\.(\d+))?", sv)
    check(m3 is not None, f"SHOW server_version is not numeric: {sv!r}")
    eq(int(m3.group(1)), major, "major version from SHOW server_version")
    eq(cx.info.parameter_status("server_version"), sv, "ParameterStatus server_version")
    # Grafana: current_setting('server_version_num')::int/100
    eq(cx.execute("SELECT current_setting('server_version_num')::int / 100").fetchone()[0],
       num // 100, "current_setting(...)::int / 100")


def cleanup():
    try:
        cx = connect()
        for t in (T, TC, TB, TS):
            try:
                cx.execute(f"DROP TABLE IF EXISTS {t}")
            except psycopg.Error:
                pass
        cx.close()
    except psycopg.Error:
        pass


def main():
    checks.run("connect", t_connect)
    try:
        checks.run("startup ParameterStatus values", t_startup_params)
        checks.run("plain queries", t_plain_queries)
        checks.run("empty query (Grafana's '-- ping')", t_empty_query)
        checks.run("several statements in one simple query", t_multi_statement)
        checks.run("several DDL statements in one simple query", t_multi_statement_ddl)
        checks.run("create tables and an index", t_create_tables)
        checks.run("typed parameters (auto format), every type", t_params, "auto", 1)
        checks.run("typed parameters (binary), every type", t_params, "binary", 11)
        checks.run("typed parameters (text), every type", t_params, "text", 21)
        checks.run("result metadata (type oids, typmods)", t_result_metadata)
        checks.run("parameters in WHERE clauses", t_param_filters)
        checks.run("executemany and prepared statements", t_executemany_prepared)
        checks.run("UPDATE/DELETE RETURNING with parameters", t_update_delete_returning)
        checks.run("pipeline mode", t_pipeline)
        checks.run("transactions and savepoints", t_transactions)
        checks.run("errors and SQLSTATEs", t_errors)
        checks.run("TypeInfo.fetch", t_typeinfo)
        checks.run("server-side cursor", t_named_cursor)
        checks.run("scrollable server-side cursor", t_scrollable_cursor)
        checks.run("WITH HOLD server-side cursor in autocommit", t_withhold_cursor)
        checks.run("DECLARE / FETCH / MOVE / CLOSE in SQL", t_declare_fetch_sql)
        checks.run("COPY FROM STDIN with write_row, every type", t_copy_write_row)
        checks.run("COPY TO STDOUT, every type", t_copy_to_stdout)
        checks.run("COPY text format escapes both ways", t_copy_text_format)
        checks.run("COPY binary format both ways", t_copy_binary)
        checks.run("COPY CSV with options both ways", t_copy_csv)
        checks.run("COPY with a bad row leaves nothing", t_copy_bad_row)
        checks.run("COPY with a duplicate key leaves nothing", t_copy_duplicate_key)
        checks.run("COPY inside a rolled-back transaction", t_copy_in_transaction)
        checks.run("statement_timeout cancels with 57014", t_statement_timeout)
        checks.run("conn.cancel() from another thread", t_conn_cancel, "cancel")
        if hasattr(psycopg.Connection, "cancel_safe"):
            checks.run("conn.cancel_safe() from another thread", t_conn_cancel, "cancel_safe")
        checks.run("SET / SHOW / RESET", t_set_show_reset)
        checks.run("SHOW variants and SHOW ALL", t_show_variants)
        checks.run("SET LOCAL", t_set_local)
        checks.run("SET SESSION CHARACTERISTICS", t_session_isolation)
        checks.run("SET TIME ZONE and timestamptz output", t_timezone)
        checks.run("DISCARD ALL", t_discard_all)
        checks.run("PREPARE / EXECUTE / DEALLOCATE", t_prepare_deallocate)
        checks.run("set_config / current_setting", t_set_config)
        checks.run("SQLAlchemy-style version parsing", t_version_parse)
    finally:
        cleanup()
    checks.finish()


main()
