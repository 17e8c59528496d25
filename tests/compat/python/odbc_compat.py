#!/usr/bin/env python3
"""psqlODBC ("PostgreSQL Unicode" driver, through unixODBC) driven by pyodbc: connect, SQLTables,
SQLColumns, SQLPrimaryKeys, SQLStatistics, parameterised queries, fetch of every type,
transactions, errors, statement_timeout and SQLCancel.

    python3 tests/compat/python/odbc_compat.py HOST PORT

DSN-less: Driver={PostgreSQL Unicode};Server=HOST;Port=PORT;Database=kura;Uid=kura, the driver's
default options. Creates its own tables (compat_odbc_<pid>_*) and drops them. Every check must pass
against PostgreSQL 15 (tests/compat/run.sh with COMPAT_TARGET=host:port).
"""

import os
import re
import threading
import time
from datetime import date, datetime
from decimal import Decimal

import pyodbc

from compat_check import LONG_QUERY, Checks, check, eq, parse_args

HOST, PORT = parse_args("odbc_compat.py")
CONN_STR = (f"Driver={{PostgreSQL Unicode}};Server={HOST};Port={PORT};Database=kura;Uid=kura;"
            f"Pwd={{{os.environ.get('PGPASSWORD', '')}}};")
PREFIX = f"compat_odbc_{os.getpid()}"
T = f"{PREFIX}_types"
T2 = f"{PREFIX}_pk2"
V = f"{PREFIX}_view"
TB = f"{PREFIX}_big"

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
# What SQLColumns reports for each column with psqlODBC's default options (BoolsAsChar=1 makes
# boolean SQL_VARCHAR; text is SQL_WLONGVARCHAR; bytea SQL_LONGVARBINARY): (TYPE_NAME, DATA_TYPE).
SQLCOLUMNS = [("int4", 4), ("bool", 12), ("int2", 5), ("int4", 4), ("int8", -5), ("float4", 7),
              ("float8", 6), ("numeric", 2), ("varchar", -9), ("text", -10), ("bpchar", -8),
              ("bytea", -4), ("timestamp", 93), ("timestamptz", 93), ("date", 91)]
PY_TYPES = [int, str, int, int, int, float, float, Decimal, str, str, str, bytearray, datetime,
            datetime, date]


def values(id_):
    base = id_ % 10
    if base == 1:
        return [id_, True, 32767, 2147483647, 9223372036854775807, 1.25, 3.141592653589793,
                Decimal("123456789.125"), "héllo wörld 😀", "multi\nline 'quoted' \"x\" \\ ✓",
                "ab", bytes(range(256)), datetime(2024, 5, 1, 8, 0, 0, 123456),
                datetime(2024, 5, 1, 6, 0, 0, 500000), date(2024, 5, 1)]
    if base == 2:
        return [id_, False, -32768, -2147483648, -9223372036854775808, -0.5, -1e300,
                Decimal("-0.001"), "", "", "abcde", b"", datetime(1969, 12, 31, 23, 59, 59, 999999),
                datetime(1969, 12, 31, 23, 59, 59, 999999), date(1900, 1, 1)]
    return [id_] + [None] * 14


def fetched(v):
    """What psqlODBC hands back for a written value (BoolsAsChar: '1'/'0')."""
    if isinstance(v, bool):
        return "1" if v else "0"
    return v


def same_row(actual, expected, where):
    eq(len(actual), len(expected), f"{where}: column count")
    for name, a, e in zip(COLUMNS, actual, expected):
        e = fetched(e)
        if name == "c_char" and isinstance(a, str) and e is not None:
            a = a.rstrip(" ")  # Kura stores char(n) unpadded (docs/ARCHITECTURE.md)
        if isinstance(a, bytearray):
            a = bytes(a)
        if name == "c_numeric" and e is not None:
            eq(str(a), str(e), f"{where}: {name} (text, scale kept)")
        eq(a, e, f"{where}: {name}")


def connect(autocommit=True):
    cx = pyodbc.connect(CONN_STR, autocommit=autocommit, timeout=10)
    cx.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
    cx.setencoding(encoding="utf-8")
    cur = cx.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    if not autocommit:
        cx.commit()
    return cx


checks = Checks("odbc")
conn = None


def c():
    global conn
    if conn is None:
        conn = connect()
    return conn


def sqlstate(e):
    return e.args[0] if e.args else None


def t_connect():
    global conn
    conn = connect()
    eq(conn.cursor().execute("SELECT 1").fetchone()[0], 1, "SELECT 1")


def t_getinfo():
    cx = c()
    eq(cx.getinfo(pyodbc.SQL_DBMS_NAME), "PostgreSQL", "SQL_DBMS_NAME")
    ver = cx.getinfo(pyodbc.SQL_DBMS_VER)
    m = re.match(r"(\d+)\.(\d+)", ver)
    check(m is not None, f"SQL_DBMS_VER not numeric: {ver!r}")
    num = int(cx.cursor().execute("SHOW server_version_num").fetchone()[0])
    eq(int(m.group(1)), num // 10000, "major version in SQL_DBMS_VER")
    eq(cx.getinfo(pyodbc.SQL_DATABASE_NAME), "kura", "SQL_DATABASE_NAME")
    eq(cx.getinfo(pyodbc.SQL_USER_NAME), "kura", "SQL_USER_NAME")


def t_create():
    cur = c().cursor()
    cur.execute(f"DROP VIEW IF EXISTS {V}")
    for t in (T, T2, TB):
        cur.execute(f"DROP TABLE IF EXISTS {t}")
    cur.execute(f"CREATE TABLE {T} {TYPES_DDL}")
    cur.execute(f"CREATE INDEX {T}_int8_idx ON {T} (c_int8)")
    cur.execute(f"CREATE TABLE {T2} (a integer NOT NULL, b varchar(10) NOT NULL, v text, "
                f"PRIMARY KEY (a, b))")
    cur.execute(f"CREATE TABLE {TB} (id integer PRIMARY KEY, label text NOT NULL)")
    cur.execute(f"CREATE VIEW {V} AS SELECT id, c_text FROM {T}")


def t_sqltables():
    cur = c().cursor()
    rows = cur.tables(table=T).fetchall()
    eq([(r.table_schem, r.table_name, r.table_type) for r in rows], [("public", T, "TABLE")],
       "SQLTables(table)")
    eq(rows[0].table_cat, "kura", "TABLE_CAT")
    rows = cur.tables(table=V).fetchall()
    eq([(r.table_schem, r.table_name, r.table_type) for r in rows], [("public", V, "VIEW")],
       "SQLTables(view)")
    rows = cur.tables(schema="public", tableType="TABLE").fetchall()
    names = [r.table_name for r in rows]
    check(T in names and T2 in names, f"SQLTables(TABLE) lacks {T}/{T2}: {names}")
    check(V not in names, "SQLTables(TABLE) lists the view")
    rows = cur.tables(table=f"{PREFIX}%").fetchall()
    eq(sorted(r.table_name for r in rows), sorted([T, T2, TB, V]), "SQLTables(pattern)")


def t_sqlcolumns():
    cur = c().cursor()
    rows = cur.columns(table=T).fetchall()
    eq([r.column_name for r in rows], COLUMNS, "COLUMN_NAME in order")
    eq([(r.type_name, r.data_type) for r in rows], SQLCOLUMNS, "TYPE_NAME / DATA_TYPE")
    eq([r.ordinal_position for r in rows], list(range(1, 16)), "ORDINAL_POSITION")
    eq([r.nullable for r in rows], [0] + [1] * 14, "NULLABLE")
    by = {r.column_name: r for r in rows}
    eq((by["c_numeric"].column_size, by["c_numeric"].decimal_digits), (12, 3), "numeric(12,3)")
    eq(by["c_varchar"].column_size, 20, "varchar(20) COLUMN_SIZE")
    eq(by["c_char"].column_size, 5, "char(5) COLUMN_SIZE")
    eq(by["c_int8"].column_size, 19, "bigint COLUMN_SIZE")
    eq(by["c_ts"].decimal_digits, 6, "timestamp precision")
    eq(rows[0].table_schem, "public", "TABLE_SCHEM")
    eq(rows[0].table_name, T, "TABLE_NAME")


def t_sqlprimarykeys():
    cur = c().cursor()
    rows = cur.primaryKeys(T2).fetchall()
    eq([(r.column_name, r.key_seq) for r in rows], [("a", 1), ("b", 2)], "composite key")
    eq({r.pk_name for r in rows}, {f"{T2}_pkey"}, "PK_NAME")
    rows = cur.primaryKeys(T).fetchall()
    eq([(r.column_name, r.key_seq, r.pk_name) for r in rows], [("id", 1, f"{T}_pkey")],
       "single-column key")


def t_sqlstatistics():
    cur = c().cursor()
    rows = [r for r in cur.statistics(T).fetchall() if r.index_name]
    got = sorted((r.index_name, r.column_name, r.non_unique, r.ordinal_position) for r in rows)
    eq(got, sorted([(f"{T}_pkey", "id", 0, 1), (f"{T}_int8_idx", "c_int8", 1, 1)]),
       "indexes of the table")
    rows = [r for r in cur.statistics(T2).fetchall() if r.index_name]
    eq(sorted((r.column_name, r.ordinal_position) for r in rows), [("a", 1), ("b", 2)],
       "composite key index columns")


def t_insert_params():
    cur = c().cursor()
    ph = ", ".join("?" * len(COLUMNS))
    for i in (1, 2, 3):
        cur.execute(f"INSERT INTO {T} VALUES ({ph})", *values(i))
        eq(cur.rowcount, 1, f"rowcount of INSERT {i}")


def t_fetch_every_type():
    cur = c().cursor()
    for i in (1, 2, 3):
        row = cur.execute(f"SELECT * FROM {T} WHERE id = ?", i).fetchone()
        check(row is not None, f"row {i} missing")
        same_row(list(row), values(i), f"row {i}")
    rows = cur.execute(f"SELECT * FROM {T} ORDER BY id").fetchall()
    eq([r[0] for r in rows], [1, 2, 3], "ids in order")


def t_description():
    cur = c().cursor()
    cur.execute(f"SELECT * FROM {T} WHERE id = 1")
    desc = cur.description
    eq([d[0] for d in desc], COLUMNS, "column names")
    eq([d[1] for d in desc], PY_TYPES, "Python types")
    by = {d[0]: d for d in desc}
    eq((by["c_numeric"][4], by["c_numeric"][5]), (12, 3), "numeric precision/scale")
    eq(by["c_varchar"][4], 20, "varchar(20) size")
    eq(by["id"][6], False, "id is not nullable")
    eq(by["c_text"][6], True, "c_text is nullable")


def t_param_filters():
    cur = c().cursor()
    q = f"SELECT id FROM {T} WHERE "
    eq([r[0] for r in cur.execute(q + "c_int8 = ?", 9223372036854775807).fetchall()], [1], "bigint")
    eq([r[0] for r in cur.execute(q + "c_text = ? AND c_int4 < ?", "", 0).fetchall()], [2], "text+int")
    eq([r[0] for r in cur.execute(q + "c_ts < ?", datetime(1970, 1, 1)).fetchall()], [2], "timestamp")
    eq([r[0] for r in cur.execute(q + "c_numeric = ?", Decimal("123456789.125")).fetchall()], [1],
       "numeric")
    eq([r[0] for r in cur.execute(q + "c_date = ?", date(2024, 5, 1)).fetchall()], [1], "date")
    eq([r[0] for r in cur.execute(q + "c_varchar LIKE ?", "h%").fetchall()], [1], "LIKE")
    eq([r[0] for r in cur.execute(q + "c_bytea = ?", bytes(range(256))).fetchall()], [1], "bytea")
    eq(cur.execute("SELECT ? + 1, ?", 41, None).fetchone()[0], 42, "expression parameter")


def t_executemany_fetchmany():
    cur = c().cursor()
    cur.executemany(f"INSERT INTO {TB} (id, label) VALUES (?, ?)",
                    [(i, f"row {i}") for i in range(1, 301)])
    eq(cur.execute(f"SELECT count(*) FROM {TB}").fetchone()[0], 300, "count after executemany")
    cur.execute(f"SELECT id, label FROM {TB} ORDER BY id")
    got = []
    while True:
        chunk = cur.fetchmany(64)
        if not chunk:
            break
        got.extend(tuple(r) for r in chunk)
    eq(got, [(i, f"row {i}") for i in range(1, 301)], "rows by fetchmany")
    cur.execute(f"UPDATE {TB} SET label = label || '!' WHERE id <= ?", 10)
    eq(cur.rowcount, 10, "UPDATE rowcount")
    cur.execute(f"DELETE FROM {TB} WHERE id > ?", 290)
    eq(cur.rowcount, 10, "DELETE rowcount")


def t_transactions():
    cx = connect(autocommit=False)
    cur = cx.cursor()
    cur.execute(f"INSERT INTO {T2} VALUES (?, ?, ?)", 1, "x", "rolled back")
    cx.rollback()
    eq(cur.execute(f"SELECT count(*) FROM {T2}").fetchone()[0], 0, "after rollback")
    cur.execute(f"INSERT INTO {T2} VALUES (?, ?, ?)", 2, "y", "committed")
    cx.commit()
    cx.close()
    eq(c().cursor().execute(f"SELECT v FROM {T2} WHERE a = 2").fetchone()[0], "committed",
       "seen from another connection")


def t_errors():
    cur = c().cursor()
    try:
        cur.execute(f"INSERT INTO {TB} (id, label) VALUES (1, 'dup')")
        raise AssertionError("duplicate key accepted")
    except pyodbc.IntegrityError as e:
        eq(sqlstate(e), "23505", "SQLSTATE")
    try:
        cur.execute("SELECT * FROM compat_no_such_table")
        raise AssertionError("unknown table accepted")
    except pyodbc.Error as e:
        eq(sqlstate(e), "42P01", "SQLSTATE")
    eq(c().cursor().execute("SELECT 5").fetchone()[0], 5, "usable after errors")


def t_statement_timeout():
    cx = connect()
    cur = cx.cursor()
    cur.execute("SET statement_timeout = 500")
    start = time.monotonic()
    try:
        cur.execute(LONG_QUERY).fetchall()
        raise AssertionError(f"the query completed after {time.monotonic() - start:.1f}s")
    except pyodbc.Error as e:
        eq(sqlstate(e), "57014", f"SQLSTATE ({e})")
    check(time.monotonic() - start < 8, "cancelled too late")
    eq(cur.execute("SELECT 6").fetchone()[0], 6, "usable after the timeout")
    cx.close()


def t_sqlcancel():
    cx = connect()
    cur = cx.cursor()
    outcome = {}

    def work():
        start = time.monotonic()
        try:
            cur.execute(LONG_QUERY).fetchall()
            outcome["result"] = f"completed after {time.monotonic() - start:.1f}s"
        except Exception as e:  # noqa: BLE001
            outcome["error"] = e

    th = threading.Thread(target=work, daemon=True)
    th.start()
    time.sleep(1.0)
    check(th.is_alive(), f"the long query ended before the cancel: {outcome}")
    cur.cancel()
    th.join(15)
    check(not th.is_alive(), "the query was still running 15s after SQLCancel")
    check("error" in outcome, f"the query was not cancelled: {outcome.get('result')}")
    eq(sqlstate(outcome["error"]), "57014", f"SQLSTATE ({outcome['error']})")
    eq(cx.cursor().execute("SELECT 7").fetchone()[0], 7, "usable after SQLCancel")
    cx.close()


def cleanup():
    try:
        cur = connect().cursor()
        for stmt in (f"DROP VIEW IF EXISTS {V}", f"DROP TABLE IF EXISTS {T}",
                     f"DROP TABLE IF EXISTS {T2}", f"DROP TABLE IF EXISTS {TB}"):
            try:
                cur.execute(stmt)
            except pyodbc.Error:
                pass
    except pyodbc.Error:
        pass


def main():
    checks.run("connect (DSN-less, PostgreSQL Unicode)", t_connect)
    try:
        checks.run("SQLGetInfo DBMS name, version, database, user", t_getinfo)
        checks.run("create tables, index and view", t_create)
        checks.run("SQLTables", t_sqltables)
        checks.run("SQLColumns", t_sqlcolumns)
        checks.run("SQLPrimaryKeys", t_sqlprimarykeys)
        checks.run("SQLStatistics", t_sqlstatistics)
        checks.run("parameterised INSERT, every type", t_insert_params)
        checks.run("fetch of every type", t_fetch_every_type)
        checks.run("result-set description", t_description)
        checks.run("parameters in WHERE clauses", t_param_filters)
        checks.run("executemany, fetchmany, UPDATE/DELETE rowcount", t_executemany_fetchmany)
        checks.run("manual-commit transactions", t_transactions)
        checks.run("errors and SQLSTATEs", t_errors)
        checks.run("statement_timeout cancels with 57014", t_statement_timeout)
        checks.run("SQLCancel from another thread", t_sqlcancel)
    finally:
        cleanup()
    checks.finish()


main()
