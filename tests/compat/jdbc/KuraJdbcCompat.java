// pgjdbc 42.x against a PostgreSQL-protocol server: connect, PreparedStatement with every supported
// type (setTimestamp with and without Calendar, java.time objects, setNull, batches), server-prepared
// and binary transfer, fetch size (portal suspension), DatabaseMetaData, ResultSetMetaData,
// transactions, errors, CopyManager, Statement.cancel / setQueryTimeout / statement_timeout.
//
//   java -cp /usr/share/java/postgresql.jar tests/compat/jdbc/KuraJdbcCompat.java HOST PORT
//
// Connects as user kura (password from PGPASSWORD) to database kura. Creates its own tables (compat_jdbc_<pid>_*) and drops
// them. Prints "ok   name" or "FAIL name: reason" per check, then "jdbc: N passed, N failed", and
// exits 1 if anything failed. Every check must pass against PostgreSQL 15
// (tests/compat/run.sh with COMPAT_TARGET=host:port).

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Calendar;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TimeZone;
import java.util.concurrent.atomic.AtomicReference;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class KuraJdbcCompat {
    static String host;
    static int port;
    static int passed = 0;
    static int failed = 0;
    static final String PREFIX = "compat_jdbc_" + ProcessHandle.current().pid();
    static final String T = PREFIX + "_types";
    static final String T2 = PREFIX + "_pk2";
    static final String TB = PREFIX + "_big";
    static final String V = PREFIX + "_view";
    // The same long, promptly cancellable query as python/compat_check.py (tests/compat/README.md).
    static final int LONG_ROWS = Integer.parseInt(System.getenv().getOrDefault("COMPAT_LONG_QUERY_ROWS", "2000000"));
    static final String LONG_QUERY = "SELECT count(*) FROM generate_series(1, 1000) AS a, "
            + "generate_series(1, " + LONG_ROWS + ") AS b";

    static final String[] COLUMNS = {"id", "c_bool", "c_int2", "c_int4", "c_int8", "c_float4",
        "c_float8", "c_numeric", "c_varchar", "c_text", "c_char", "c_bytea", "c_ts", "c_tstz", "c_date"};
    static final String TYPES_DDL = "(id integer PRIMARY KEY, c_bool boolean, c_int2 smallint, "
            + "c_int4 integer, c_int8 bigint, c_float4 real, c_float8 double precision, "
            + "c_numeric numeric(12,3), c_varchar varchar(20), c_text text, c_char char(5), "
            + "c_bytea bytea, c_ts timestamp, c_tstz timestamptz, c_date date)";
    static final String[] TYPE_NAMES = {"int4", "bool", "int2", "int4", "int8", "float4", "float8",
        "numeric", "varchar", "text", "bpchar", "bytea", "timestamp", "timestamptz", "date"};
    static final int[] SQL_TYPES = {Types.INTEGER, Types.BIT, Types.SMALLINT, Types.INTEGER,
        Types.BIGINT, Types.REAL, Types.DOUBLE, Types.NUMERIC, Types.VARCHAR, Types.VARCHAR,
        Types.CHAR, Types.BINARY, Types.TIMESTAMP, Types.TIMESTAMP, Types.DATE};
    static final String[] CLASS_NAMES = {"java.lang.Integer", "java.lang.Boolean",
        "java.lang.Integer", "java.lang.Integer", "java.lang.Long", "java.lang.Float",
        "java.lang.Double", "java.math.BigDecimal", "java.lang.String", "java.lang.String",
        "java.lang.String", "[B", "java.sql.Timestamp", "java.sql.Timestamp", "java.sql.Date"};

    static final byte[] ALL_BYTES = new byte[256];
    static {
        for (int i = 0; i < 256; i++) ALL_BYTES[i] = (byte) i;
    }
    static final String TEXT1 = "multi\nline 'quoted' \"x\" \\ \u2713\ttab";
    // The JVM runs in a zone that is not UTC, so that "with" and "without Calendar" differ.
    static final TimeZone JVM_ZONE = TimeZone.getTimeZone("America/New_York");
    static final Calendar UTC = Calendar.getInstance(TimeZone.getTimeZone("UTC"));
    // 2024-05-01 08:00:00.123456 wall time in the JVM zone (= 12:00:00.123456Z).
    static Timestamp TS1;
    // 2024-05-01T06:00:00.5Z
    static final Timestamp TSTZ1 = Timestamp.from(java.time.Instant.parse("2024-05-01T06:00:00.500Z"));
    static Timestamp TS2;
    static final Timestamp TSTZ2 = Timestamp.from(java.time.Instant.parse("1969-12-31T23:59:59.999999Z"));

    interface Body {
        void run() throws Exception;
    }

    static void check(String name, Body body) {
        long start = System.nanoTime();
        try {
            body.run();
            passed++;
            double s = (System.nanoTime() - start) / 1e9;
            System.out.println("ok   " + name + (s >= 2 ? String.format(" (%.1fs)", s) : ""));
        } catch (Throwable t) {
            failed++;
            String msg = t.getClass().getSimpleName() + ": " + t.getMessage();
            if (t instanceof SQLException) msg += " [SQLSTATE " + ((SQLException) t).getSQLState() + "]";
            msg = msg.replace("\n", " | ");
            if (msg.length() > 400) msg = msg.substring(0, 400) + "...";
            System.out.println("FAIL " + name + ": " + msg);
            if ("1".equals(System.getenv("COMPAT_VERBOSE"))) t.printStackTrace(System.out);
        }
        System.out.flush();
    }

    static void eq(Object actual, Object expected, String what) {
        boolean same = (actual instanceof byte[] && expected instanceof byte[])
                ? Arrays.equals((byte[]) actual, (byte[]) expected)
                : (actual == null ? expected == null : actual.equals(expected));
        if (!same) {
            throw new AssertionError(what + ": expected " + show(expected) + ", got " + show(actual));
        }
    }

    static String show(Object o) {
        if (o instanceof byte[]) return "byte[" + ((byte[]) o).length + "]";
        if (o instanceof String) return "\"" + o + "\"";
        if (o instanceof int[]) return Arrays.toString((int[]) o);
        return String.valueOf(o);
    }

    static void truth(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static Connection connect(String extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "kura");
        p.setProperty("password", System.getenv().getOrDefault("PGPASSWORD", ""));
        p.setProperty("connectTimeout", "10");
        String url = "jdbc:postgresql://" + host + ":" + port + "/kura" + (extra.isEmpty() ? "" : "?" + extra);
        return DriverManager.getConnection(url, p);
    }

    static Connection shared;

    static Connection c() throws SQLException {
        if (shared == null || shared.isClosed() || !shared.getAutoCommit()) {
            shared = connect("");
        }
        return shared;
    }

    static void exec(Connection conn, String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute(sql);
        }
    }

    static Object scalar(Connection conn, String sql) throws SQLException {
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            truth(rs.next(), "no row for " + sql);
            return rs.getObject(1);
        }
    }

    static long num(Object o) {
        truth(o instanceof Number, "not a number: " + o);
        return ((Number) o).longValue();
    }

    static SQLException expectError(Connection conn, String sql, String state) {
        try (Statement st = conn.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            eq(e.getSQLState(), state, "SQLSTATE of " + sql);
            return e;
        }
        throw new AssertionError("no error for " + sql);
    }

    // ------------------------------------------------------------------ writing and reading rows

    /** Row 1 (values), 2 (extremes), 3 (NULLs) with the plain setters. */
    static void setRow(PreparedStatement ps, int id) throws SQLException {
        int kind = id % 10;
        ps.setInt(1, id);
        if (kind == 1) {
            ps.setBoolean(2, true);
            ps.setShort(3, (short) 32767);
            ps.setInt(4, Integer.MAX_VALUE);
            ps.setLong(5, Long.MAX_VALUE);
            ps.setFloat(6, 1.25f);
            ps.setDouble(7, Math.PI);
            ps.setBigDecimal(8, new BigDecimal("123456789.125"));
            ps.setString(9, "h\u00e9llo w\u00f6rld");
            ps.setString(10, TEXT1);
            ps.setString(11, "ab");
            ps.setBytes(12, ALL_BYTES);
            ps.setTimestamp(13, TS1);
            ps.setTimestamp(14, TSTZ1);
            ps.setDate(15, Date.valueOf("2024-05-01"));
        } else if (kind == 2) {
            ps.setBoolean(2, false);
            ps.setShort(3, (short) -32768);
            ps.setInt(4, Integer.MIN_VALUE);
            ps.setLong(5, Long.MIN_VALUE);
            ps.setFloat(6, -0.5f);
            ps.setDouble(7, -1e300);
            ps.setBigDecimal(8, new BigDecimal("-0.001"));
            ps.setString(9, "");
            ps.setString(10, "");
            ps.setString(11, "abcde");
            ps.setBytes(12, new byte[0]);
            ps.setTimestamp(13, TS2);
            ps.setTimestamp(14, TSTZ2);
            ps.setDate(15, Date.valueOf("1900-01-01"));
        } else {
            int[] types = {Types.BOOLEAN, Types.SMALLINT, Types.INTEGER, Types.BIGINT, Types.REAL,
                Types.DOUBLE, Types.NUMERIC, Types.VARCHAR, Types.VARCHAR, Types.CHAR, Types.BINARY,
                Types.TIMESTAMP, Types.TIMESTAMP_WITH_TIMEZONE, Types.DATE};
            for (int i = 0; i < types.length; i++) ps.setNull(i + 2, types[i]);
        }
    }

    static void checkRow(ResultSet rs, int id, String where) throws SQLException {
        int kind = id % 10;
        eq(rs.getInt(1), id, where + " id");
        if (kind == 1) {
            eq(rs.getBoolean(2), true, where + " c_bool");
            eq(rs.getShort(3), (short) 32767, where + " c_int2");
            eq(rs.getInt(4), Integer.MAX_VALUE, where + " c_int4");
            eq(rs.getLong(5), Long.MAX_VALUE, where + " c_int8");
            eq(rs.getFloat(6), 1.25f, where + " c_float4");
            eq(rs.getDouble(7), Math.PI, where + " c_float8");
            eq(rs.getBigDecimal(8), new BigDecimal("123456789.125"), where + " c_numeric");
            eq(rs.getString(9), "h\u00e9llo w\u00f6rld", where + " c_varchar");
            eq(rs.getString(10), TEXT1, where + " c_text");
            eq(stripRight(rs.getString(11)), "ab", where + " c_char");
            eq(rs.getBytes(12), ALL_BYTES, where + " c_bytea");
            eq(rs.getTimestamp(13), TS1, where + " c_ts");
            eq(rs.getTimestamp(14).getTime(), TSTZ1.getTime(), where + " c_tstz instant");
            eq(rs.getTimestamp(14).getNanos(), TSTZ1.getNanos(), where + " c_tstz nanos");
            eq(rs.getDate(15), Date.valueOf("2024-05-01"), where + " c_date");
        } else if (kind == 2) {
            eq(rs.getBoolean(2), false, where + " c_bool");
            eq(rs.getShort(3), (short) -32768, where + " c_int2");
            eq(rs.getInt(4), Integer.MIN_VALUE, where + " c_int4");
            eq(rs.getLong(5), Long.MIN_VALUE, where + " c_int8");
            eq(rs.getFloat(6), -0.5f, where + " c_float4");
            eq(rs.getDouble(7), -1e300, where + " c_float8");
            eq(rs.getBigDecimal(8), new BigDecimal("-0.001"), where + " c_numeric");
            eq(rs.getString(9), "", where + " c_varchar");
            eq(rs.getString(10), "", where + " c_text");
            eq(rs.getString(11), "abcde", where + " c_char");
            eq(rs.getBytes(12), new byte[0], where + " c_bytea");
            eq(rs.getTimestamp(13), TS2, where + " c_ts");
            eq(rs.getTimestamp(14), TSTZ2, where + " c_tstz");
            eq(rs.getDate(15), Date.valueOf("1900-01-01"), where + " c_date");
        } else {
            for (int i = 2; i <= 15; i++) {
                eq(rs.getObject(i), null, where + " " + COLUMNS[i - 1] + " getObject");
                eq(rs.wasNull(), true, where + " " + COLUMNS[i - 1] + " wasNull");
            }
            eq(rs.getInt(4), 0, where + " getInt of NULL");
            eq(rs.wasNull(), true, where + " wasNull after getInt");
        }
        if (kind == 1) {
            for (int i = 1; i <= 15; i++) {
                Object o = rs.getObject(i);
                String cls = o instanceof byte[] ? "[B" : o.getClass().getName();
                eq(cls, CLASS_NAMES[i - 1], where + " getObject class of " + COLUMNS[i - 1]);
            }
        }
    }

    static String stripRight(String s) {
        // Kura stores char(n) unpadded (docs/ARCHITECTURE.md); PostgreSQL pads with blanks.
        return s == null ? null : s.replaceAll(" +$", "");
    }

    static String placeholders(int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) sb.append(i == 0 ? "?" : ", ?");
        return sb.toString();
    }

    static void insertRows(Connection conn, int first) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO " + T + " VALUES (" + placeholders(15) + ")")) {
            for (int i = 0; i < 3; i++) {
                setRow(ps, first + i);
                eq(ps.executeUpdate(), 1, "update count of row " + (first + i));
            }
        }
    }

    static void readRows(Connection conn, int first, int repeat, String label) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement("SELECT * FROM " + T + " WHERE id = ?")) {
            for (int r = 0; r < repeat; r++) {
                for (int i = 0; i < 3; i++) {
                    ps.setInt(1, first + i);
                    try (ResultSet rs = ps.executeQuery()) {
                        truth(rs.next(), "row " + (first + i) + " missing");
                        checkRow(rs, first + i, label + " #" + (r + 1) + " row " + (first + i));
                        truth(!rs.next(), "more than one row");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ the checks

    static void createTables() throws SQLException {
        Connection conn = c();
        exec(conn, "DROP VIEW IF EXISTS " + V);
        for (String t : new String[] {T, T2, TB}) exec(conn, "DROP TABLE IF EXISTS " + t);
        exec(conn, "CREATE TABLE " + T + " " + TYPES_DDL);
        exec(conn, "CREATE INDEX " + T + "_int8_idx ON " + T + " (c_int8)");
        exec(conn, "CREATE TABLE " + T2 + " (a integer NOT NULL, b varchar(10) NOT NULL, "
                + "v text DEFAULT 'none', PRIMARY KEY (a, b))");
        exec(conn, "CREATE TABLE " + TB + " (id integer PRIMARY KEY, label text NOT NULL)");
        exec(conn, "CREATE VIEW " + V + " AS SELECT id, c_text FROM " + T);
    }

    static void calendarChecks() throws SQLException {
        Connection conn = c();
        Timestamp t = TS1; // 08:00:00.123456 in the JVM zone = 12:00:00.123456Z
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO " + T + " (id, c_ts, c_tstz) VALUES (?, ?, ?)")) {
            ps.setInt(1, 101);
            ps.setTimestamp(2, t);
            ps.setTimestamp(3, t);
            ps.executeUpdate();
            ps.setInt(1, 102);
            ps.setTimestamp(2, t, UTC);
            ps.setTimestamp(3, t, UTC);
            ps.executeUpdate();
        }
        String q = "SELECT c_ts = ?::timestamp, c_tstz = ?::timestamptz, c_ts, c_tstz FROM " + T + " WHERE id = ?";
        try (PreparedStatement ps = conn.prepareStatement(q)) {
            ps.setString(1, "2024-05-01 08:00:00.123456");
            ps.setString(2, "2024-05-01 12:00:00.123456+00");
            ps.setInt(3, 101);
            try (ResultSet rs = ps.executeQuery()) {
                truth(rs.next(), "row 101 missing");
                eq(rs.getBoolean(1), true, "without Calendar: timestamp stores the JVM-zone wall time");
                eq(rs.getBoolean(2), true, "without Calendar: timestamptz stores the instant");
                eq(rs.getTimestamp(3), t, "getTimestamp(timestamp) without Calendar");
                eq(rs.getTimestamp(4).getTime(), t.getTime(), "getTimestamp(timestamptz) instant");
                eq(rs.getTimestamp(3, UTC), Timestamp.valueOf("2024-05-01 04:00:00.123456"),
                        "getTimestamp(timestamp, UTC) reads the wall time as UTC");
            }
            ps.setString(1, "2024-05-01 12:00:00.123456");
            ps.setString(2, "2024-05-01 12:00:00.123456+00");
            ps.setInt(3, 102);
            try (ResultSet rs = ps.executeQuery()) {
                truth(rs.next(), "row 102 missing");
                eq(rs.getBoolean(1), true, "with Calendar UTC: timestamp stores the UTC wall time");
                eq(rs.getBoolean(2), true, "with Calendar UTC: timestamptz stores the instant");
                eq(rs.getTimestamp(3, UTC), t, "getTimestamp(timestamp, UTC) round trip");
                eq(rs.getTimestamp(4, UTC).getTime(), t.getTime(), "getTimestamp(timestamptz, UTC)");
            }
        }
        exec(conn, "DELETE FROM " + T + " WHERE id IN (101, 102)");
    }

    static void javaTimeChecks() throws SQLException {
        Connection conn = c();
        LocalDateTime ldt = LocalDateTime.of(2024, 2, 29, 23, 59, 58, 654321000);
        OffsetDateTime odt = OffsetDateTime.of(2024, 2, 29, 23, 59, 58, 654321000, ZoneOffset.ofHours(5));
        LocalDate ld = LocalDate.of(2024, 2, 29);
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO " + T + " (id, c_ts, c_tstz, c_date) VALUES (?, ?, ?, ?)")) {
            ps.setInt(1, 103);
            ps.setObject(2, ldt);
            ps.setObject(3, odt);
            ps.setObject(4, ld);
            ps.executeUpdate();
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT c_ts, c_tstz, c_date, c_tstz = '2024-02-29 18:59:58.654321+00'::timestamptz FROM " + T
                        + " WHERE id = ?")) {
            ps.setInt(1, 103);
            try (ResultSet rs = ps.executeQuery()) {
                truth(rs.next(), "row 103 missing");
                eq(rs.getObject(1, LocalDateTime.class), ldt, "LocalDateTime");
                eq(rs.getObject(2, OffsetDateTime.class).toInstant(), odt.toInstant(), "OffsetDateTime instant");
                eq(rs.getObject(3, LocalDate.class), ld, "LocalDate");
                eq(rs.getBoolean(4), true, "timestamptz stored as the right instant");
            }
        }
        exec(conn, "DELETE FROM " + T + " WHERE id = 103");
    }

    static void batchChecks() throws SQLException {
        Connection conn = c();
        try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + TB + " (id, label) VALUES (?, ?)")) {
            for (int i = 1; i <= 500; i++) {
                ps.setInt(1, i);
                ps.setString(2, "row " + i);
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            eq(counts.length, 500, "batch result length");
            for (int n : counts) truth(n == 1, "batch update count " + n + " (expected 1)");
        }
        eq(scalar(conn, "SELECT count(*) FROM " + TB), 500L, "rows after the batch");
        try (Statement st = conn.createStatement()) {
            st.addBatch("INSERT INTO " + TB + " (id, label) VALUES (501, 'row 501')");
            st.addBatch("INSERT INTO " + TB + " (id, label) VALUES (502, 'row 502'), (503, 'row 503')");
            st.addBatch("UPDATE " + TB + " SET label = label WHERE id > 500");
            st.addBatch("DELETE FROM " + TB + " WHERE id > 501");
            eq(Arrays.toString(st.executeBatch()), "[1, 2, 3, 2]", "Statement batch counts");
        }
        exec(conn, "DELETE FROM " + TB + " WHERE id > 500");
    }

    static void rewrittenBatch() throws SQLException {
        try (Connection conn = connect("reWriteBatchedInserts=true")) {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + TB + " (id, label) VALUES (?, ?)")) {
                for (int i = 1001; i <= 1500; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "row " + i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                eq(counts.length, 500, "batch result length");
            }
            eq(scalar(conn, "SELECT count(*) FROM " + TB + " WHERE id > 1000"), 500L, "rows after the rewritten batch");
            exec(conn, "DELETE FROM " + TB + " WHERE id > 1000");
        }
    }

    static void resultSetMetaData() throws SQLException {
        try (Statement st = c().createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM " + T + " WHERE id = 1")) {
            ResultSetMetaData md = rs.getMetaData();
            eq(md.getColumnCount(), 15, "column count");
            String[] names = new String[15];
            String[] typeNames = new String[15];
            int[] types = new int[15];
            String[] classes = new String[15];
            for (int i = 1; i <= 15; i++) {
                names[i - 1] = md.getColumnName(i);
                typeNames[i - 1] = md.getColumnTypeName(i);
                types[i - 1] = md.getColumnType(i);
                classes[i - 1] = md.getColumnClassName(i);
            }
            eq(Arrays.toString(names), Arrays.toString(COLUMNS), "getColumnName");
            eq(Arrays.toString(typeNames), Arrays.toString(TYPE_NAMES), "getColumnTypeName");
            eq(Arrays.toString(types), Arrays.toString(SQL_TYPES), "getColumnType");
            eq(Arrays.toString(classes), Arrays.toString(CLASS_NAMES), "getColumnClassName");
            eq(md.getPrecision(8), 12, "numeric precision");
            eq(md.getScale(8), 3, "numeric scale");
            eq(md.getPrecision(9), 20, "varchar(20) precision");
            eq(md.getPrecision(11), 5, "char(5) precision");
            eq(md.getColumnLabel(1), "id", "getColumnLabel");
            // These need the catalog: pgjdbc looks up the table oid and attnum of RowDescription.
            eq(md.getTableName(1), T, "getTableName");
            eq(((org.postgresql.PGResultSetMetaData) md).getBaseSchemaName(1), "public", "getBaseSchemaName");
            eq(md.isNullable(1), ResultSetMetaData.columnNoNulls, "isNullable(id)");
            eq(md.isNullable(2), ResultSetMetaData.columnNullable, "isNullable(c_bool)");
            eq(md.isAutoIncrement(1), false, "isAutoIncrement(id)");
        }
        try (Statement st = c().createStatement(); ResultSet rs = st.executeQuery("SELECT 1 AS one, 'x'::text AS two")) {
            ResultSetMetaData md = rs.getMetaData();
            eq(md.getColumnLabel(2), "two", "label of an expression");
            eq(md.getColumnType(1), Types.INTEGER, "type of literal 1");
            eq(md.isNullable(1), ResultSetMetaData.columnNullableUnknown, "isNullable of an expression");
        }
    }

    static Map<String, Object> rowMap(ResultSet rs) throws SQLException {
        Map<String, Object> m = new HashMap<>();
        ResultSetMetaData md = rs.getMetaData();
        for (int i = 1; i <= md.getColumnCount(); i++) m.put(md.getColumnLabel(i).toUpperCase(), rs.getObject(i));
        return m;
    }

    static List<Map<String, Object>> rows(ResultSet rs) throws SQLException {
        List<Map<String, Object>> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) out.add(rowMap(rs));
        }
        return out;
    }

    static void metaProduct() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        eq(md.getDatabaseProductName(), "PostgreSQL", "getDatabaseProductName");
        int num = Integer.parseInt(String.valueOf(scalar(c(), "SHOW server_version_num")));
        eq(md.getDatabaseMajorVersion(), num / 10000, "getDatabaseMajorVersion");
        truth(md.getDatabaseProductVersion().startsWith(String.valueOf(num / 10000)),
                "getDatabaseProductVersion " + md.getDatabaseProductVersion());
        eq(md.getUserName(), "kura", "getUserName");
        eq(c().getCatalog(), "kura", "Connection.getCatalog");
        eq(c().getSchema(), "public", "Connection.getSchema");
    }

    static void metaTables() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        List<Map<String, Object>> r = rows(md.getTables(null, "public", T, new String[] {"TABLE"}));
        eq(r.size(), 1, "getTables(table) rows");
        eq(r.get(0).get("TABLE_NAME"), T, "TABLE_NAME");
        eq(r.get(0).get("TABLE_SCHEM"), "public", "TABLE_SCHEM");
        eq(r.get(0).get("TABLE_TYPE"), "TABLE", "TABLE_TYPE");
        r = rows(md.getTables(null, "public", V, null));
        eq(r.size(), 1, "getTables(view) rows");
        eq(r.get(0).get("TABLE_TYPE"), "VIEW", "TABLE_TYPE of the view");
        r = rows(md.getTables(null, "public", PREFIX + "%", new String[] {"TABLE", "VIEW"}));
        List<String> names = new ArrayList<>();
        for (Map<String, Object> m : r) names.add((String) m.get("TABLE_NAME"));
        eq(names.toString(), Arrays.asList(TB, T2, T, V).toString(), "getTables(pattern) ordered by type, name");
        r = rows(md.getTables(null, "public", PREFIX + "%", new String[] {"VIEW"}));
        eq(r.size(), 1, "getTables(VIEW only) rows");
    }

    static void metaColumns() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        List<Map<String, Object>> r = rows(md.getColumns(null, "public", T, "%"));
        eq(r.size(), 15, "getColumns rows");
        for (int i = 0; i < 15; i++) {
            Map<String, Object> m = r.get(i);
            eq(m.get("COLUMN_NAME"), COLUMNS[i], "COLUMN_NAME " + (i + 1));
            eq(m.get("TYPE_NAME"), TYPE_NAMES[i], "TYPE_NAME of " + COLUMNS[i]);
            eq(((Number) m.get("DATA_TYPE")).intValue(), SQL_TYPES[i], "DATA_TYPE of " + COLUMNS[i]);
            eq(((Number) m.get("ORDINAL_POSITION")).intValue(), i + 1, "ORDINAL_POSITION of " + COLUMNS[i]);
            eq(((Number) m.get("NULLABLE")).intValue(), i == 0 ? DatabaseMetaData.columnNoNulls
                    : DatabaseMetaData.columnNullable, "NULLABLE of " + COLUMNS[i]);
            eq(m.get("IS_NULLABLE"), i == 0 ? "NO" : "YES", "IS_NULLABLE of " + COLUMNS[i]);
            eq(m.get("TABLE_NAME"), T, "TABLE_NAME");
        }
        eq(((Number) r.get(7).get("COLUMN_SIZE")).intValue(), 12, "numeric COLUMN_SIZE");
        eq(((Number) r.get(7).get("DECIMAL_DIGITS")).intValue(), 3, "numeric DECIMAL_DIGITS");
        eq(((Number) r.get(8).get("COLUMN_SIZE")).intValue(), 20, "varchar(20) COLUMN_SIZE");
        eq(((Number) r.get(10).get("COLUMN_SIZE")).intValue(), 5, "char(5) COLUMN_SIZE");
        eq(((Number) r.get(4).get("COLUMN_SIZE")).intValue(), 19, "bigint COLUMN_SIZE");
        eq(((Number) r.get(12).get("DECIMAL_DIGITS")).intValue(), 6, "timestamp DECIMAL_DIGITS");
        r = rows(md.getColumns(null, "public", T2, "v"));
        eq(r.size(), 1, "getColumns(column pattern) rows");
        String def = (String) r.get(0).get("COLUMN_DEF");
        truth(def != null && def.contains("'none'"), "COLUMN_DEF of v: " + def);
    }

    static void metaPrimaryKeys() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        List<Map<String, Object>> r = rows(md.getPrimaryKeys(null, "public", T2));
        eq(r.size(), 2, "getPrimaryKeys rows");
        eq(r.get(0).get("COLUMN_NAME") + "," + r.get(0).get("KEY_SEQ") + " "
                + r.get(1).get("COLUMN_NAME") + "," + r.get(1).get("KEY_SEQ"), "a,1 b,2", "key columns");
        eq(r.get(0).get("PK_NAME"), T2 + "_pkey", "PK_NAME");
        eq(r.get(0).get("TABLE_NAME"), T2, "TABLE_NAME");
        r = rows(md.getPrimaryKeys(null, "public", T));
        eq(r.size(), 1, "getPrimaryKeys rows of the types table");
        eq(r.get(0).get("COLUMN_NAME"), "id", "COLUMN_NAME");
    }

    static void metaIndexInfo() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        List<Map<String, Object>> r = rows(md.getIndexInfo(null, "public", T, false, true));
        List<String> got = new ArrayList<>();
        for (Map<String, Object> m : r) {
            if (m.get("INDEX_NAME") == null) continue; // a tableIndexStatistic row
            got.add(m.get("INDEX_NAME") + ":" + m.get("COLUMN_NAME") + ":" + m.get("NON_UNIQUE") + ":"
                    + m.get("ORDINAL_POSITION"));
        }
        got.sort(null);
        eq(got.toString(), Arrays.asList(T + "_int8_idx:c_int8:true:1", T + "_pkey:id:false:1").toString(),
                "getIndexInfo(all)");
        r = rows(md.getIndexInfo(null, "public", T, true, true));
        got.clear();
        for (Map<String, Object> m : r) if (m.get("INDEX_NAME") != null) got.add((String) m.get("INDEX_NAME"));
        eq(got.toString(), Arrays.asList(T + "_pkey").toString(), "getIndexInfo(unique)");
        r = rows(md.getIndexInfo(null, "public", T2, true, true));
        got.clear();
        for (Map<String, Object> m : r) if (m.get("INDEX_NAME") != null) got.add(m.get("COLUMN_NAME") + "@" + m.get("ORDINAL_POSITION"));
        eq(got.toString(), "[a@1, b@2]", "composite index columns");
    }

    static void metaSchemasCatalogs() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        List<String> schemas = new ArrayList<>();
        for (Map<String, Object> m : rows(md.getSchemas())) schemas.add((String) m.get("TABLE_SCHEM"));
        truth(schemas.contains("public"), "getSchemas lacks public: " + schemas);
        truth(schemas.contains("pg_catalog"), "getSchemas lacks pg_catalog: " + schemas);
        List<Map<String, Object>> r = rows(md.getSchemas(null, "publ%"));
        eq(r.size(), 1, "getSchemas(pattern) rows");
        List<String> catalogs = new ArrayList<>();
        for (Map<String, Object> m : rows(md.getCatalogs())) catalogs.add((String) m.get("TABLE_CAT"));
        truth(catalogs.contains("kura"), "getCatalogs lacks kura: " + catalogs);
    }

    static void metaTypeInfo() throws SQLException {
        DatabaseMetaData md = c().getMetaData();
        Map<String, Integer> types = new HashMap<>();
        for (Map<String, Object> m : rows(md.getTypeInfo())) {
            types.put((String) m.get("TYPE_NAME"), ((Number) m.get("DATA_TYPE")).intValue());
        }
        String[] names = {"bool", "int2", "int4", "int8", "float4", "float8", "numeric", "varchar",
            "text", "bpchar", "bytea", "timestamp", "timestamptz", "date"};
        int[] sql = {Types.BIT, Types.SMALLINT, Types.INTEGER, Types.BIGINT, Types.REAL, Types.DOUBLE,
            Types.NUMERIC, Types.VARCHAR, Types.VARCHAR, Types.CHAR, Types.BINARY, Types.TIMESTAMP,
            Types.TIMESTAMP, Types.DATE};
        for (int i = 0; i < names.length; i++) {
            eq(types.get(names[i]), sql[i], "getTypeInfo DATA_TYPE of " + names[i]);
        }
    }

    static void fetchSize() throws SQLException {
        try (Connection conn = connect("")) {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(37);
                try (ResultSet rs = st.executeQuery("SELECT id, label FROM " + TB + " ORDER BY id")) {
                    int n = 0;
                    while (rs.next()) {
                        n++;
                        eq(rs.getInt(1), n, "id at row " + n);
                        eq(rs.getString(2), "row " + n, "label at row " + n);
                    }
                    eq(n, 500, "rows fetched 37 at a time");
                }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT g FROM generate_series(1, ?) AS g")) {
                ps.setFetchSize(100);
                ps.setInt(1, 1000);
                long sum = 0;
                int n = 0;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        sum += rs.getLong(1);
                        n++;
                    }
                }
                eq(n, 1000, "generate_series rows");
                eq(sum, 500500L, "generate_series sum");
            }
            conn.commit();
        }
    }

    static void transactions() throws SQLException {
        try (Connection conn = connect("")) {
            conn.setAutoCommit(false);
            exec(conn, "INSERT INTO " + T2 + " (a, b) VALUES (1, 'x')");
            conn.rollback();
            eq(scalar(conn, "SELECT count(*) FROM " + T2), 0L, "after rollback");
            exec(conn, "INSERT INTO " + T2 + " (a, b) VALUES (2, 'y')");
            Savepoint sp = conn.setSavepoint();
            exec(conn, "INSERT INTO " + T2 + " (a, b) VALUES (3, 'z')");
            conn.rollback(sp);
            conn.commit();
            eq(scalar(conn, "SELECT count(*) FROM " + T2), 1L, "after savepoint rollback and commit");
            eq(scalar(conn, "SELECT v FROM " + T2 + " WHERE a = 2"), "none", "DEFAULT value");
            conn.setAutoCommit(true);
            conn.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
            eq(conn.getTransactionIsolation(), Connection.TRANSACTION_REPEATABLE_READ, "getTransactionIsolation");
            conn.setClientInfo("ApplicationName", "compat-jdbc-app");
            eq(scalar(conn, "SHOW application_name"), "compat-jdbc-app", "setClientInfo(ApplicationName)");
        }
    }

    static void errors() throws SQLException {
        Connection conn = c();
        expectError(conn, "INSERT INTO " + TB + " (id, label) VALUES (1, 'dup')", "23505");
        expectError(conn, "SELECT * FROM compat_no_such_table", "42P01");
        try (Connection tx = connect("")) {
            tx.setAutoCommit(false);
            expectError(tx, "SELECT 1/0", "22012");
            expectError(tx, "SELECT 1", "25P02");
            tx.rollback();
            eq(num(scalar(tx, "SELECT 1")), 1L, "usable after rollback");
        }
    }

    static void generatedKeys() throws SQLException {
        try (Statement st = c().createStatement()) {
            eq(st.executeUpdate("INSERT INTO " + TB + " (id, label) VALUES (9001, 'gk')", Statement.RETURN_GENERATED_KEYS), 1, "update count");
            try (ResultSet rs = st.getGeneratedKeys()) {
                truth(rs.next(), "no generated keys row");
                eq(rs.getInt("id"), 9001, "generated key id");
            }
        }
        try (PreparedStatement ps = c().prepareStatement("INSERT INTO " + TB + " (id, label) VALUES (?, ?)", new String[] {"id"})) {
            ps.setInt(1, 9002);
            ps.setString(2, "gk2");
            ps.executeUpdate();
            try (ResultSet rs = ps.getGeneratedKeys()) {
                truth(rs.next(), "no generated keys row");
                eq(rs.getInt(1), 9002, "generated key id");
            }
        }
        exec(c(), "DELETE FROM " + TB + " WHERE id > 9000");
    }

    static void copyManager() throws Exception {
        CopyManager cm = c().unwrap(PGConnection.class).getCopyAPI();
        long n = cm.copyIn("COPY " + TB + " (id, label) FROM STDIN", new StringReader("7001\tcopied a\n7002\tcopied\\tb\n"));
        eq(n, 2L, "copyIn row count");
        n = cm.copyIn("COPY " + TB + " (id, label) FROM STDIN WITH (FORMAT csv)", new StringReader("7003,\"c, d\"\n"));
        eq(n, 1L, "copyIn CSV row count");
        StringWriter w = new StringWriter();
        n = cm.copyOut("COPY (SELECT id, label FROM " + TB + " WHERE id > 7000 ORDER BY id) TO STDOUT", w);
        eq(n, 3L, "copyOut row count");
        eq(w.toString(), "7001\tcopied a\n7002\tcopied\\tb\n7003\tc, d\n", "copyOut text");
        exec(c(), "DELETE FROM " + TB + " WHERE id > 7000");
    }

    static void cancel(String how) throws Exception {
        try (Connection conn = connect("")) {
            cancelOn(conn, how);
        }
    }

    static void cancelOn(Connection conn, String how) throws Exception {
        Statement st = conn.createStatement();
        if (how.equals("setQueryTimeout")) st.setQueryTimeout(1);
        if (how.equals("statement_timeout")) exec(conn, "SET statement_timeout = 500");
        AtomicReference<Object> outcome = new AtomicReference<>();
        long start = System.nanoTime();
        Thread th = new Thread(() -> {
            try (ResultSet rs = st.executeQuery(LONG_QUERY)) {
                outcome.set(String.format("completed after %.1fs", (System.nanoTime() - start) / 1e9));
            } catch (SQLException e) {
                outcome.set(e);
            }
        });
        th.setDaemon(true);
        th.start();
        if (how.equals("Statement.cancel")) {
            Thread.sleep(1000);
            truth(th.isAlive(), "the long query ended before the cancel: " + outcome.get());
            st.cancel();
        }
        th.join(15000);
        truth(!th.isAlive(), "the query was still running 15s after the cancel");
        Object o = outcome.get();
        truth(o instanceof SQLException, "the query was not cancelled: " + o);
        eq(((SQLException) o).getSQLState(), "57014", "SQLSTATE (" + ((SQLException) o).getMessage() + ")");
        if (!how.equals("Statement.cancel")) {
            double s = (System.nanoTime() - start) / 1e9;
            truth(s < 8, "cancelled only after " + s + "s");
        }
        eq(num(scalar(conn, "SELECT 8")), 8L, "usable after the cancel");
    }

    static void cleanup() {
        try (Connection conn = connect("")) {
            for (String s : new String[] {"DROP VIEW IF EXISTS " + V, "DROP TABLE IF EXISTS " + T,
                "DROP TABLE IF EXISTS " + T2, "DROP TABLE IF EXISTS " + TB}) {
                try {
                    exec(conn, s);
                } catch (SQLException e) {
                    // reported by the checks already
                }
            }
        } catch (SQLException e) {
            // nothing to clean without a connection
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: KuraJdbcCompat HOST PORT");
            System.exit(2);
        }
        host = args[0];
        port = Integer.parseInt(args[1]);
        TimeZone.setDefault(JVM_ZONE);
        TS1 = Timestamp.valueOf("2024-05-01 08:00:00.123456");
        TS2 = Timestamp.valueOf("1969-12-31 23:59:59.999999");
        Class.forName("org.postgresql.Driver");
        try {
            check("connect", () -> eq(num(scalar(c(), "SELECT 1")), 1L, "SELECT 1"));
            check("DatabaseMetaData product, version, user", KuraJdbcCompat::metaProduct);
            check("create tables, index and view", KuraJdbcCompat::createTables);
            check("PreparedStatement every type (setX, setNull)", () -> {
                insertRows(c(), 1);
                readRows(c(), 1, 1, "read");
            });
            check("server-prepared statement reused (prepareThreshold)", () -> readRows(c(), 1, 7, "reuse"));
            check("binary transfer of every type (prepareThreshold=-1)", () -> {
                try (Connection conn = connect("prepareThreshold=-1")) {
                    insertRows(conn, 11);
                    readRows(conn, 11, 2, "binary");
                    readRows(conn, 1, 1, "binary");
                }
            });
            check("simple query protocol (preferQueryMode=simple)", () -> {
                // pgjdbc cannot inline setBytes in simple mode, so this reads the rows written
                // above; parameters are inlined as literals.
                try (Connection conn = connect("preferQueryMode=simple")) {
                    readRows(conn, 1, 1, "simple");
                    readRows(conn, 11, 1, "simple");
                }
            });
            check("setTimestamp with and without Calendar", KuraJdbcCompat::calendarChecks);
            check("java.time setObject / getObject", KuraJdbcCompat::javaTimeChecks);
            check("batches (PreparedStatement and Statement)", KuraJdbcCompat::batchChecks);
            check("batches with reWriteBatchedInserts", KuraJdbcCompat::rewrittenBatch);
            check("ResultSetMetaData", KuraJdbcCompat::resultSetMetaData);
            check("DatabaseMetaData.getTables", KuraJdbcCompat::metaTables);
            check("DatabaseMetaData.getColumns", KuraJdbcCompat::metaColumns);
            check("DatabaseMetaData.getPrimaryKeys", KuraJdbcCompat::metaPrimaryKeys);
            check("DatabaseMetaData.getIndexInfo", KuraJdbcCompat::metaIndexInfo);
            check("DatabaseMetaData.getSchemas / getCatalogs", KuraJdbcCompat::metaSchemasCatalogs);
            check("DatabaseMetaData.getTypeInfo", KuraJdbcCompat::metaTypeInfo);
            check("fetch size (portal suspension)", KuraJdbcCompat::fetchSize);
            check("transactions, savepoints, isolation, client info", KuraJdbcCompat::transactions);
            check("errors and SQLSTATEs", KuraJdbcCompat::errors);
            check("generated keys (RETURNING)", KuraJdbcCompat::generatedKeys);
            check("CopyManager copyIn / copyOut", KuraJdbcCompat::copyManager);
            check("Statement.cancel from another thread", () -> cancel("Statement.cancel"));
            check("Statement.setQueryTimeout", () -> cancel("setQueryTimeout"));
            check("statement_timeout cancels with 57014", () -> cancel("statement_timeout"));
        } finally {
            cleanup();
        }
        System.out.println("jdbc: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
