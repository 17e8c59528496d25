//! GridDB table partitioning and partition expiry seen over the wire: hash, interval and
//! interval-hash tables (placement, `"#table_partitions"`, pruning shown by EXPLAIN's
//! `data_partitions=READ/TOTAL`, correct results), `ALTER TABLE ... DROP PARTITION FOR`, the
//! data-partition limit (`/sql/tablePartitioningMaxAssignNum`), every DDL rule and its SQLSTATE,
//! primary-key uniqueness across partitions (and per partition with
//! `/sql/partitioningRowkeyConstraint` off), PARTITION expiry driven by the test clock
//! (`--test-clock`, `SET kura.test_clock`), the background reaper, restarts (SIGTERM, SIGKILL,
//! after CHECKPOINT), the metatables, and parallel scans over many partitions.
//!
//! Time: expiry tests put their rows in the year 2100 and move the server's clock forward, so
//! nothing expires by the real clock (a server starts on the system time, and its reaper may run
//! before a test freezes the clock). Waiting for the reaper is polling with a deadline.

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{TestServer, affected, exec, sqlstate, text_rows as rows, within};
use tokio_postgres::Client;

/// Longest wait for the background reaper (it runs once a second).
const REAPER_TIMEOUT: Duration = Duration::from_secs(15);

/// Columns of `"#table_partitions"` compared by the tests, in this order.
const PARTITION_COLUMNS: &str = "partition_seq, partition_name, partition_boundary_value, \
     partition_upper_boundary_value, hash_bucket, num_rows, partition_status";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    let text = rows(client, sql).await;
    assert_eq!(text.len(), 1, "{sql}: one row expected, got {text:?}");
    text[0]
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not an integer {:?}: {e}", text[0]))
}

/// Asserts that `sql` fails with `code`; returns the error message.
async fn fails(client: &Client, sql: &str, code: &str) -> String {
    match within(sql, client.batch_execute(sql)).await {
        Ok(()) => panic!("{sql}: should fail with {code}, but succeeded"),
        Err(e) => {
            assert_eq!(sqlstate(&e), Some(code), "{sql}: wrong error {e:?}");
            e.as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_default()
        }
    }
}

/// `(read, total)` from `data_partitions=READ/TOTAL` of the scan of `table` in EXPLAIN `sql`.
async fn scanned(client: &Client, table: &str, sql: &str) -> (usize, usize) {
    let plan = rows(client, &format!("EXPLAIN {sql}")).await.join("\n");
    let marker = format!("KuraScanExec: table={table}, ");
    let line = plan
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no scan of {table} in the plan of {sql}:\n{plan}"));
    let field = "data_partitions=";
    let start = line
        .find(field)
        .unwrap_or_else(|| panic!("no {field} in `{line}`"))
        + field.len();
    let text: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    let (read, total) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("bad data_partitions in `{line}`"));
    (read.parse().unwrap(), total.parse().unwrap())
}

/// Checks both the pruning (`read` of `total` data partitions) and the result of
/// `SELECT * FROM table WHERE filter ORDER BY 1`.
async fn check_pruned(
    client: &Client,
    table: &str,
    filter: &str,
    (read, total): (usize, usize),
    expected: &[&str],
) {
    let sql = format!("SELECT * FROM {table} WHERE {filter}");
    assert_eq!(
        scanned(client, table, &sql).await,
        (read, total),
        "data partitions read by {sql}"
    );
    let ordered = format!("{sql} ORDER BY 1");
    assert_eq!(rows(client, &ordered).await, expected, "rows of {ordered}");
}

/// The `"#table_partitions"` rows of `table` ([`PARTITION_COLUMNS`]), by sequence and bucket.
async fn partitions(client: &Client, table: &str) -> Vec<String> {
    rows(
        client,
        &format!(
            "SELECT {PARTITION_COLUMNS} FROM \"#table_partitions\" \
             WHERE table_name = '{table}' ORDER BY partition_seq, hash_bucket"
        ),
    )
    .await
}

/// Lower bounds of the partitions of `table` (one entry per data partition).
async fn lower_bounds(client: &Client, table: &str) -> Vec<String> {
    rows(
        client,
        &format!(
            "SELECT partition_boundary_value FROM \"#table_partitions\" \
             WHERE table_name = '{table}' ORDER BY partition_seq"
        ),
    )
    .await
}

/// Polls `check` (every 50 ms) until it holds; fails the test after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not true within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A data directory and server arguments (configuration file, test clock) that outlive the
/// servers started on them.
struct Node {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    args: Vec<String>,
}

impl Node {
    /// `config` is the JSON of a `--config` file, if any.
    fn new(config: Option<&str>, test_clock: bool) -> Node {
        let tmp = common::temp_dir();
        let data = tmp.path().join("data");
        let mut args = Vec::new();
        if let Some(json) = config {
            let path = tmp.path().join("kura.json");
            std::fs::write(&path, json).expect("write the configuration file");
            args.push("--config".to_string());
            args.push(path.to_str().expect("UTF-8 temp path").to_string());
        }
        if test_clock {
            args.push("--test-clock".to_string());
        }
        Node {
            _tmp: tmp,
            data,
            args,
        }
    }

    fn start(&self) -> TestServer {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        TestServer::start_in(&self.data, &args)
    }
}

/// Freezes the server clock (a server started with `--test-clock`).
async fn set_clock(client: &Client, at: &str) {
    exec(client, &format!("SET kura.test_clock = '{at}'")).await;
}

/// `YYYY-MM-DD HH:00:00` for hour `h` counted from 2024-01-01 00:00 (h < 31 * 24).
fn hour_2024(h: u32) -> String {
    format!("2024-01-{:02} {:02}:00:00", 1 + h / 24, h % 24)
}

// ---------------------------------------------------------------------------------------
// Hash partitioning
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn hash_partitions_exist_from_create_spread_rows_and_prune() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE h (id INTEGER PRIMARY KEY, s STRING) PARTITION BY HASH (id) PARTITIONS 8",
    )
    .await;

    // All 8 data partitions exist before any row is inserted.
    let expected: Vec<String> = (0..8)
        .map(|b| format!("{b}|h@0_{b}|NULL|NULL|{b}|0|ACTIVE"))
        .collect();
    assert_eq!(partitions(&c, "h").await, expected);
    assert_eq!(scanned(&c, "h", "SELECT * FROM h").await, (8, 8));

    assert_eq!(
        affected(
            &c,
            "INSERT INTO h SELECT x, 'v' || x FROM generate_series(1, 200) t(x)"
        )
        .await,
        200
    );
    let counts: Vec<i64> = rows(
        &c,
        "SELECT num_rows FROM \"#table_partitions\" WHERE table_name = 'h' ORDER BY hash_bucket",
    )
    .await
    .iter()
    .map(|n| n.parse().unwrap())
    .collect();
    assert_eq!(counts.len(), 8);
    assert_eq!(counts.iter().sum::<i64>(), 200, "{counts:?}");
    assert!(
        counts.iter().all(|n| *n > 0),
        "200 keys should reach every one of 8 buckets: {counts:?}"
    );

    // Equality and IN on the hash key read only the buckets of the values.
    check_pruned(&c, "h", "id = 5", (1, 8), &["5|v5"]).await;
    let sql = "SELECT * FROM h WHERE id IN (5, 6, 7)";
    let (read, total) = scanned(&c, "h", sql).await;
    assert!(
        (1..=3).contains(&read) && total == 8,
        "{sql}: {read}/{total}"
    );
    assert_eq!(
        rows(&c, &format!("{sql} ORDER BY id")).await,
        ["5|v5", "6|v6", "7|v7"]
    );
    let sql = "SELECT * FROM h WHERE id = 5 OR id = 500";
    let (read, _) = scanned(&c, "h", sql).await;
    assert!((1..=2).contains(&read), "{sql}: {read}");
    assert_eq!(rows(&c, sql).await, ["5|v5"]);
    // Filters on other columns, or none, read everything.
    assert_eq!(scanned(&c, "h", "SELECT * FROM h").await, (8, 8));
    assert_eq!(
        scanned(&c, "h", "SELECT * FROM h WHERE s = 'v5'").await,
        (8, 8)
    );
    assert_eq!(rows(&c, "SELECT id FROM h WHERE s = 'v5'").await, ["5"]);
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM h").await, 200);
    assert_eq!(scalar_i64(&c, "SELECT sum(id) FROM h").await, 20100);

    // Prepared statements prune on the bound value.
    let row = within(
        "prepared",
        c.query_one("SELECT s FROM h WHERE id = $1", &[&42i32]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, String>(0), "v42");

    // UPDATE and DELETE through the pruned paths.
    assert_eq!(
        affected(&c, "UPDATE h SET s = 'five' WHERE id = 5").await,
        1
    );
    assert_eq!(
        affected(&c, "DELETE FROM h WHERE id IN (6, 7, 1000)").await,
        2
    );
    assert_eq!(rows(&c, "SELECT s FROM h WHERE id = 5").await, ["five"]);
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM h").await, 198);
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT sum(num_rows) FROM \"#table_partitions\" WHERE table_name = 'h'"
        )
        .await,
        198
    );
}

#[tokio::test]
async fn hash_pruning_finds_values_written_as_other_types() {
    let server = TestServer::start();
    let c = server.connect().await;

    // STRING key.
    exec(
        &c,
        "CREATE TABLE hs (code STRING PRIMARY KEY, n INTEGER) PARTITION BY HASH (code) PARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "INSERT INTO hs SELECT 'c' || x, x FROM generate_series(0, 49) t(x)",
    )
    .await;
    check_pruned(&c, "hs", "code = 'c7'", (1, 4), &["c7|7"]).await;
    let (read, _) = scanned(&c, "hs", "SELECT * FROM hs WHERE code IN ('c1', 'c2')").await;
    assert!(read <= 2, "IN of two strings reads {read} partitions");
    assert_eq!(
        rows(&c, "SELECT n FROM hs WHERE code IN ('c1', 'c2') ORDER BY n").await,
        ["1", "2"]
    );

    // DOUBLE key queried with integer literals and -0.0.
    exec(
        &c,
        "CREATE TABLE hd (x DOUBLE NOT NULL, tag STRING) PARTITION BY HASH (x) PARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "INSERT INTO hd VALUES (0.0, 'zero'), (5.0, 'five'), (5.5, 'five.5'), (-7.0, 'minus7')",
    )
    .await;
    check_pruned(&c, "hd", "x = 5", (1, 4), &["5|five"]).await;
    check_pruned(&c, "hd", "x = 5.5", (1, 4), &["5.5|five.5"]).await;
    assert_eq!(
        rows(&c, "SELECT tag FROM hd WHERE x = -0.0").await,
        ["zero"]
    );
    assert_eq!(
        rows(&c, "SELECT tag FROM hd WHERE x IN (5, -7) ORDER BY x").await,
        ["minus7", "five"]
    );

    // LONG key with values beyond 32 bits, queried with a narrower literal too.
    exec(
        &c,
        "CREATE TABLE hl (i BIGINT NOT NULL, v INTEGER) PARTITION BY HASH (i) PARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "INSERT INTO hl VALUES (1, 1), (2, 2), (3, 3), (5000000000, 4), (-5000000000, 5)",
    )
    .await;
    check_pruned(&c, "hl", "i = 5000000000", (1, 4), &["5000000000|4"]).await;
    check_pruned(&c, "hl", "i = -5000000000", (1, 4), &["-5000000000|5"]).await;
    assert_eq!(
        rows(&c, "SELECT v FROM hl WHERE i = 2::smallint").await,
        ["2"]
    );

    // TIMESTAMP key queried with a string, a TIMESTAMP literal and a DATE.
    exec(
        &c,
        "CREATE TABLE ht (t TIMESTAMP NOT NULL, v INTEGER) PARTITION BY HASH (t) PARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "INSERT INTO ht VALUES ('2024-01-01', 1), ('2024-01-02', 2), ('2024-01-03 12:00:00', 3)",
    )
    .await;
    check_pruned(
        &c,
        "ht",
        "t = '2024-01-02'",
        (1, 4),
        &["2024-01-02 00:00:00|2"],
    )
    .await;
    assert_eq!(
        rows(
            &c,
            "SELECT v FROM ht WHERE t = TIMESTAMP '2024-01-03 12:00:00'"
        )
        .await,
        ["3"]
    );
    assert_eq!(
        rows(&c, "SELECT v FROM ht WHERE t = DATE '2024-01-01'").await,
        ["1"]
    );
}

// ---------------------------------------------------------------------------------------
// Interval partitioning
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn interval_on_integer_key_floors_bounds_and_prunes_ranges() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE ii (k INTEGER PRIMARY KEY, v STRING) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    assert_eq!(partitions(&c, "ii").await, Vec::<String>::new());
    assert_eq!(scanned(&c, "ii", "SELECT * FROM ii").await, (0, 0));

    exec(&c, "INSERT INTO ii VALUES (-1, 'm1')").await;
    assert_eq!(
        partitions(&c, "ii").await,
        ["-1|ii@-1_0|-10|0|NULL|1|ACTIVE"],
        "key -1 belongs to [-10, 0)"
    );
    exec(
        &c,
        "INSERT INTO ii VALUES (-25, 'm25'), (-11, 'm11'), (-10, 'm10'), (0, 'p0'), (5, 'p5'), \
         (9, 'p9'), (10, 'p10'), (19, 'p19'), (20, 'p20'), (35, 'p35')",
    )
    .await;
    assert_eq!(
        partitions(&c, "ii").await,
        [
            "-3|ii@-3_0|-30|-20|NULL|1|ACTIVE",
            "-2|ii@-2_0|-20|-10|NULL|1|ACTIVE",
            "-1|ii@-1_0|-10|0|NULL|2|ACTIVE",
            "0|ii@0_0|0|10|NULL|3|ACTIVE",
            "1|ii@1_0|10|20|NULL|2|ACTIVE",
            "2|ii@2_0|20|30|NULL|1|ACTIVE",
            "3|ii@3_0|30|40|NULL|1|ACTIVE",
        ]
    );

    let t = 7;
    check_pruned(&c, "ii", "k = -1", (1, t), &["-1|m1"]).await;
    check_pruned(&c, "ii", "k = 1000", (0, t), &[]).await;
    check_pruned(
        &c,
        "ii",
        "k < 0",
        (3, t),
        &["-25|m25", "-11|m11", "-10|m10", "-1|m1"],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k <= 0",
        (4, t),
        &["-25|m25", "-11|m11", "-10|m10", "-1|m1", "0|p0"],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k > 9",
        (3, t),
        &["10|p10", "19|p19", "20|p20", "35|p35"],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k >= 9",
        (4, t),
        &["9|p9", "10|p10", "19|p19", "20|p20", "35|p35"],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k BETWEEN -10 AND 19",
        (3, t),
        &[
            "-10|m10", "-1|m1", "0|p0", "5|p5", "9|p9", "10|p10", "19|p19",
        ],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k > 5 AND k < 20",
        (2, t),
        &["9|p9", "10|p10", "19|p19"],
    )
    .await;
    check_pruned(
        &c,
        "ii",
        "k IN (-25, 35, 100)",
        (2, t),
        &["-25|m25", "35|p35"],
    )
    .await;
    check_pruned(&c, "ii", "-11 = k", (1, t), &["-11|m11"]).await;
    check_pruned(
        &c,
        "ii",
        "10 <= k AND 20 > k",
        (1, t),
        &["10|p10", "19|p19"],
    )
    .await;
    // Conditions pruning cannot use still give correct rows.
    check_pruned(&c, "ii", "k <> 0 AND v = 'p5'", (t, t), &["5|p5"]).await;
    check_pruned(&c, "ii", "k = 5 OR v = 'p35'", (t, t), &["5|p5", "35|p35"]).await;
    check_pruned(&c, "ii", "k + 0 = 19", (t, t), &["19|p19"]).await;
}

#[tokio::test]
async fn interval_on_long_key_floors_bounds_and_prunes_ranges() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE il (k LONG NOT NULL, v INTEGER) PARTITION BY RANGE (k) EVERY (1000)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO il VALUES (-1, 1), (-1000, 2), (-1001, 3), (0, 4), (999, 5), (1000, 6), \
         (5000000000, 7), (-5000000001, 8)",
    )
    .await;
    assert_eq!(
        partitions(&c, "il").await,
        [
            "-5000001|il@-5000001_0|-5000001000|-5000000000|NULL|1|ACTIVE",
            "-2|il@-2_0|-2000|-1000|NULL|1|ACTIVE",
            "-1|il@-1_0|-1000|0|NULL|2|ACTIVE",
            "0|il@0_0|0|1000|NULL|2|ACTIVE",
            "1|il@1_0|1000|2000|NULL|1|ACTIVE",
            "5000000|il@5000000_0|5000000000|5000001000|NULL|1|ACTIVE",
        ]
    );
    let t = 6;
    check_pruned(&c, "il", "k = -1000", (1, t), &["-1000|2"]).await;
    check_pruned(
        &c,
        "il",
        "k < 0",
        (3, t),
        &["-5000000001|8", "-1001|3", "-1000|2", "-1|1"],
    )
    .await;
    check_pruned(&c, "il", "k >= 4000000000", (1, t), &["5000000000|7"]).await;
    check_pruned(&c, "il", "k > 999", (2, t), &["1000|6", "5000000000|7"]).await;
    check_pruned(
        &c,
        "il",
        "k <= -1001",
        (2, t),
        &["-5000000001|8", "-1001|3"],
    )
    .await;
    check_pruned(
        &c,
        "il",
        "k BETWEEN -1000 AND 999",
        (2, t),
        &["-1000|2", "-1|1", "0|4", "999|5"],
    )
    .await;
    check_pruned(&c, "il", "k IN (999, 1000)", (2, t), &["999|5", "1000|6"]).await;
}

#[tokio::test]
async fn interval_on_byte_and_short_keys() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE ib (k BYTE NOT NULL, v INTEGER) PARTITION BY RANGE (k) EVERY (100)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO ib VALUES (-128, 1), (-1, 2), (0, 3), (127, 4)",
    )
    .await;
    assert_eq!(
        partitions(&c, "ib").await,
        [
            "-2|ib@-2_0|-200|-100|NULL|1|ACTIVE",
            "-1|ib@-1_0|-100|0|NULL|1|ACTIVE",
            "0|ib@0_0|0|100|NULL|1|ACTIVE",
            "1|ib@1_0|100|200|NULL|1|ACTIVE",
        ]
    );
    check_pruned(&c, "ib", "k < 0", (2, 4), &["-128|1", "-1|2"]).await;
    check_pruned(&c, "ib", "k = 127", (1, 4), &["127|4"]).await;
    // Literals outside the key's range cannot prune, but the results stay right.
    check_pruned(
        &c,
        "ib",
        "k < 1000",
        (4, 4),
        &["-128|1", "-1|2", "0|3", "127|4"],
    )
    .await;
    exec(&c, "ALTER TABLE ib DROP PARTITION FOR (-100)").await;
    assert_eq!(
        rows(&c, "SELECT k FROM ib ORDER BY k").await,
        ["-128", "0", "127"]
    );
    fails(&c, "INSERT INTO ib VALUES (-50, 5)", "23514").await;

    exec(
        &c,
        "CREATE TABLE is2 (k SHORT PRIMARY KEY) PARTITION BY RANGE (k) EVERY (32767)",
    )
    .await;
    exec(&c, "INSERT INTO is2 VALUES (-32768), (-1), (0), (32767)").await;
    assert_eq!(
        lower_bounds(&c, "is2").await,
        ["-65534", "-32767", "0", "32767"]
    );
    check_pruned(&c, "is2", "k >= 0", (2, 4), &["0", "32767"]).await;
}

#[tokio::test]
async fn interval_on_timestamp_key_floors_bounds_and_prunes_ranges() {
    let server = TestServer::start();
    let c = server.connect().await;
    // TIMESTAMP is microsecond precision: bounds print with 6 fractional digits.
    exec(
        &c,
        "CREATE TABLE it (ts TIMESTAMP NOT NULL, v INTEGER) PARTITION BY RANGE (ts) EVERY (1, DAY)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO it VALUES ('2024-01-01 00:00:00', 1), ('2024-01-01 23:59:59.999999', 2), \
         ('2024-01-02 00:00:00', 3), ('2024-01-03 12:00:00', 4), ('1969-12-31 23:00:00', 5)",
    )
    .await;
    assert_eq!(
        partitions(&c, "it").await,
        [
            "-1|it@-1_0|1969-12-31T00:00:00.000000Z|1970-01-01T00:00:00.000000Z|NULL|1|ACTIVE",
            "19723|it@19723_0|2024-01-01T00:00:00.000000Z|2024-01-02T00:00:00.000000Z|NULL|2|ACTIVE",
            "19724|it@19724_0|2024-01-02T00:00:00.000000Z|2024-01-03T00:00:00.000000Z|NULL|1|ACTIVE",
            "19725|it@19725_0|2024-01-03T00:00:00.000000Z|2024-01-04T00:00:00.000000Z|NULL|1|ACTIVE",
        ]
    );
    let t = 4;
    check_pruned(
        &c,
        "it",
        "ts = '2024-01-02 00:00:00'",
        (1, t),
        &["2024-01-02 00:00:00|3"],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts < '2024-01-02'",
        (2, t),
        &[
            "1969-12-31 23:00:00|5",
            "2024-01-01 00:00:00|1",
            "2024-01-01 23:59:59.999999|2",
        ],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts <= '2024-01-02'",
        (3, t),
        &[
            "1969-12-31 23:00:00|5",
            "2024-01-01 00:00:00|1",
            "2024-01-01 23:59:59.999999|2",
            "2024-01-02 00:00:00|3",
        ],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts > '2024-01-01 23:59:59.999999'",
        (2, t),
        &["2024-01-02 00:00:00|3", "2024-01-03 12:00:00|4"],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts >= '2024-01-01 23:59:59.999999'",
        (3, t),
        &[
            "2024-01-01 23:59:59.999999|2",
            "2024-01-02 00:00:00|3",
            "2024-01-03 12:00:00|4",
        ],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts BETWEEN '2024-01-01 12:00:00' AND '2024-01-02 12:00:00'",
        (2, t),
        &["2024-01-01 23:59:59.999999|2", "2024-01-02 00:00:00|3"],
    )
    .await;
    check_pruned(
        &c,
        "it",
        "ts IN (TIMESTAMP '1969-12-31 23:00:00', TIMESTAMP '2024-01-03 12:00:00')",
        (2, t),
        &["1969-12-31 23:00:00|5", "2024-01-03 12:00:00|4"],
    )
    .await;
    check_pruned(&c, "it", "ts >= '2024-01-05'", (0, t), &[]).await;

    // TIMESTAMP(3) (milliseconds), two-hour intervals.
    exec(
        &c,
        "CREATE TABLE it3 (ts TIMESTAMP(3) PRIMARY KEY, v INTEGER) PARTITION BY RANGE (ts) EVERY (2, HOUR)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO it3 VALUES ('2024-01-01 01:59:59.999', 1), ('2024-01-01 02:00:00', 2)",
    )
    .await;
    assert_eq!(
        partitions(&c, "it3").await,
        [
            "236676|it3@236676_0|2024-01-01T00:00:00.000Z|2024-01-01T02:00:00.000Z|NULL|1|ACTIVE",
            "236677|it3@236677_0|2024-01-01T02:00:00.000Z|2024-01-01T04:00:00.000Z|NULL|1|ACTIVE",
        ]
    );
    check_pruned(
        &c,
        "it3",
        "ts >= TIMESTAMP '2024-01-01 02:00:00'",
        (1, 2),
        &["2024-01-01 02:00:00|2"],
    )
    .await;
    check_pruned(
        &c,
        "it3",
        "ts = '2024-01-01 01:59:59.999'",
        (1, 2),
        &["2024-01-01 01:59:59.999|1"],
    )
    .await;
    // A bound finer than the key's precision cannot be converted exactly: no pruning, but the
    // right rows.
    let sql = "SELECT v FROM it3 WHERE ts > '2024-01-01 01:59:59.9995'";
    assert_eq!(rows(&c, sql).await, ["2"]);
}

// ---------------------------------------------------------------------------------------
// Interval-hash partitioning and DROP PARTITION
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn interval_hash_prunes_on_both_keys_and_drop_partition_removes_the_interval() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE ih (ts TIMESTAMP NOT NULL, dev INTEGER NOT NULL, v INTEGER, \
         PRIMARY KEY (ts, dev)) PARTITION BY RANGE (ts) EVERY (1, DAY) \
         SUBPARTITION BY HASH (dev) SUBPARTITIONS 4",
    )
    .await;
    assert!(partitions(&c, "ih").await.is_empty());

    // Three days, one row an hour for each of 16 devices.
    let values: Vec<String> = (0..72)
        .flat_map(|h| (0..16).map(move |d| format!("('{}', {d}, {})", hour_2024(h), h * 16 + d)))
        .collect();
    assert_eq!(
        affected(&c, &format!("INSERT INTO ih VALUES {}", values.join(", "))).await,
        1152
    );
    let parts = rows(
        &c,
        "SELECT partition_boundary_value, hash_bucket, partition_seq, num_rows \
         FROM \"#table_partitions\" WHERE table_name = 'ih' ORDER BY partition_seq",
    )
    .await;
    // Which of the 4 buckets the 16 devices reach depends on the hash; every day has the same
    // ones, and each partition holds whole devices (24 rows a day each).
    let days = [
        (19723, "2024-01-01T00:00:00.000000Z"),
        (19724, "2024-01-02T00:00:00.000000Z"),
        (19725, "2024-01-03T00:00:00.000000Z"),
    ];
    let buckets: Vec<i64> = parts
        .iter()
        .map(|p| p.split('|').collect::<Vec<_>>())
        .filter(|f| f[0] == days[0].1)
        .map(|f| f[1].parse().unwrap())
        .collect();
    let m = buckets.len();
    assert!(m >= 2, "16 devices should reach several buckets: {parts:?}");
    assert_eq!(parts.len(), 3 * m, "3 intervals x {m} buckets: {parts:?}");
    let mut total = 0;
    for (i, part) in parts.iter().enumerate() {
        let (interval, lower) = days[i / m];
        let bucket = buckets[i % m];
        let fields: Vec<&str> = part.split('|').collect();
        assert_eq!(fields[0], lower, "{part}");
        assert_eq!(fields[1], bucket.to_string(), "{part}");
        assert_eq!(fields[2], (interval * 4 + bucket).to_string(), "{part}");
        let n: i64 = fields[3].parse().unwrap();
        assert!(n > 0 && n % 24 == 0, "whole devices per day: {part}");
        total += n;
    }
    assert_eq!(total, 1152);

    // A time range alone reads one interval (all its buckets); with the device, one partition.
    let day2 = "ts >= '2024-01-02' AND ts < '2024-01-03'";
    assert_eq!(
        scanned(&c, "ih", &format!("SELECT * FROM ih WHERE {day2}")).await,
        (m, 3 * m)
    );
    assert_eq!(
        scanned(
            &c,
            "ih",
            &format!("SELECT * FROM ih WHERE {day2} AND dev = 3")
        )
        .await,
        (1, 3 * m)
    );
    assert_eq!(
        scanned(&c, "ih", "SELECT * FROM ih WHERE dev = 3").await,
        (3, 3 * m)
    );
    let (read, _) = scanned(
        &c,
        "ih",
        &format!("SELECT * FROM ih WHERE {day2} AND dev IN (3, 4)"),
    )
    .await;
    assert!((1..=2).contains(&read), "day 2 and two devices: {read}");
    let expected: Vec<String> = (24..48)
        .map(|h| format!("{}|{}", hour_2024(h), h * 16 + 3))
        .collect();
    assert_eq!(
        rows(
            &c,
            &format!("SELECT ts, v FROM ih WHERE {day2} AND dev = 3 ORDER BY ts")
        )
        .await,
        expected
    );
    for dev in 0..16 {
        assert_eq!(
            scalar_i64(&c, &format!("SELECT count(*) FROM ih WHERE dev = {dev}")).await,
            72,
            "rows of device {dev} through its pruned bucket"
        );
    }
    assert_eq!(
        scalar_i64(&c, &format!("SELECT count(*) FROM ih WHERE {day2}")).await,
        384
    );

    // DROP PARTITION FOR a string inside day 2 removes all the buckets of that interval.
    exec(
        &c,
        "ALTER TABLE ih DROP PARTITION FOR ('2024-01-02T05:00:00Z')",
    )
    .await;
    let left = lower_bounds(&c, "ih").await;
    assert_eq!(left.len(), 2 * m, "{left:?}");
    assert!(
        left.iter().all(|l| !l.starts_with("2024-01-02")),
        "{left:?}"
    );
    assert_eq!(
        scalar_i64(&c, &format!("SELECT count(*) FROM ih WHERE {day2}")).await,
        0
    );
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM ih").await, 768);
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM ih WHERE dev = 3").await,
        48
    );

    // The dropped interval refuses rows, whole statements at a time; others still accept.
    let message = fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-02 07:00:00', 100, 0)",
        "23514",
    )
    .await;
    assert!(message.contains("interval was dropped"), "{message}");
    fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 07:30:00', 100, 0), ('2024-01-02 23:59:59.999999', 100, 0)",
        "23514",
    )
    .await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM ih").await, 768);
    assert_eq!(
        affected(
            &c,
            "INSERT INTO ih VALUES ('2024-01-01 07:30:00', 100, 1), ('2024-01-03 23:59:59.999999', 100, 2), \
             ('2024-01-10 00:00:00', 100, 3)"
        )
        .await,
        3
    );
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM ih").await, 771);
    assert!(
        lower_bounds(&c, "ih")
            .await
            .contains(&"2024-01-10T00:00:00.000000Z".to_string())
    );
    // The neighbours' boundaries are unaffected.
    fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-02 00:00:00', 101, 0)",
        "23514",
    )
    .await;
    exec(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 23:59:59.999999', 101, 0)",
    )
    .await;
    exec(&c, "INSERT INTO ih VALUES ('2024-01-03 00:00:00', 101, 0)").await;

    // A TIMESTAMP literal works as well (plain interval table this time).
    exec(
        &c,
        "CREATE TABLE iv (ts TIMESTAMP(3) PRIMARY KEY, v INTEGER) PARTITION BY RANGE (ts) EVERY (1, HOUR)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO iv VALUES ('2024-01-01 00:10:00', 1), ('2024-01-01 01:10:00', 2), ('2024-01-01 02:10:00', 3)",
    )
    .await;
    exec(
        &c,
        "ALTER TABLE iv DROP PARTITION FOR (TIMESTAMP '2024-01-01 01:59:59.999')",
    )
    .await;
    assert_eq!(
        lower_bounds(&c, "iv").await,
        ["2024-01-01T00:00:00.000Z", "2024-01-01T02:00:00.000Z"]
    );
    assert_eq!(rows(&c, "SELECT v FROM iv ORDER BY ts").await, ["1", "3"]);
    fails(
        &c,
        "INSERT INTO iv VALUES ('2024-01-01 01:00:00', 9)",
        "23514",
    )
    .await;

    // Integer keys: DROP PARTITION FOR a negative value drops its floor interval.
    exec(
        &c,
        "CREATE TABLE di (k INTEGER PRIMARY KEY) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    exec(&c, "INSERT INTO di VALUES (-10), (-1), (0), (9)").await;
    exec(&c, "ALTER TABLE di DROP PARTITION FOR (-5)").await;
    assert_eq!(rows(&c, "SELECT k FROM di ORDER BY k").await, ["0", "9"]);
    fails(&c, "INSERT INTO di VALUES (-10)", "23514").await;
    exec(&c, "INSERT INTO di VALUES (-11), (10)").await;
    assert_eq!(
        rows(&c, "SELECT k FROM di ORDER BY k").await,
        ["-11", "0", "9", "10"]
    );
}

#[tokio::test]
async fn drop_partition_wins_over_an_open_transaction_writing_into_it() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE rd (k INTEGER PRIMARY KEY, v INTEGER) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    exec(&a, "INSERT INTO rd VALUES (1, 1), (11, 11)").await;

    // A writes into an existing interval and a new one; B drops both meanwhile (DROP PARTITION
    // does not wait for A). A's commit then fails as a whole, its UPDATE included.
    exec(&a, "BEGIN").await;
    exec(&a, "INSERT INTO rd VALUES (2, 2)").await;
    exec(&a, "INSERT INTO rd VALUES (21, 21)").await;
    exec(&a, "UPDATE rd SET v = 111 WHERE k = 11").await;
    exec(&b, "ALTER TABLE rd DROP PARTITION FOR (5)").await;
    exec(&b, "ALTER TABLE rd DROP PARTITION FOR (25)").await;
    fails(&a, "COMMIT", "23514").await;
    assert_eq!(rows(&b, "SELECT k, v FROM rd ORDER BY k").await, ["11|11"]);
    assert_eq!(rows(&a, "SELECT k, v FROM rd ORDER BY k").await, ["11|11"]);
    assert_eq!(
        lower_bounds(&b, "rd").await,
        ["10"],
        "only [10, 20) is left"
    );
    fails(&b, "INSERT INTO rd VALUES (3, 3)", "23514").await;
    fails(&b, "INSERT INTO rd VALUES (22, 22)", "23514").await;
}

#[tokio::test]
async fn rows_committed_after_their_partition_expired_are_not_stored() {
    let server = TestServer::start_with_args(&["--test-clock"]);
    let a = server.connect().await;
    exec(
        &a,
        "CREATE TABLE ec (ts TIMESTAMP PRIMARY KEY, v INTEGER) USING TIMESERIES \
         WITH (expiration_time=1, expiration_time_unit='HOUR') PARTITION BY RANGE (ts) EVERY (1, HOUR)",
    )
    .await;
    set_clock(&a, "2100-01-01 00:00:00").await;
    exec(&a, "BEGIN").await;
    exec(
        &a,
        "INSERT INTO ec VALUES ('2100-01-01 00:10:00', 1), ('2100-01-01 05:00:00', 2)",
    )
    .await;
    assert_eq!(rows(&a, "SELECT v FROM ec ORDER BY ts").await, ["1", "2"]);
    // Hour 0 expires after 02:00; the transaction commits after that.
    set_clock(&a, "2100-01-01 02:00:00.001").await;
    exec(&a, "COMMIT").await;
    assert_eq!(rows(&a, "SELECT v FROM ec ORDER BY ts").await, ["2"]);
    assert_eq!(
        lower_bounds(&a, "ec").await,
        ["2100-01-01T05:00:00.000000Z"],
        "no partition is created for an expired row"
    );
    // Back before the expiry: the row was never stored.
    set_clock(&a, "2100-01-01 00:00:00").await;
    assert_eq!(rows(&a, "SELECT v FROM ec ORDER BY ts").await, ["2"]);
}

// ---------------------------------------------------------------------------------------
// The data-partition limit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn partition_limit_from_config_refuses_whole_statements() {
    let node = Node::new(
        Some(r#"{"sql": {"tablePartitioningMaxAssignNum": 20}}"#),
        false,
    );
    let server = node.start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE lim (k INTEGER PRIMARY KEY, v INTEGER) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    // 19 intervals in one statement (even keys 0..=188).
    exec(
        &c,
        "INSERT INTO lim SELECT x * 2, 1 FROM generate_series(0, 94) t(x)",
    )
    .await;
    assert_eq!(lower_bounds(&c, "lim").await.len(), 19);

    // Rows for an existing interval plus two new ones: partition 21 is refused, and nothing
    // of the statement is stored.
    let message = fails(
        &c,
        "INSERT INTO lim VALUES (1, 2), (190, 2), (200, 2)",
        "54000",
    )
    .await;
    assert!(message.contains("20"), "{message}");
    fails(
        &c,
        "INSERT INTO lim SELECT x * 2 + 1, 2 FROM generate_series(90, 102) t(x)",
        "54000",
    )
    .await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM lim").await, 95);
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM lim WHERE v = 2").await,
        0
    );
    assert_eq!(lower_bounds(&c, "lim").await.len(), 19);

    // Partition 20 is allowed; then no new interval, but existing ones still take rows.
    exec(&c, "INSERT INTO lim VALUES (190, 3), (199, 3)").await;
    assert_eq!(lower_bounds(&c, "lim").await.len(), 20);
    fails(&c, "INSERT INTO lim VALUES (200, 4)", "54000").await;
    fails(&c, "INSERT INTO lim VALUES (-1, 4)", "54000").await;
    exec(&c, "INSERT INTO lim VALUES (1, 4), (189, 4)").await;
    exec(&c, "UPDATE lim SET v = 5 WHERE k = 0").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM lim").await, 99);

    // Dropping an interval makes room for a new one. [0, 10) holds 0, 1, 2, 4, 6, 8.
    exec(&c, "ALTER TABLE lim DROP PARTITION FOR (5)").await;
    assert_eq!(lower_bounds(&c, "lim").await.len(), 19);
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM lim").await, 93);
    exec(&c, "INSERT INTO lim VALUES (200, 6)").await;
    assert_eq!(lower_bounds(&c, "lim").await.len(), 20);
    fails(&c, "INSERT INTO lim VALUES (210, 7)", "54000").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM lim").await, 94);

    // Interval-hash tables count every (interval, bucket) pair.
    exec(
        &c,
        "CREATE TABLE limh (k INTEGER NOT NULL, d INTEGER NOT NULL) \
         PARTITION BY RANGE (k) EVERY (10) SUBPARTITION BY HASH (d) SUBPARTITIONS 4",
    )
    .await;
    let mut made = 0;
    let mut interval = 0;
    while made < 20 {
        let values: Vec<String> = (0..8)
            .map(|d| format!("({}, {d})", interval * 10))
            .collect();
        let sql = format!("INSERT INTO limh VALUES {}", values.join(", "));
        let before = lower_bounds(&c, "limh").await.len();
        match within(&sql, c.batch_execute(&sql)).await {
            Ok(()) => made = lower_bounds(&c, "limh").await.len(),
            Err(e) => {
                assert_eq!(sqlstate(&e), Some("54000"), "{sql}: {e:?}");
                assert_eq!(lower_bounds(&c, "limh").await.len(), before);
                break;
            }
        }
        interval += 1;
    }
    assert!(made <= 20, "limh has {made} data partitions");
}

#[tokio::test]
async fn default_partition_limit_is_10000() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE many (k INTEGER PRIMARY KEY, v INTEGER) PARTITION BY RANGE (k) EVERY (1)",
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        affected(
            &c,
            "INSERT INTO many SELECT x, x + 1 FROM generate_series(0, 9999) t(x)"
        )
        .await,
        10_000
    );
    eprintln!("10000 partitions in one INSERT: {:?}", started.elapsed());
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'many'"
        )
        .await,
        10_000
    );
    let message = fails(&c, "INSERT INTO many VALUES (10000, 1)", "54000").await;
    assert!(message.contains("10000"), "{message}");
    assert_eq!(
        rows(&c, "SELECT count(*), sum(v) FROM many").await,
        ["10000|50005000"]
    );
    assert_eq!(
        scanned(&c, "many", "SELECT * FROM many WHERE k = 7000").await,
        (1, 10_000)
    );
    assert_eq!(
        scanned(&c, "many", "SELECT * FROM many WHERE k >= 9990").await,
        (10, 10_000)
    );
    assert_eq!(
        rows(&c, "SELECT v FROM many WHERE k = 7000").await,
        ["7001"]
    );
    exec(&c, "ALTER TABLE many DROP PARTITION FOR (0)").await;
    exec(&c, "INSERT INTO many VALUES (10000, 1)").await;
    fails(&c, "INSERT INTO many VALUES (10001, 1)", "54000").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM many").await, 10_000);
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_table_rules_report_their_sqlstate() {
    let server = TestServer::start();
    let c = server.connect().await;
    let cases: &[(&str, &str)] = &[
        // A non-key partitioning column on a table with a primary key.
        (
            "CREATE TABLE e (a INTEGER PRIMARY KEY, b INTEGER) PARTITION BY HASH (b) PARTITIONS 4",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER PRIMARY KEY, b INTEGER NOT NULL) PARTITION BY RANGE (b) EVERY (10)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY, b STRING) PARTITION BY RANGE (a) EVERY (1, DAY) \
             SUBPARTITION BY HASH (b) SUBPARTITIONS 2",
            "42P16",
        ),
        // Interval keys must be NOT NULL.
        (
            "CREATE TABLE e (a INTEGER, b INTEGER) PARTITION BY RANGE (a) EVERY (10)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP, b INTEGER) PARTITION BY RANGE (a) EVERY (1, DAY)",
            "42P16",
        ),
        // Widths and units.
        (
            "CREATE TABLE e (a LONG NOT NULL) PARTITION BY RANGE (a) EVERY (999)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a LONG NOT NULL, b STRING NOT NULL) PARTITION BY RANGE (a) EVERY (3999) \
             SUBPARTITION BY HASH (b) SUBPARTITIONS 4",
            "42P16",
        ),
        (
            "CREATE TABLE e (a BYTE NOT NULL) PARTITION BY RANGE (a) EVERY (128)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a SHORT NOT NULL) PARTITION BY RANGE (a) EVERY (32768)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER NOT NULL) PARTITION BY RANGE (a) EVERY (0)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER NOT NULL) PARTITION BY RANGE (a) EVERY (10, DAY)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP NOT NULL) PARTITION BY RANGE (a) EVERY (10)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP NOT NULL) PARTITION BY RANGE (a) EVERY (10, MILLISECOND)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP NOT NULL) PARTITION BY RANGE (a) EVERY (1, WEEK)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP NOT NULL) PARTITION BY RANGE (a) EVERY (-1, DAY)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a DOUBLE NOT NULL) PARTITION BY RANGE (a) EVERY (10)",
            "42P16",
        ),
        // Hash partition counts.
        (
            "CREATE TABLE e (a INTEGER) PARTITION BY HASH (a) PARTITIONS 0",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER) PARTITION BY HASH (a) PARTITIONS 1025",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER NOT NULL, b STRING) PARTITION BY RANGE (a) EVERY (10) \
             SUBPARTITION BY HASH (b) SUBPARTITIONS 0",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER NOT NULL, b STRING) PARTITION BY RANGE (a) EVERY (10) \
             SUBPARTITION BY HASH (b) SUBPARTITIONS 1025",
            "42P16",
        ),
        // Unknown partitioning column.
        (
            "CREATE TABLE e (a INTEGER PRIMARY KEY) PARTITION BY HASH (zz) PARTITIONS 2",
            "42703",
        ),
        // USING TIMESERIES needs a leading TIMESTAMP primary key, alone.
        (
            "CREATE TABLE e (a INTEGER PRIMARY KEY, b TIMESTAMP) USING TIMESERIES",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP, b INTEGER) USING TIMESERIES",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP, b INTEGER, PRIMARY KEY (a, b)) USING TIMESERIES",
            "42P16",
        ),
        (
            "CREATE TABLE e (b INTEGER, a TIMESTAMP PRIMARY KEY) USING TIMESERIES",
            "42P16",
        ),
        // Expiry only on interval(-hash) tables with a TIMESTAMP key.
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY, b INTEGER) USING TIMESERIES \
             WITH (expiration_time=1)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a INTEGER PRIMARY KEY) WITH (expiration_time=1) \
             PARTITION BY RANGE (a) EVERY (10)",
            "42P16",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (expiration_time=1) \
             PARTITION BY HASH (a) PARTITIONS 2",
            "42P16",
        ),
        // Options.
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (foo=1) PARTITION BY RANGE (a) EVERY (1, DAY)",
            "22023",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (expiration_time=0) \
             PARTITION BY RANGE (a) EVERY (1, DAY)",
            "22023",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (expiration_time=1, expiration_time_unit='MONTH') \
             PARTITION BY RANGE (a) EVERY (1, DAY)",
            "22023",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (expiration_time_unit='DAY') \
             PARTITION BY RANGE (a) EVERY (1, DAY)",
            "22023",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) USING TIMESERIES \
             WITH (expiration_type='ROW', expiration_time=1)",
            "0A000",
        ),
        (
            "CREATE TABLE e (a TIMESTAMP PRIMARY KEY) WITH (expiration_type='ROW', expiration_time=1) \
             PARTITION BY RANGE (a) EVERY (1, DAY)",
            "0A000",
        ),
    ];
    let mut wrong = Vec::new();
    // Width errors name the key's GridDB type and its range.
    let message = fails(
        &c,
        "CREATE TABLE e (a BYTE NOT NULL) PARTITION BY RANGE (a) EVERY (128)",
        "42P16",
    )
    .await;
    assert!(
        message.contains("BYTE") && message.contains("1 to 127"),
        "{message}"
    );
    for (sql, code) in cases {
        match within(sql, c.batch_execute(sql)).await {
            Ok(()) => {
                wrong.push(format!("{sql}\n  succeeded; expected {code}"));
                exec(&c, "DROP TABLE e").await;
            }
            Err(e) if sqlstate(&e) == Some(code) => {}
            Err(e) => wrong.push(format!("{sql}\n  failed with {e:?}; expected {code}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing was created by the failed statements.
    assert!(
        rows(&c, "SELECT table_name FROM \"#tables\"")
            .await
            .is_empty()
    );

    // The limits themselves are accepted.
    for sql in [
        "CREATE TABLE ok1 (a INTEGER) PARTITION BY HASH (a) PARTITIONS 1",
        "CREATE TABLE ok2 (a INTEGER) PARTITION BY HASH (a) PARTITIONS 1024",
        "CREATE TABLE ok3 (a LONG NOT NULL) PARTITION BY RANGE (a) EVERY (1000)",
        "CREATE TABLE ok4 (a BYTE NOT NULL) PARTITION BY RANGE (a) EVERY (127)",
        "CREATE TABLE ok5 (a SHORT NOT NULL) PARTITION BY RANGE (a) EVERY (32767)",
        "CREATE TABLE ok6 (a INTEGER NOT NULL) PARTITION BY RANGE (a) EVERY (2147483647)",
        "CREATE TABLE ok7 (a LONG NOT NULL, b STRING NOT NULL) PARTITION BY RANGE (a) EVERY (4000) \
         SUBPARTITION BY HASH (b) SUBPARTITIONS 4",
        "CREATE TABLE ok8 (a TIMESTAMP PRIMARY KEY) USING TIMESERIES",
        "CREATE TABLE ok9 (a TIMESTAMP(3) PRIMARY KEY, b INTEGER) USING TIMESERIES \
         WITH (EXPIRATION_TYPE='PARTITION', EXPIRATION_TIME=2147483647, EXPIRATION_TIME_UNIT='MILLISECOND') \
         PARTITION BY INTERVAL (a) EVERY (1, HOUR)",
        "CREATE TABLE ok10 (a INTEGER, b INTEGER) PARTITION BY HASH (b) PARTITIONS 3",
        "CREATE TABLE IF NOT EXISTS ok10 (a INTEGER) PARTITION BY HASH (a) PARTITIONS 7",
    ] {
        exec(&c, sql).await;
    }
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'ok2'"
        )
        .await,
        1024
    );
    assert_eq!(
        rows(
            &c,
            "SELECT partition_column, partition_division_count FROM \"#tables\" WHERE table_name = 'ok10'"
        )
        .await,
        ["b|3"],
        "IF NOT EXISTS keeps the existing table"
    );
}

#[tokio::test]
async fn dml_rules_report_their_sqlstate() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE h (id INTEGER PRIMARY KEY, s STRING) PARTITION BY HASH (id) PARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE ih (ts TIMESTAMP NOT NULL, dev STRING NOT NULL, v INTEGER, PRIMARY KEY (ts, dev)) \
         PARTITION BY RANGE (ts) EVERY (1, DAY) SUBPARTITION BY HASH (dev) SUBPARTITIONS 2",
    )
    .await;
    exec(&c, "INSERT INTO h VALUES (1, 'a'), (2, 'b')").await;
    exec(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 01:00:00', 'x', 1), ('2024-01-02 01:00:00', 'y', 2)",
    )
    .await;

    // Partitioning columns cannot be updated, not even to the same value.
    let message = fails(&c, "UPDATE h SET id = id + 10 WHERE id = 1", "23514").await;
    assert!(message.contains("\"id\""), "{message}");
    fails(&c, "UPDATE h SET id = 1 WHERE id = 1", "23514").await;
    fails(&c, "UPDATE ih SET ts = ts", "23514").await;
    fails(&c, "UPDATE ih SET dev = 'z' WHERE v = 1", "23514").await;
    fails(&c, "UPDATE ih SET v = 5, dev = 'z'", "23514").await;
    // Other columns can.
    assert_eq!(affected(&c, "UPDATE ih SET v = v + 10").await, 2);
    assert_eq!(affected(&c, "UPDATE h SET s = 'c' WHERE id = 2").await, 1);
    assert_eq!(
        rows(&c, "SELECT id, s FROM h ORDER BY id").await,
        ["1|a", "2|c"]
    );

    // DROP PARTITION applies to interval tables only.
    fails(&c, "ALTER TABLE h DROP PARTITION FOR (1)", "42809").await;
    exec(&c, "CREATE TABLE plain (a INTEGER)").await;
    fails(&c, "ALTER TABLE plain DROP PARTITION FOR (1)", "42809").await;
    fails(&c, "ALTER TABLE missing DROP PARTITION FOR (1)", "42P01").await;
    fails(&c, "ALTER TABLE ih DROP PARTITION FOR ('garbage')", "42804").await;
    // A number names no instant of a TIMESTAMP key.
    let message = fails(&c, "ALTER TABLE ih DROP PARTITION FOR (5)", "42804").await;
    assert!(
        message.contains("TIMESTAMP") || message.contains("timestamp"),
        "{message}"
    );

    // Inserting into a dropped interval.
    exec(
        &c,
        "ALTER TABLE ih DROP PARTITION FOR ('2024-01-01 12:00:00')",
    )
    .await;
    fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 02:00:00', 'x', 1)",
        "23514",
    )
    .await;
    // Also inside an explicit transaction, and the rest of it is rolled back with it.
    exec(&c, "BEGIN").await;
    exec(&c, "INSERT INTO ih VALUES ('2024-01-03 02:00:00', 'x', 3)").await;
    fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 03:00:00', 'x', 1)",
        "23514",
    )
    .await;
    exec(&c, "ROLLBACK").await;
    assert_eq!(
        rows(&c, "SELECT dev, v FROM ih ORDER BY ts").await,
        ["y|12"]
    );
    // A NULL hash key is fine (bucket 0); a NULL interval key is refused by NOT NULL.
    exec(
        &c,
        "CREATE TABLE hn (a INTEGER, b INTEGER) PARTITION BY HASH (a) PARTITIONS 4",
    )
    .await;
    exec(&c, "INSERT INTO hn VALUES (NULL, 1), (3, 2)").await;
    assert_eq!(rows(&c, "SELECT b FROM hn WHERE a IS NULL").await, ["1"]);
    fails(&c, "INSERT INTO ih VALUES (NULL, 'x', 1)", "23502").await;
}

#[tokio::test]
async fn test_clock_needs_the_hidden_flag() {
    let server = TestServer::start();
    let c = server.connect().await;
    fails(&c, "SET kura.test_clock = '2100-01-01 00:00:00'", "42501").await;
    fails(&c, "SET kura.test_clock = 'system'", "42501").await;

    let clocked = TestServer::start_with_args(&["--test-clock"]);
    let c = clocked.connect().await;
    set_clock(&c, "2100-01-01 00:00:00").await;
    assert_eq!(
        rows(&c, "SHOW kura.test_clock").await,
        ["2100-01-01T00:00:00.000Z"]
    );
    // RFC 3339 with an offset is accepted and shown in UTC.
    set_clock(&c, "2100-01-01T09:30:00.250+09:00").await;
    assert_eq!(
        rows(&c, "SHOW kura.test_clock").await,
        ["2100-01-01T00:30:00.250Z"]
    );
    // The clock is the server's: another session sees it.
    let other = clocked.connect().await;
    assert_eq!(
        rows(&other, "SHOW kura.test_clock").await,
        ["2100-01-01T00:30:00.250Z"]
    );
    fails(&c, "SET kura.test_clock = 'yesterday'", "22023").await;
    set_clock(&c, "system").await;
    let now = rows(&c, "SHOW kura.test_clock").await;
    assert!(now[0].as_str() < "2100", "system time again: {now:?}");
}

/// `NOW()` should follow the server clock (`src/clock.rs`: the clock "decides when data
/// partitions expire and what `NOW()` is").
#[tokio::test]
async fn now_follows_the_server_clock() {
    let server = TestServer::start_with_args(&["--test-clock"]);
    let c = server.connect().await;
    let first = rows(&c, "SELECT now()").await;
    wait_until("now() advances", Duration::from_secs(5), || async {
        rows(&c, "SELECT now()").await != first
    })
    .await;
    set_clock(&c, "2100-01-01 00:00:00").await;
    let now = rows(&c, "SELECT now()").await;
    assert!(now[0].starts_with("2100-01-01"), "{now:?}");
}

// ---------------------------------------------------------------------------------------
// Primary keys across partitions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn primary_keys_are_unique_across_partitions() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE h (id INTEGER PRIMARY KEY, s STRING) PARTITION BY HASH (id) PARTITIONS 8",
    )
    .await;
    exec(
        &c,
        "INSERT INTO h SELECT x, 'v' || x FROM generate_series(1, 50) t(x)",
    )
    .await;
    fails(&c, "INSERT INTO h VALUES (7, 'again')", "23505").await;
    fails(&c, "INSERT INTO h VALUES (100, 'a'), (100, 'b')", "23505").await;
    fails(
        &c,
        "INSERT INTO h VALUES (101, 'a'), (102, 'b'), (3, 'c')",
        "23505",
    )
    .await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM h").await, 50);
    assert_eq!(rows(&c, "SELECT s FROM h WHERE id = 7").await, ["v7"]);
    // After a DELETE the key is free again.
    exec(&c, "DELETE FROM h WHERE id = 7").await;
    exec(&c, "INSERT INTO h VALUES (7, 'new')").await;
    assert_eq!(rows(&c, "SELECT s FROM h WHERE id = 7").await, ["new"]);

    // Interval-hash with a composite key: same time, other device is fine; same pair is not.
    exec(
        &c,
        "CREATE TABLE ih (ts TIMESTAMP NOT NULL, dev INTEGER NOT NULL, PRIMARY KEY (ts, dev)) \
         PARTITION BY RANGE (ts) EVERY (1, HOUR) SUBPARTITION BY HASH (dev) SUBPARTITIONS 4",
    )
    .await;
    exec(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 00:00:00', 1), ('2024-01-01 00:00:00', 2), ('2024-01-01 01:00:00', 1)",
    )
    .await;
    fails(
        &c,
        "INSERT INTO ih VALUES ('2024-01-01 00:00:00', 2)",
        "23505",
    )
    .await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM ih").await, 3);
}

#[tokio::test]
async fn rowkey_constraint_off_makes_keys_unique_per_partition_only() {
    let node = Node::new(
        Some(r#"{"sql": {"partitioningRowkeyConstraint": false}}"#),
        false,
    );
    let server = node.start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE r (a INTEGER PRIMARY KEY, b INTEGER) PARTITION BY HASH (b) PARTITIONS 4",
    )
    .await;
    // The same key a = 1 with different b: accepted whenever b lands in a bucket that does not
    // hold a = 1 yet, refused (23505) in a bucket that does.
    let mut accepted = Vec::new();
    for b in 0..16 {
        let sql = format!("INSERT INTO r VALUES (1, {b})");
        match within(&sql, c.batch_execute(&sql)).await {
            Ok(()) => accepted.push(b),
            Err(e) => assert_eq!(sqlstate(&e), Some("23505"), "{sql}: {e:?}"),
        }
    }
    assert!(
        accepted.len() >= 2,
        "a = 1 should be accepted in several partitions: {accepted:?}"
    );
    let counts = rows(
        &c,
        "SELECT num_rows FROM \"#table_partitions\" WHERE table_name = 'r' AND num_rows > 0",
    )
    .await;
    assert_eq!(counts.len(), accepted.len(), "{counts:?}");
    assert!(counts.iter().all(|n| n == "1"), "{counts:?}");
    let expected: Vec<String> = accepted.iter().map(|b| format!("1|{b}")).collect();
    assert_eq!(
        rows(&c, "SELECT a, b FROM r WHERE a = 1 ORDER BY b").await,
        expected
    );
    // The same row in its own partition is still a duplicate.
    fails(
        &c,
        &format!("INSERT INTO r VALUES (1, {})", accepted[0]),
        "23505",
    )
    .await;
    // Interval partitioning on a non-key column is allowed too.
    exec(
        &c,
        "CREATE TABLE ri (a INTEGER PRIMARY KEY, k INTEGER NOT NULL) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    exec(&c, "INSERT INTO ri VALUES (1, 5)").await;
    exec(&c, "INSERT INTO ri VALUES (1, 15)").await;
    fails(&c, "INSERT INTO ri VALUES (1, 6)", "23505").await;
    assert_eq!(
        rows(&c, "SELECT a, k FROM ri ORDER BY k").await,
        ["1|5", "1|15"]
    );
}

/// With `/sql/partitioningRowkeyConstraint` off, one statement (or one transaction) writing the
/// same key into different data partitions must be accepted, as separate autocommit
/// statements are. `write_inserts` (src/sql/dml.rs) checks the statement's keys (`seen`) and
/// the transaction's private inserts (`find_live` → `private_key`) by key alone, not by
/// (data partition, key).
#[tokio::test]
async fn rowkey_constraint_off_accepts_one_statement_spanning_partitions() {
    let node = Node::new(
        Some(r#"{"sql": {"partitioningRowkeyConstraint": false}}"#),
        false,
    );
    let server = node.start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE ri (a INTEGER PRIMARY KEY, k INTEGER NOT NULL) PARTITION BY RANGE (k) EVERY (10)",
    )
    .await;
    exec(&c, "INSERT INTO ri VALUES (1, 5), (1, 15)").await;
    exec(
        &c,
        "BEGIN; INSERT INTO ri VALUES (2, 5); INSERT INTO ri VALUES (2, 15); COMMIT",
    )
    .await;
    exec(
        &c,
        "INSERT INTO ri SELECT 3, x FROM generate_series(1, 41, 10) t(x)",
    )
    .await;
    assert_eq!(
        rows(&c, "SELECT a, k FROM ri ORDER BY a, k").await,
        [
            "1|5", "1|15", "2|5", "2|15", "3|1", "3|11", "3|21", "3|31", "3|41"
        ]
    );
    // Within one partition the key is still unique.
    fails(&c, "INSERT INTO ri VALUES (4, 1), (4, 2)", "23505").await;
}

// ---------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------

const EXPIRY_TABLE: &str = "CREATE TABLE ex (ts TIMESTAMP PRIMARY KEY, v INTEGER) USING TIMESERIES \
     WITH (expiration_type='PARTITION', expiration_time=2, expiration_time_unit='DAY') \
     PARTITION BY RANGE (ts) EVERY (1, DAY)";

const EXPIRY_ROWS: &str = "INSERT INTO ex VALUES ('2100-01-01 01:00:00', 1), \
     ('2100-01-01 13:00:00', 2), ('2100-01-02 01:00:00', 3), ('2100-01-03 01:00:00', 4), \
     ('2100-01-04 01:00:00', 5)";

/// `"#table_partitions"` lower bounds and statuses of `ex`.
async fn ex_partitions(c: &Client) -> Vec<String> {
    rows(
        c,
        "SELECT partition_boundary_value, partition_status FROM \"#table_partitions\" \
         WHERE table_name = 'ex' ORDER BY partition_seq",
    )
    .await
}

/// Polls until the partition of `ex` starting at `lower` has been released by the reaper.
async fn wait_released(c: &Client, lower: &str) {
    let sql = format!(
        "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'ex' \
         AND partition_boundary_value = '{lower}'"
    );
    wait_until(
        &format!("the reaper releases ex's partition {lower}"),
        REAPER_TIMEOUT,
        || async { scalar_i64(c, &sql).await == 0 },
    )
    .await;
}

#[tokio::test]
async fn expired_partitions_are_invisible_and_released() {
    let server = TestServer::start_with_args(&["--test-clock"]);
    let c = server.connect().await;
    exec(&c, EXPIRY_TABLE).await;
    exec(&c, EXPIRY_ROWS).await;
    assert_eq!(
        rows(
            &c,
            "SELECT partition_boundary_value, partition_expired_check_time, partition_status \
             FROM \"#table_partitions\" WHERE table_name = 'ex' ORDER BY partition_seq"
        )
        .await,
        [
            "2100-01-01T00:00:00.000000Z|2100-01-04 00:00:00|ACTIVE",
            "2100-01-02T00:00:00.000000Z|2100-01-05 00:00:00|ACTIVE",
            "2100-01-03T00:00:00.000000Z|2100-01-06 00:00:00|ACTIVE",
            "2100-01-04T00:00:00.000000Z|2100-01-07 00:00:00|ACTIVE",
        ]
    );

    // Day 1 ends at 2100-01-02 00:00; with 2 days of retention it expires after 2100-01-04 00:00.
    set_clock(&c, "2100-01-04 00:00:00").await;
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["1", "2", "3", "4", "5"],
        "at the expiry instant itself nothing has expired"
    );
    assert!(
        ex_partitions(&c)
            .await
            .iter()
            .all(|p| p.ends_with("|ACTIVE")),
        "{:?}",
        ex_partitions(&c).await
    );

    // One millisecond later day 1 is expired. Read the status in the same batch as the clock
    // move, before the reaper (once a second) is likely to release it.
    let after = rows(
        &c,
        "SET kura.test_clock = '2100-01-04 00:00:00.001'; \
         SELECT partition_boundary_value, partition_status FROM \"#table_partitions\" \
         WHERE table_name = 'ex' ORDER BY partition_seq",
    )
    .await;
    let rest = [
        "2100-01-02T00:00:00.000000Z|ACTIVE",
        "2100-01-03T00:00:00.000000Z|ACTIVE",
        "2100-01-04T00:00:00.000000Z|ACTIVE",
    ];
    if after.len() == 4 {
        assert_eq!(after[0], "2100-01-01T00:00:00.000000Z|EXPIRED");
        assert_eq!(after[1..], rest);
    } else {
        eprintln!("the reaper released day 1 before its EXPIRED status could be read");
        assert_eq!(after, rest);
    }

    // Expired rows are invisible to every statement.
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["3", "4", "5"]
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM ex WHERE ts < '2100-01-02'").await,
        0
    );
    assert_eq!(
        rows(&c, "SELECT v FROM ex WHERE ts = '2100-01-01 01:00:00'").await,
        Vec::<String>::new()
    );
    assert_eq!(
        scanned(&c, "ex", "SELECT * FROM ex WHERE ts < '2100-01-02'")
            .await
            .0,
        0
    );
    assert_eq!(
        affected(&c, "UPDATE ex SET v = v + 100 WHERE ts < '2100-01-02'").await,
        0
    );
    assert_eq!(
        affected(&c, "DELETE FROM ex WHERE ts = '2100-01-01 13:00:00'").await,
        0
    );
    assert_eq!(affected(&c, "UPDATE ex SET v = v + 10").await, 3);
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["13", "14", "15"]
    );

    // An expired row is accepted and not stored (INSERT 0 0), even over an expired key.
    assert_eq!(
        affected(&c, "INSERT INTO ex VALUES ('2100-01-01 05:00:00', 9)").await,
        0
    );
    assert_eq!(
        affected(&c, "INSERT INTO ex VALUES ('2100-01-01 01:00:00', 9)").await,
        0
    );
    // Mixed: only the unexpired row is stored.
    assert_eq!(
        affected(
            &c,
            "INSERT INTO ex VALUES ('2100-01-01 06:00:00', 9), ('2100-01-05 06:00:00', 6)"
        )
        .await,
        1
    );
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["13", "14", "15", "6"]
    );

    // The reaper releases day 1 through the log.
    wait_released(&c, "2100-01-01T00:00:00.000000Z").await;
    assert_eq!(
        ex_partitions(&c).await,
        [
            "2100-01-02T00:00:00.000000Z|ACTIVE",
            "2100-01-03T00:00:00.000000Z|ACTIVE",
            "2100-01-04T00:00:00.000000Z|ACTIVE",
            "2100-01-05T00:00:00.000000Z|ACTIVE",
        ]
    );
    // Released rows are gone for good: moving the clock back does not bring them back.
    set_clock(&c, "2100-01-01 12:00:00").await;
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["13", "14", "15", "6"]
    );
    // ... and day 1 is an ordinary (not dropped) interval again.
    exec(&c, "INSERT INTO ex VALUES ('2100-01-01 01:00:00', 21)").await;
    assert_eq!(
        rows(&c, "SELECT v FROM ex WHERE ts < '2100-01-02'").await,
        ["21"]
    );

    // Much later everything expires and is released.
    set_clock(&c, "2100-02-01 00:00:00").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM ex").await, 0);
    wait_until("every partition released", REAPER_TIMEOUT, || async {
        ex_partitions(&c).await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn expiry_in_interval_hash_tables_covers_all_buckets() {
    let server = TestServer::start_with_args(&["--test-clock"]);
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE exh (ts TIMESTAMP NOT NULL, dev INTEGER NOT NULL, v INTEGER, PRIMARY KEY (ts, dev)) \
         WITH (expiration_time=6, expiration_time_unit='HOUR') \
         PARTITION BY RANGE (ts) EVERY (1, HOUR) SUBPARTITION BY HASH (dev) SUBPARTITIONS 4",
    )
    .await;
    let values: Vec<String> = (0..3)
        .flat_map(|h| (0..8).map(move |d| format!("('2100-01-01 {h:02}:30:00', {d}, {h})")))
        .collect();
    exec(&c, &format!("INSERT INTO exh VALUES {}", values.join(", "))).await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM exh").await, 24);
    // Hour 0 ends at 01:00 and expires after 07:00.
    set_clock(&c, "2100-01-01 07:00:00").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM exh").await, 24);
    set_clock(&c, "2100-01-01 07:00:00.001").await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM exh").await, 16);
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM exh WHERE dev = 3").await,
        2
    );
    assert_eq!(scalar_i64(&c, "SELECT min(v) FROM exh").await, 1);
    let sql = "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'exh' \
               AND partition_boundary_value = '2100-01-01T00:00:00.000000Z'";
    wait_until("hour 0 released", REAPER_TIMEOUT, || async {
        scalar_i64(&c, sql).await == 0
    })
    .await;
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM exh").await, 16);
}

#[tokio::test]
async fn released_partitions_stay_released_across_restarts() {
    let node = Node::new(None, true);
    let mut server = node.start();
    let c = server.connect().await;
    exec(&c, EXPIRY_TABLE).await;
    exec(&c, EXPIRY_ROWS).await;

    // Release day 1.
    set_clock(&c, "2100-01-04 00:00:00.001").await;
    wait_released(&c, "2100-01-01T00:00:00.000000Z").await;
    let day1_gone = [
        "2100-01-02T00:00:00.000000Z|ACTIVE",
        "2100-01-03T00:00:00.000000Z|ACTIVE",
        "2100-01-04T00:00:00.000000Z|ACTIVE",
    ];
    assert_eq!(ex_partitions(&c).await, day1_gone);
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["3", "4", "5"]
    );

    // Clean restart. The server starts on the system time, at which nothing in 2100 has
    // expired: day 1 must be missing because its release was logged, not because it expired.
    drop(c);
    assert!(server.terminate().success());
    let mut server = node.start();
    let c = server.connect().await;
    assert_eq!(ex_partitions(&c).await, day1_gone, "after SIGTERM");
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["3", "4", "5"]
    );
    set_clock(&c, "2100-01-04 00:00:00.001").await;
    assert_eq!(ex_partitions(&c).await, day1_gone);
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["3", "4", "5"]
    );

    // Release day 2 as well, then crash: log replay must not resurrect either day.
    set_clock(&c, "2100-01-05 00:00:00.001").await;
    wait_released(&c, "2100-01-02T00:00:00.000000Z").await;
    let days12_gone = [
        "2100-01-03T00:00:00.000000Z|ACTIVE",
        "2100-01-04T00:00:00.000000Z|ACTIVE",
    ];
    assert_eq!(ex_partitions(&c).await, days12_gone);
    drop(c);
    server.kill();
    let mut server = node.start();
    let c = server.connect().await;
    assert_eq!(ex_partitions(&c).await, days12_gone, "after SIGKILL");
    assert_eq!(rows(&c, "SELECT v FROM ex ORDER BY ts").await, ["4", "5"]);

    // New rows, a checkpoint, then a crash and a clean restart.
    exec(&c, "INSERT INTO ex VALUES ('2100-01-06 00:00:00', 6)").await;
    exec(&c, "CHECKPOINT").await;
    drop(c);
    server.kill();
    let mut server = node.start();
    let c = server.connect().await;
    let after_checkpoint = [
        "2100-01-03T00:00:00.000000Z|ACTIVE",
        "2100-01-04T00:00:00.000000Z|ACTIVE",
        "2100-01-06T00:00:00.000000Z|ACTIVE",
    ];
    assert_eq!(
        ex_partitions(&c).await,
        after_checkpoint,
        "after CHECKPOINT + SIGKILL"
    );
    assert_eq!(
        rows(&c, "SELECT v FROM ex ORDER BY ts").await,
        ["4", "5", "6"]
    );
    // A release after the checkpoint, then a crash: replayed on top of the checkpoint.
    set_clock(&c, "2100-01-06 00:00:00.001").await;
    wait_released(&c, "2100-01-03T00:00:00.000000Z").await;
    drop(c);
    server.kill();
    let mut server = node.start();
    let c = server.connect().await;
    assert_eq!(
        ex_partitions(&c).await,
        after_checkpoint[1..],
        "release after the checkpoint, then SIGKILL"
    );
    exec(&c, "CHECKPOINT").await;
    drop(c);
    assert!(server.terminate().success());
    let server = node.start();
    let c = server.connect().await;
    assert_eq!(
        ex_partitions(&c).await,
        after_checkpoint[1..],
        "after CHECKPOINT + SIGTERM"
    );
    set_clock(&c, "2100-01-06 00:00:00.001").await;
    assert_eq!(rows(&c, "SELECT v FROM ex ORDER BY ts").await, ["5", "6"]);
}

// ---------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------

/// Everything the persistence test compares: rows of every table, their partitions, and the
/// table metadata.
async fn everything(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM ph ORDER BY id",
        "SELECT * FROM pi ORDER BY k",
        "SELECT * FROM pih ORDER BY ts, dev",
        "SELECT * FROM pts ORDER BY ts",
        "SELECT table_name, partition_seq, partition_name, partition_boundary_value, \
         partition_upper_boundary_value, hash_bucket, num_rows, \
         partition_expired_check_time, partition_status \
         FROM \"#table_partitions\" ORDER BY table_name, partition_seq",
        "SELECT * FROM \"#tables\" ORDER BY table_name",
        "SELECT * FROM \"#index_info\" ORDER BY table_name, index_name, ordinal_position",
    ] {
        out.push(format!("-- {sql}"));
        out.extend(rows(c, sql).await);
    }
    out
}

#[tokio::test]
async fn partitioned_tables_survive_restarts() {
    let node = Node::new(None, false);
    let mut server = node.start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE ph (id INTEGER PRIMARY KEY, s STRING) PARTITION BY HASH (id) PARTITIONS 5",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE pi (k LONG PRIMARY KEY, v DOUBLE) PARTITION BY RANGE (k) EVERY (1000)",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE pih (ts TIMESTAMP NOT NULL, dev STRING NOT NULL, v INTEGER, PRIMARY KEY (ts, dev)) \
         PARTITION BY RANGE (ts) EVERY (6, HOUR) SUBPARTITION BY HASH (dev) SUBPARTITIONS 3",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE pts (ts TIMESTAMP(3) PRIMARY KEY, v INTEGER) USING TIMESERIES \
         WITH (expiration_time=30, expiration_time_unit='DAY') PARTITION BY RANGE (ts) EVERY (1, DAY)",
    )
    .await;
    exec(&c, "CREATE INDEX pih_v ON pih (v)").await;
    exec(
        &c,
        "INSERT INTO ph SELECT x, 's' || x FROM generate_series(1, 300) t(x)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO pi SELECT x * 37 - 5000, x * 0.5 FROM generate_series(0, 400) t(x)",
    )
    .await;
    let values: Vec<String> = (0..96)
        .flat_map(|h| {
            ["alpha", "beta", "gamma", "delta", "epsilon"]
                .into_iter()
                .map(move |d| format!("('{}', '{d}', {h})", hour_2024(h)))
        })
        .collect();
    exec(&c, &format!("INSERT INTO pih VALUES {}", values.join(", "))).await;
    exec(
        &c,
        "INSERT INTO pts VALUES ('2100-01-01 00:00:00', 1), ('2100-01-02 12:00:00.123', 2), ('2100-03-01 00:00:00', 3)",
    )
    .await;
    // Some changes after the inserts: updates, deletes, dropped intervals.
    exec(&c, "UPDATE ph SET s = 'changed' WHERE id % 7 = 0").await;
    exec(&c, "DELETE FROM ph WHERE id % 11 = 0").await;
    exec(&c, "DELETE FROM pi WHERE k BETWEEN 0 AND 1999").await;
    exec(&c, "ALTER TABLE pi DROP PARTITION FOR (-1)").await;
    exec(
        &c,
        "ALTER TABLE pih DROP PARTITION FOR ('2024-01-02 07:00:00')",
    )
    .await;
    exec(&c, "UPDATE pih SET v = -v WHERE dev = 'beta'").await;
    let before = everything(&c).await;
    assert!(before.len() > 500, "{} lines", before.len());

    let check = |label: &'static str| {
        let before = before.clone();
        move |after: Vec<String>| {
            if after != before {
                let diff: Vec<String> = before
                    .iter()
                    .zip(after.iter())
                    .filter(|(a, b)| a != b)
                    .take(10)
                    .map(|(a, b)| format!("  before: {a}\n  after:  {b}"))
                    .collect();
                panic!(
                    "{label}: {} lines before, {} after; first differences:\n{}",
                    before.len(),
                    after.len(),
                    diff.join("\n")
                );
            }
        }
    };

    drop(c);
    assert!(server.terminate().success());
    let mut server = node.start();
    let c = server.connect().await;
    check("after SIGTERM")(everything(&c).await);

    drop(c);
    server.kill();
    let mut server = node.start();
    let c = server.connect().await;
    check("after SIGKILL")(everything(&c).await);

    exec(&c, "CHECKPOINT").await;
    drop(c);
    server.kill();
    let server = node.start();
    let c = server.connect().await;
    check("after CHECKPOINT + SIGKILL")(everything(&c).await);

    // Placement still works the same way: dropped intervals stay dropped, keys stay unique,
    // new rows go where they belong, and pruning still applies.
    fails(&c, "INSERT INTO pi VALUES (-500, 0)", "23514").await;
    fails(
        &c,
        "INSERT INTO pih VALUES ('2024-01-02 06:00:00', 'zeta', 0)",
        "23514",
    )
    .await;
    fails(&c, "INSERT INTO ph VALUES (1, 'dup')", "23505").await;
    exec(&c, "INSERT INTO ph VALUES (1001, 'new')").await;
    assert_eq!(
        scanned(&c, "ph", "SELECT * FROM ph WHERE id = 1001").await,
        (1, 5)
    );
    assert_eq!(rows(&c, "SELECT s FROM ph WHERE id = 1001").await, ["new"]);
    assert_eq!(
        scanned(
            &c,
            "pih",
            "SELECT * FROM pih WHERE ts >= '2024-01-01 00:00:00' AND ts < '2024-01-01 06:00:00' AND dev = 'alpha'"
        )
        .await
        .0,
        1
    );
}

// ---------------------------------------------------------------------------------------
// Metatables
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metatables_describe_each_table_kind() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE coll (id INTEGER PRIMARY KEY, name STRING, score DOUBLE, t TIMESTAMP(3), \
         s VARCHAR(10) NOT NULL)",
    )
    .await;
    exec(&c, "CREATE INDEX idx_ns ON coll (name, score)").await;
    exec(&c, "CREATE INDEX idx_t ON coll (t)").await;
    exec(
        &c,
        "CREATE TABLE hsh (id LONG PRIMARY KEY, v INTEGER) PARTITION BY HASH (id) PARTITIONS 16",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE ivl (k INTEGER NOT NULL, v INTEGER) PARTITION BY RANGE (k) EVERY (100)",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE ivh (ts TIMESTAMP NOT NULL, dev STRING NOT NULL, PRIMARY KEY (ts, dev)) \
         WITH (expiration_type='PARTITION', expiration_time=90, expiration_time_unit='HOUR') \
         PARTITION BY RANGE (ts) EVERY (12, HOUR) SUBPARTITION BY HASH (dev) SUBPARTITIONS 8",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE tsr (ts TIMESTAMP(3) PRIMARY KEY, v DOUBLE) USING TIMESERIES \
         WITH (expiration_time=30) PARTITION BY RANGE (ts) EVERY (7, DAY)",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE tsp (ts TIMESTAMP PRIMARY KEY, v DOUBLE) USING TIMESERIES",
    )
    .await;
    exec(&c, "CREATE VIEW vw AS SELECT id FROM coll").await;

    assert_eq!(
        rows(
            &c,
            "SELECT table_name, table_optional_type, partition_type, partition_column, \
             partition_interval_value, partition_interval_unit, partition_division_count, \
             subpartition_type, subpartition_column, subpartition_interval_value, \
             subpartition_interval_unit, subpartition_division_count, \
             expiration_type, expiration_time, expiration_time_unit, expiration_division_count, \
             data_affinity FROM \"#tables\" ORDER BY table_name"
        )
        .await,
        [
            "coll|COLLECTION|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
            "hsh|COLLECTION|HASH|id|NULL|NULL|16|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
            "ivh|COLLECTION|INTERVAL|ts|12|HOUR|NULL|HASH|dev|NULL|NULL|8|PARTITION|90|HOUR|NULL|NULL",
            "ivl|COLLECTION|INTERVAL|k|100|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
            "tsp|TIMESERIES|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
            "tsr|TIMESERIES|INTERVAL|ts|7|DAY|NULL|NULL|NULL|NULL|NULL|NULL|PARTITION|30|DAY|NULL|NULL",
        ]
    );
    assert_eq!(
        rows(&c, "SELECT DISTINCT database_name FROM \"#tables\"").await,
        rows(&c, "SELECT database_name FROM \"#databases\"").await
    );

    assert_eq!(
        rows(
            &c,
            "SELECT table_name, ordinal_position, column_name, type_name, nullable, decimal_digits, \
             char_octet_length FROM \"#columns\" WHERE table_name IN ('coll', 'ivh', 'tsr') \
             ORDER BY table_name, ordinal_position"
        )
        .await,
        [
            "coll|1|id|INTEGER|f|NULL|NULL",
            "coll|2|name|STRING|t|NULL|NULL",
            "coll|3|score|DOUBLE|t|NULL|NULL",
            "coll|4|t|TIMESTAMP|t|3|NULL",
            "coll|5|s|STRING|f|NULL|40",
            "ivh|1|ts|TIMESTAMP|f|6|NULL",
            "ivh|2|dev|STRING|f|NULL|NULL",
            "tsr|1|ts|TIMESTAMP|f|3|NULL",
            "tsr|2|v|DOUBLE|t|NULL|NULL",
        ]
    );

    assert_eq!(
        rows(
            &c,
            "SELECT table_name, column_name, key_seq FROM \"#primary_keys\" \
             ORDER BY table_name, key_seq"
        )
        .await,
        [
            "coll|id|1",
            "hsh|id|1",
            "ivh|ts|1",
            "ivh|dev|2",
            "tsp|ts|1",
            "tsr|ts|1",
        ]
    );

    assert_eq!(
        rows(
            &c,
            "SELECT table_name, index_name, index_type, ordinal_position, column_name \
             FROM \"#index_info\" WHERE table_name = 'coll' ORDER BY index_name, ordinal_position"
        )
        .await,
        [
            "coll|coll_pkey|TREE|1|id",
            "coll|idx_ns|TREE|1|name",
            "coll|idx_ns|TREE|2|score",
            "coll|idx_t|TREE|1|t",
        ]
    );
    exec(&c, "DROP INDEX idx_ns").await;
    assert_eq!(
        rows(
            &c,
            "SELECT index_name, column_name FROM \"#index_info\" WHERE table_name = 'coll' \
             ORDER BY index_name, ordinal_position"
        )
        .await,
        ["coll_pkey|id", "idx_t|t"]
    );

    assert_eq!(
        rows(&c, "SELECT view_name, view_definition FROM \"#views\"").await,
        ["vw|SELECT id FROM coll"]
    );

    // Unpartitioned tables have one data partition, with no bounds or bucket.
    assert_eq!(
        partitions(&c, "coll").await,
        ["0|coll@0_0|NULL|NULL|NULL|0|ACTIVE"]
    );
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM \"#table_partitions\" WHERE table_name = 'hsh'"
        )
        .await,
        16
    );
    assert!(partitions(&c, "ivh").await.is_empty());
    // (In 2100, so that the 90-hour retention has not run out by the real clock.)
    exec(&c, "INSERT INTO ivh VALUES ('2100-01-01 13:00:00', 'a')").await;
    let p = rows(
        &c,
        "SELECT partition_boundary_value, partition_upper_boundary_value, \
         partition_expired_check_time, cluster_partition_index, worker_index \
         FROM \"#table_partitions\" WHERE table_name = 'ivh'",
    )
    .await;
    assert_eq!(
        p,
        ["2100-01-01T12:00:00.000000Z|2100-01-02T00:00:00.000000Z|2100-01-05 18:00:00|0|0"]
    );

    // Metatables are read-only.
    let e = within(
        "insert into #tables",
        c.batch_execute("INSERT INTO \"#tables\" (table_name) VALUES ('x')"),
    )
    .await
    .expect_err("metatables are read-only");
    assert!(e.code().is_some(), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// Parallel scans
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn large_scans_over_many_partitions_run_in_parallel() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipped: the server plans one scan partition per CPU and there is only one");
        return;
    }
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE par (k INTEGER PRIMARY KEY, v INTEGER) PARTITION BY HASH (k) PARTITIONS 8",
    )
    .await;
    exec(
        &c,
        "INSERT INTO par SELECT x, x % 100 FROM generate_series(1, 120000) t(x)",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE small (k INTEGER PRIMARY KEY, v INTEGER) PARTITION BY HASH (k) PARTITIONS 8",
    )
    .await;
    exec(
        &c,
        "INSERT INTO small SELECT x, x % 100 FROM generate_series(1, 1000) t(x)",
    )
    .await;

    // Under an aggregate, a single-partition scan is spread by a RepartitionExec with
    // input_partitions=1 right above it; a parallel scan needs none.
    let plan_of = |sql: &'static str| {
        let c = &c;
        async move { rows(c, &format!("EXPLAIN {sql}")).await.join("\n") }
    };
    let single_input = |plan: &str, table: &str| {
        let lines: Vec<&str> = plan.lines().collect();
        let scan = lines
            .iter()
            .position(|l| l.contains(&format!("KuraScanExec: table={table},")))
            .unwrap_or_else(|| panic!("no scan of {table}:\n{plan}"));
        scan > 0 && lines[scan - 1].contains("input_partitions=1")
    };
    let small = plan_of("SELECT sum(v) FROM small WHERE v = 3").await;
    assert!(
        small.contains("data_partitions=8/8") && single_input(&small, "small"),
        "a small table is scanned by one partition:\n{small}"
    );
    let large = plan_of("SELECT * FROM par WHERE v = 3").await;
    assert!(
        large.contains("data_partitions=8/8") && !single_input(&large, "par"),
        "a large table is scanned by several partitions:\n{large}"
    );
    let aggregate = plan_of("SELECT sum(v) FROM par").await;
    assert!(
        aggregate.contains("CoalescePartitionsExec") && !single_input(&aggregate, "par"),
        "{aggregate}"
    );
    // And the parallel results are complete.
    assert_eq!(
        rows(&c, "SELECT count(*), sum(v), count(DISTINCT k) FROM par").await,
        ["120000|5940000|120000"]
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM par WHERE v = 3").await,
        1200
    );
}
