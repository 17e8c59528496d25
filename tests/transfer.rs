//! Export and import end to end through `kura export` / `kura import`: every column type,
//! hash, interval and interval-hash partitioning, a time-series table with partition expiry,
//! secondary indexes, defaults and views survive a round trip to another server in CSV and in
//! Parquet, definitions and rows alike; a bad row fails only its table, with its line number;
//! a damaged export is refused before anything changes; the misuse errors.

mod common;

use std::path::Path;

use common::replicas::{kura_client, kura_run, printed};
use common::{TestServer, exec, text_rows};

const SCHEMA: &[&str] = &[
    "CREATE TABLE every_type (id INTEGER PRIMARY KEY, b BOOL, y BYTE, sh SHORT, i INTEGER, \
     l LONG, f FLOAT, d DOUBLE, n NUMERIC(18,4), s STRING NOT NULL DEFAULT 'none', \
     vc VARCHAR(10), c CHAR(3), bl BLOB, ts0 TIMESTAMP(0), ts3 TIMESTAMP(3), \
     ts6 TIMESTAMP(6), ts9 TIMESTAMP(9), tz TIMESTAMPTZ, dt DATE, \"Mixed Case\" INTEGER)",
    "CREATE INDEX every_type_s ON every_type (s, \"Mixed Case\")",
    // Keywords as names must be quoted in the definitions to read back.
    "CREATE TABLE hashed (id LONG PRIMARY KEY, tag STRING, \"check\" BOOL DEFAULT true, \
     \"user\" STRING) PARTITION BY HASH (id) PARTITIONS 8",
    "CREATE INDEX \"select\" ON hashed (\"check\", \"user\")",
    "CREATE TABLE ranged (k INTEGER PRIMARY KEY, v STRING) PARTITION BY RANGE (k) EVERY (100)",
    "CREATE TABLE readings (ts TIMESTAMP(3) NOT NULL, dev INTEGER NOT NULL, v DOUBLE, \
     PRIMARY KEY (ts, dev)) PARTITION BY RANGE (ts) EVERY (6, HOUR) \
     SUBPARTITION BY HASH (dev) SUBPARTITIONS 4",
    "CREATE INDEX readings_v ON readings (v)",
    "CREATE TABLE \"Events\" (ts TIMESTAMP PRIMARY KEY, level STRING) USING TIMESERIES \
     WITH (expiration_type='PARTITION', expiration_time=3650, expiration_time_unit='DAY') \
     PARTITION BY RANGE (ts) EVERY (1, DAY)",
    // `busiest` sorts before the view it reads, so import must retry it.
    "CREATE VIEW busy (dev, n) AS SELECT dev, count(*) FROM readings GROUP BY dev",
    "CREATE VIEW busiest AS SELECT dev FROM busy WHERE n > 400",
];

const DATA: &[&str] = &[
    "INSERT INTO every_type VALUES \
     (1, true, -128, -32768, -2147483648, -9223372036854775808, 'NaN', 'Infinity', \
      '-99999999999999.9999', 'a,\"b\"\nsecond line\\x', 'ééééééééé😀', 'ab', '\\x00ff10', \
      '1969-12-31 23:59:59', '1969-12-31 23:59:59.999', '0001-01-01 00:00:00.000001', \
      '1969-12-31 23:59:59.999999999', '2024-06-30 12:00:00+02', '0001-01-01', 7), \
     (2, false, 127, 32767, 2147483647, 9223372036854775807, '-Infinity', -0.0, \
      '99999999999999.9999', '', '', '', '', '9999-12-31 23:59:59', '2262-04-11 23:47:16.854', \
      '9999-12-31 23:59:59.999999', '2262-04-11 23:47:16.854775807', '1970-01-01 00:00:00+00', \
      '9999-12-31', -1), \
     (3, NULL, NULL, NULL, NULL, NULL, 1.5e-7, 0.1, 0.0001, 'NULL', NULL, NULL, NULL, NULL, \
      NULL, NULL, NULL, NULL, NULL, NULL), \
     (4, NULL, NULL, NULL, NULL, NULL, 3.4028235e38, 1e300, NULL, '\\N', 'x', 'xyz', NULL, \
      NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "INSERT INTO every_type (id) VALUES (5)",
    "INSERT INTO hashed (id, tag, \"user\") SELECT x * 7919, 'tag ' || x, 'u' || (x % 3) \
     FROM generate_series(1, 500) t(x)",
    "INSERT INTO ranged SELECT x, 'v' || x FROM generate_series(-250, 250) t(x)",
    "INSERT INTO readings SELECT to_timestamp_millis(1704067200000 + x * 60000), x % 7, \
     x * 0.5 FROM generate_series(0, 2999) t(x)",
    "INSERT INTO \"Events\" VALUES (now() - INTERVAL '1 day', 'warn'), \
     (now() - INTERVAL '2 hours', 'info'), (now(), 'error')",
];

/// Each table with the ORDER BY that makes its rows comparable.
const TABLES: &[(&str, &str)] = &[
    ("every_type", "id"),
    ("hashed", "id"),
    ("ranged", "k"),
    ("readings", "ts, dev"),
    ("\"Events\"", "ts"),
    ("busy", "dev"),
    ("busiest", "dev"),
];

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn port(server: &TestServer) -> String {
    server.port.to_string()
}

async fn source_server() -> TestServer {
    let server = TestServer::start();
    let client = server.connect().await;
    for sql in SCHEMA.iter().chain(DATA) {
        exec(&client, sql).await;
    }
    server
}

/// An administrator's connection to `database` of `server`.
async fn connect_db(server: &TestServer, database: &str) -> tokio_postgres::Client {
    common::connect_to(&server.conn_string_as("admin", common::ADMIN_PASSWORD, database)).await
}

/// `kura import --in EXPORT -p PORT EXTRA...`, whatever its outcome.
fn import(export: &Path, server: &TestServer, extra: &[&str]) -> std::process::Output {
    let port = port(server);
    let mut args = vec!["import", "--in", path(export), "-p", &port];
    args.extend_from_slice(extra);
    kura_run(&args)
}

/// What a successful `kura import` printed.
fn imported(export: &Path, server: &TestServer, extra: &[&str]) -> String {
    let out = import(export, server, extra);
    assert!(out.status.success(), "{}", printed(&out));
    printed(&out)
}

/// Everything an import must reproduce: the definitions (as the server renders them), the
/// metatable's view of kind, partitioning and expiry, and every row.
async fn snapshot(server: &TestServer, database: &str) -> Vec<String> {
    let client = connect_db(server, database).await;
    let mut out = text_rows(
        &client,
        "SELECT object_type, object_name, position, statement FROM kura_definitions \
         ORDER BY object_type, object_name",
    )
    .await;
    out.extend(
        text_rows(
            &client,
            "SELECT table_name, table_optional_type, partition_type, partition_column, \
             partition_interval_value, partition_interval_unit, partition_division_count, \
             subpartition_type, subpartition_column, subpartition_division_count, \
             expiration_type, expiration_time, expiration_time_unit \
             FROM \"#tables\" ORDER BY table_name",
        )
        .await,
    );
    out.extend(
        text_rows(
            &client,
            "SELECT table_name, index_name, ordinal_position, column_name FROM \"#index_info\" \
             ORDER BY table_name, index_name, ordinal_position",
        )
        .await,
    );
    for (table, order) in TABLES {
        out.push(format!("-- {table}"));
        out.extend(text_rows(&client, &format!("SELECT * FROM {table} ORDER BY {order}")).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_partitioning_and_expiry_round_trip_in_csv_and_parquet() {
    let source = source_server().await;
    let target = TestServer::start();
    let admin = target.connect().await;
    let dir = common::temp_dir();
    let expected = snapshot(&source, "public").await;
    assert!(
        expected.iter().any(|r| r.contains(
            "PARTITION BY RANGE (ts) EVERY (6, HOUR) \
             SUBPARTITION BY HASH (dev) SUBPARTITIONS 4"
        )),
        "{expected:#?}"
    );

    for format in ["csv", "parquet"] {
        let out = dir.path().join(format);
        let said = kura_client(&[
            "export",
            "--out",
            path(&out),
            "--format",
            format,
            "-p",
            &port(&source),
        ]);
        assert!(said.contains("readings: 3000 rows"), "{said}");
        assert!(
            said.contains("exported 5 tables (4009 rows) and 2 views"),
            "{said}"
        );
        assert!(out.join("export.json").exists() && out.join("schema.sql").exists());

        let database = format!("{format}_copy");
        exec(&admin, &format!("CREATE DATABASE {database}")).await;
        let said = imported(&out, &target, &["-d", &database]);
        assert!(
            said.contains("imported 5 tables (4009 rows) and 2 views"),
            "{said}"
        );
        let got = snapshot(&target, &database).await;
        assert_eq!(got, expected, "{format} round trip");
    }

    // The schema file replays through psql-style execution too.
    let schema = std::fs::read_to_string(dir.path().join("csv").join("schema.sql")).unwrap();
    exec(&admin, "CREATE DATABASE replayed").await;
    let replayed = connect_db(&target, "replayed").await;
    replayed.batch_execute(&schema).await.unwrap();
    let definitions = "SELECT statement FROM kura_definitions ORDER BY object_name";
    assert_eq!(
        text_rows(&replayed, definitions).await,
        text_rows(&source.connect().await, definitions).await
    );
}

/// Rewrites a table's data file and the manifest's digest of it, as someone fixing an
/// export by hand would.
fn edit_data_file(export: &Path, table: &str, edit: impl Fn(&str) -> String) {
    let manifest_path = export.join("export.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let entry = manifest["tables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["name"] == table)
        .expect("the table is in the manifest");
    let file = export.join(entry["file"].as_str().unwrap());
    let text = edit(&std::fs::read_to_string(&file).unwrap());
    std::fs::write(&file, &text).unwrap();
    entry["bytes"] = text.len().into();
    entry["sha256"] = kura::backup::files::sha256_hex(text.as_bytes()).into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_fails_only_its_table_with_its_line_and_damage_is_refused() {
    let source = source_server().await;
    let target = TestServer::start();
    let admin = target.connect().await;
    let dir = common::temp_dir();
    let out = dir.path().join("export");
    kura_client(&["export", "--out", path(&out), "-p", &port(&source)]);

    // Line 1 is the header; the line of k = -248 is where the rows put it.
    let csv = std::fs::read_to_string(out.join("ranged.csv")).unwrap();
    let line = 1 + csv.lines().position(|l| l == "-248,v-248").unwrap();
    edit_data_file(&out, "ranged", |text| {
        text.replacen("-248,v-248", "not a number,v-248", 1)
    });
    let failed = import(&out, &target, &[]);
    let said = printed(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(said.contains("ranged: FAILED"), "{said}");
    assert!(
        said.contains(&format!(
            "COPY ranged, line {line}, column k: \"not a number\""
        )),
        "{said}"
    );
    assert!(said.contains("(the table was dropped again)"), "{said}");
    assert!(said.contains("1 failed: ranged"), "{said}");
    assert!(said.contains("hashed: 500 rows"), "{said}");
    assert_eq!(
        text_rows(
            &admin,
            "SELECT table_name FROM \"#tables\" ORDER BY table_name"
        )
        .await,
        vec!["Events", "every_type", "hashed", "readings"]
    );

    // Fixed by hand, the one table loads alone.
    edit_data_file(&out, "ranged", |text| {
        text.replacen("not a number,v-248", "-248,v-248", 1)
    });
    let said = imported(&out, &target, &["ranged"]);
    assert!(said.contains("ranged: 501 rows"), "{said}");
    assert_eq!(
        text_rows(&admin, "SELECT count(*), min(k), max(k) FROM ranged").await,
        vec!["501|-250|250"]
    );

    // A second import into existing tables fails at CREATE TABLE and changes nothing;
    // --data-only appends instead (and duplicate keys fail the table).
    let again = import(&out, &target, &["hashed"]);
    assert!(!again.status.success());
    assert!(
        printed(&again).contains("already exists"),
        "{}",
        printed(&again)
    );
    let dup = import(&out, &target, &["--data-only", "hashed"]);
    assert!(!dup.status.success());
    assert!(printed(&dup).contains("23505"), "{}", printed(&dup));
    assert_eq!(
        text_rows(&admin, "SELECT count(*) FROM hashed").await,
        vec!["500"]
    );

    // Rows load by column name: an existing table with its columns in another order.
    exec(&admin, "CREATE DATABASE reordered").await;
    let reordered = connect_db(&target, "reordered").await;
    exec(
        &reordered,
        "CREATE TABLE hashed (\"user\" STRING, tag STRING, id LONG PRIMARY KEY, \"check\" BOOL)",
    )
    .await;
    imported(&out, &target, &["-d", "reordered", "--data-only", "hashed"]);
    let same = "SELECT id, tag, \"check\", \"user\" FROM hashed ORDER BY id";
    assert_eq!(
        text_rows(&reordered, same).await,
        text_rows(&source.connect().await, same).await
    );

    // A data file that does not match the manifest stops the import before it starts.
    let csv = out.join("every_type.csv");
    let mut bytes = std::fs::read(&csv).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&csv, bytes).unwrap();
    exec(&admin, "CREATE DATABASE fresh").await;
    let damaged = import(&out, &target, &["-d", "fresh"]);
    assert!(!damaged.status.success());
    assert!(
        printed(&damaged).contains("every_type.csv is damaged"),
        "{}",
        printed(&damaged)
    );
    let fresh = connect_db(&target, "fresh").await;
    assert_eq!(
        text_rows(&fresh, "SELECT count(*) FROM \"#tables\"").await,
        vec!["0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_tables_and_misuse() {
    let source = source_server().await;
    let dir = common::temp_dir();
    let out = dir.path().join("two");
    let said = kura_client(&[
        "export",
        "--out",
        path(&out),
        "-p",
        &port(&source),
        "--format",
        "parquet",
        "Events",
        "HASHED",
    ]);
    assert!(
        said.contains("exported 2 tables (503 rows) and 0 views"),
        "{said}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("export.json")).unwrap()).unwrap();
    assert_eq!(manifest["data_format"], "parquet");
    assert_eq!(manifest["tables"][0]["name"], "Events");
    assert_eq!(manifest["tables"][0]["expires"], true);
    assert_eq!(manifest["tables"][1]["name"], "hashed");

    // Not into a directory that holds files; not a table that does not exist.
    let refused = kura_run(&["export", "--out", path(&out), "-p", &port(&source)]);
    assert!(!refused.status.success());
    assert!(
        printed(&refused).contains("is not empty"),
        "{}",
        printed(&refused)
    );
    let unknown = kura_run(&[
        "export",
        "--out",
        path(&dir.path().join("none")),
        "-p",
        &port(&source),
        "nosuch",
    ]);
    assert!(printed(&unknown).contains("no table named \"nosuch\""));
    let missing = import(dir.path(), &source, &[]);
    assert!(!missing.status.success());
    assert!(
        printed(&missing).contains("export.json"),
        "{}",
        printed(&missing)
    );
}
