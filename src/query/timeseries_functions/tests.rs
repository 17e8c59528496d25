//! End-to-end checks of the time-series functions through a session (parse → plan → execute
//! over Kura tables), against values computed by hand.

use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ParamValues;
use futures::StreamExt;

use crate::error::{KuraError, sqlstate};
use crate::query::{DatabaseOptions, Engine};
use crate::session::{Session, SessionLimits};
use crate::sql::{Outcome, parse_sql};

fn session() -> Session {
    Session::new(
        Engine::new(DatabaseOptions::default()),
        SessionLimits::from_config(&crate::config::Config::default()),
    )
}

/// Runs `sql` (one or more statements); the rows of the last one, each as `|`-joined text.
async fn run(session: &mut Session, sql: &str) -> Result<Vec<String>, KuraError> {
    let mut rows = Vec::new();
    let statements = sql
        .split(";\n")
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| parse_sql(text.trim_end_matches(';')))
        .collect::<Result<Vec<_>, _>>()?;
    for statement in statements.into_iter().flatten() {
        rows.clear();
        let outcome = session
            .execute(&statement, &ParamValues::List(vec![]))
            .await?;
        if let Outcome::Rows { mut stream, .. } = outcome {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(KuraError::from)?;
                for row in 0..batch.num_rows() {
                    let fields: Vec<String> = batch
                        .columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(row) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(c, row).unwrap_or_default()
                            }
                        })
                        .collect();
                    rows.push(fields.join("|"));
                }
            }
        }
    }
    Ok(rows)
}

async fn rows(session: &mut Session, sql: &str) -> Vec<String> {
    run(session, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e} ({})", e.code))
}

async fn error(session: &mut Session, sql: &str) -> KuraError {
    match run(session, sql).await {
        Ok(rows) => panic!("{sql} succeeded with {rows:?}"),
        Err(e) => e,
    }
}

/// Rows at 0, 10, 20 and 40 s: v = 4, 3, 2, 1 (the spec's TIME_AVG example); i has a NULL at
/// 10 s.
const SETUP: &str = "
    CREATE TABLE s (ts TIMESTAMP(3) PRIMARY KEY, v DOUBLE, i INTEGER, label STRING) USING TIMESERIES;
    INSERT INTO s VALUES
        ('2024-01-01 00:00:00', 4, 40, 'a'),
        ('2024-01-01 00:00:10', 3, NULL, 'b'),
        ('2024-01-01 00:00:20', 2, 20, 'c'),
        ('2024-01-01 00:00:40', 1, 10, 'd');
    CREATE TABLE empty (ts TIMESTAMP PRIMARY KEY, v DOUBLE) USING TIMESERIES;
    CREATE TABLE one (ts TIMESTAMP PRIMARY KEY, v INTEGER) USING TIMESERIES;
    INSERT INTO one VALUES ('2024-01-01 12:00:00', 7);
    CREATE TABLE plain (id INTEGER PRIMARY KEY, ts TIMESTAMP, v DOUBLE);
    CREATE VIEW sv AS SELECT * FROM s;
";

async fn setup() -> Session {
    let mut session = session();
    rows(&mut session, SETUP).await;
    session
}

fn at(seconds: &str) -> String {
    format!("TIMESTAMP '2024-01-01 00:00:{seconds}'")
}

#[tokio::test]
async fn selection_functions_pick_the_nearest_row() {
    let mut s = setup().await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("time_next", "10", &["2024-01-01T00:00:10|3.0|NULL|b"]),
        ("time_next", "11", &["2024-01-01T00:00:20|2.0|20|c"]),
        ("time_next", "40", &["2024-01-01T00:00:40|1.0|10|d"]),
        ("time_next", "41", &[]),
        ("time_next_only", "10", &["2024-01-01T00:00:20|2.0|20|c"]),
        ("time_next_only", "40", &[]),
        ("time_prev", "10", &["2024-01-01T00:00:10|3.0|NULL|b"]),
        ("time_prev", "39.999", &["2024-01-01T00:00:20|2.0|20|c"]),
        ("time_prev", "00", &["2024-01-01T00:00:00|4.0|40|a"]),
        ("time_prev_only", "10", &["2024-01-01T00:00:00|4.0|40|a"]),
        ("time_prev_only", "00", &[]),
        // Finer than the key's milliseconds: 10.000 < 10.0005 < 20.000.
        ("time_next", "10.0005", &["2024-01-01T00:00:20|2.0|20|c"]),
        (
            "time_prev_only",
            "10.0005",
            &["2024-01-01T00:00:10|3.0|NULL|b"],
        ),
        (
            "time_next_only",
            "09.9995",
            &["2024-01-01T00:00:10|3.0|NULL|b"],
        ),
        ("time_prev", "09.9995", &["2024-01-01T00:00:00|4.0|40|a"]),
    ];
    for (function, t, want) in cases {
        let sql = format!("SELECT * FROM {function}('s', {})", at(t));
        assert_eq!(rows(&mut s, &sql).await, *want, "{sql}");
    }
    // Before the first row and after the last; the time as text, a date and now().
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM time_next('s', '2023-12-31 23:59:59')"
        )
        .await,
        ["a"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM time_prev('s', DATE '2024-01-02')"
        )
        .await,
        ["d"]
    );
    assert_eq!(
        rows(&mut s, "SELECT label FROM time_prev('s', now())").await,
        ["d"]
    );
    assert!(
        rows(&mut s, "SELECT label FROM time_next('s', now())")
            .await
            .is_empty()
    );
    // GridDB's spelling: any case, the table as a bare name; constant expressions fold.
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM TIME_NEXT(S, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '15 seconds')"
        )
        .await,
        ["c"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM Time_Prev_Only(\"s\", '2024-01-01 00:00:20')"
        )
        .await,
        ["b"]
    );
    // A NULL time selects nothing; the result joins and filters like any relation.
    assert!(
        rows(&mut s, "SELECT * FROM time_next('s', NULL)")
            .await
            .is_empty()
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT n.label, p.label FROM time_next('s', '2024-01-01 00:00:05') n, \
             time_prev('s', '2024-01-01 00:00:05') p WHERE n.v < p.v"
        )
        .await,
        ["b|a"]
    );
    // Empty table.
    assert!(
        rows(&mut s, "SELECT * FROM time_prev('empty', now())")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn interpolation_builds_rows_between_neighbours() {
    let mut s = setup().await;
    let cases: &[(&str, &str, &[&str])] = &[
        // Exact hit: the row itself.
        ("v", "10", &["2024-01-01T00:00:10|3.0|NULL|b"]),
        // Halfway between 10 (3) and 20 (2); the rest copies the earlier row.
        ("v", "15", &["2024-01-01T00:00:15|2.5|NULL|b"]),
        // 2 + (1 - 2) * 10/20.
        ("v", "30", &["2024-01-01T00:00:30|1.5|20|c"]),
        // i: 20 + (10 - 20) * 5/20 = 17.5, truncated to the INTEGER column.
        ("i", "25", &["2024-01-01T00:00:25|2.0|17|c"]),
        ("i", "30", &["2024-01-01T00:00:30|2.0|15|c"]),
        // A NULL neighbour value gives NULL.
        ("i", "05", &["2024-01-01T00:00:05|4.0|NULL|a"]),
        ("i", "10", &["2024-01-01T00:00:10|3.0|NULL|b"]),
        // No neighbour on one side: no row.
        ("v", "41", &[]),
    ];
    for (column, t, want) in cases {
        let sql = format!(
            "SELECT * FROM time_interpolated('s', '{column}', {})",
            at(t)
        );
        assert_eq!(rows(&mut s, &sql).await, *want, "{sql}");
    }
    assert!(
        rows(
            &mut s,
            "SELECT * FROM time_interpolated(s, v, '2023-12-31 23:59:59')"
        )
        .await
        .is_empty()
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT v FROM TIME_INTERPOLATED(one, v, '2024-01-01 12:00:00')"
        )
        .await,
        ["7"]
    );
    assert!(
        rows(
            &mut s,
            "SELECT v FROM time_interpolated(one, v, '2024-01-01 12:00:01')"
        )
        .await
        .is_empty()
    );
    assert!(
        rows(&mut s, "SELECT v FROM time_interpolated(empty, v, now())")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn sampling_interpolates_copies_and_skips_the_ends() {
    let mut s = setup().await;
    let sampled = rows(
        &mut s,
        "SELECT ts, v, i, label FROM time_sampling('s', 'v', '2023-12-31 23:59:55', \
         '2024-01-01 00:00:50', 5, 'SECOND')",
    )
    .await;
    assert_eq!(
        sampled,
        [
            "2024-01-01T00:00:00|4.0|40|a",
            "2024-01-01T00:00:05|3.5|40|a",
            "2024-01-01T00:00:10|3.0|NULL|b",
            "2024-01-01T00:00:15|2.5|NULL|b",
            "2024-01-01T00:00:20|2.0|20|c",
            "2024-01-01T00:00:25|1.75|20|c",
            "2024-01-01T00:00:30|1.5|20|c",
            "2024-01-01T00:00:35|1.25|20|c",
            "2024-01-01T00:00:40|1.0|10|d",
        ]
    );
    // `*`: copies of the earlier row at every sample time.
    let sampled = rows(
        &mut s,
        "SELECT * FROM TIME_SAMPLING(s, *, TIMESTAMP '2024-01-01 00:00:05', \
         TIMESTAMP '2024-01-01 00:00:25', 10, SECOND)",
    )
    .await;
    assert_eq!(
        sampled,
        [
            "2024-01-01T00:00:05|4.0|40|a",
            "2024-01-01T00:00:15|3.0|NULL|b",
            "2024-01-01T00:00:25|2.0|20|c",
        ]
    );
    // Interpolating i: NULL next to the NULL at 10 s.
    assert_eq!(
        rows(
            &mut s,
            "SELECT i FROM time_sampling(s, i, '2024-01-01', '2024-01-01 00:00:30', 5, 'second')"
        )
        .await,
        ["40", "NULL", "NULL", "NULL", "20", "17", "15"]
    );
    // Fine steps over a long range, cut by LIMIT/OFFSET and reordered by ORDER BY.
    assert_eq!(
        rows(
            &mut s,
            "SELECT ts, v FROM time_sampling(s, v, '2024-01-01', '2024-01-02', 1, MILLISECOND) \
             LIMIT 2 OFFSET 1"
        )
        .await,
        [
            "2024-01-01T00:00:00.001|3.9999",
            "2024-01-01T00:00:00.002|3.9998"
        ]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT count(*), min(v), max(v) FROM time_sampling(s, v, '2024-01-01', '2024-01-02', 1, MILLISECOND)"
        )
        .await,
        ["40001|1.0|4.0"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM time_sampling(s, v, '2024-01-01', '2024-01-02', 1, MINUTE)"
        )
        .await,
        ["a"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT ts FROM time_sampling(s, '*', '2024-01-01', '2024-01-01 00:00:40', 20, 'SECOND') \
             ORDER BY ts DESC"
        )
        .await,
        ["2024-01-01T00:00:40", "2024-01-01T00:00:20", "2024-01-01T00:00:00"]
    );
    // Start after end, a NULL bound, an empty table, a single row.
    for sql in [
        "SELECT * FROM time_sampling(s, v, '2024-01-01 00:00:10', '2024-01-01', 1, 'SECOND')",
        "SELECT * FROM time_sampling(s, v, NULL, '2024-01-01', 1, 'SECOND')",
        "SELECT * FROM time_sampling(empty, v, '2024-01-01', '2024-01-02', 1, 'HOUR')",
        "SELECT * FROM time_sampling(one, v, '2024-01-01 12:30:00', '2024-01-02', 1, 'HOUR')",
    ] {
        assert!(rows(&mut s, sql).await.is_empty(), "{sql}");
    }
    assert_eq!(
        rows(
            &mut s,
            "SELECT * FROM time_sampling(one, v, '2024-01-01', '2024-01-02', 1, 'HOUR')"
        )
        .await,
        ["2024-01-01T12:00:00|7"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT count(*) FROM time_sampling(one, v, '2024-01-01', '2024-01-02', 1, 'DAY')"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn time_avg_weights_rows_by_time() {
    let mut s = setup().await;
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, v) FROM s").await,
        ["2.25"]
    );
    assert_eq!(
        rows(&mut s, "SELECT TIME_AVG(v ORDER BY ts) FROM s").await,
        ["2.25"]
    );
    // NULL values are skipped: i at 0, 20, 40 = 40, 20, 10 with weights 10, 20, 10.
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, i) FROM s").await,
        ["22.5"]
    );
    // WHERE narrows the rows: 3, 2 at 10, 20 s.
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, v) FROM s WHERE ts BETWEEN '2024-01-01 00:00:10' AND '2024-01-01 00:00:20'")
            .await,
        ["2.5"]
    );
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, v) FROM one").await,
        ["7.0"]
    );
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, v) FROM empty").await,
        ["NULL"]
    );
    assert_eq!(
        rows(&mut s, "SELECT time_avg(ts, i) FROM s WHERE label = 'b'").await,
        ["NULL"]
    );
    // Per group.
    assert_eq!(
        rows(
            &mut s,
            "SELECT label < 'c', time_avg(ts, v) FROM s GROUP BY 1 ORDER BY 1"
        )
        .await,
        ["false|1.5", "true|3.5"]
    );
}

#[tokio::test]
async fn reads_the_statement_snapshot_and_partitions() {
    let mut s = setup().await;
    rows(
        &mut s,
        "BEGIN;\nINSERT INTO s VALUES ('2024-01-01 00:00:50', 0, 0, 'e')",
    )
    .await;
    assert_eq!(
        rows(
            &mut s,
            "SELECT label FROM time_next('s', '2024-01-01 00:00:41')"
        )
        .await,
        ["e"]
    );
    rows(&mut s, "ROLLBACK").await;
    assert!(
        rows(
            &mut s,
            "SELECT label FROM time_next('s', '2024-01-01 00:00:41')"
        )
        .await
        .is_empty()
    );
    rows(
        &mut s,
        "CREATE TABLE p (ts TIMESTAMP PRIMARY KEY, v DOUBLE) USING TIMESERIES \
         PARTITION BY RANGE (ts) EVERY (1, DAY);
         INSERT INTO p VALUES ('2024-01-01 12:00:00', 1), ('2024-01-03 12:00:00', 3), ('2024-01-05 12:00:00', 5)",
    )
    .await;
    assert_eq!(
        rows(&mut s, "SELECT v FROM time_next('p', '2024-01-02')").await,
        ["3.0"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT v FROM time_prev_only('p', '2024-01-05 12:00:00')"
        )
        .await,
        ["3.0"]
    );
    assert_eq!(
        rows(
            &mut s,
            "SELECT v FROM time_interpolated('p', 'v', '2024-01-04 12:00:00')"
        )
        .await,
        ["4.0"]
    );
    assert_eq!(rows(&mut s, "SELECT time_avg(ts, v) FROM p").await, ["3.0"]);
}

#[tokio::test]
async fn bad_calls_fail_with_sqlstates() {
    let mut s = setup().await;
    let cases = [
        (
            "SELECT * FROM time_next('nope', now())",
            sqlstate::UNDEFINED_TABLE,
        ),
        (
            "SELECT * FROM time_next('sv', now())",
            sqlstate::WRONG_OBJECT_TYPE,
        ),
        (
            "SELECT * FROM time_next('plain', now())",
            sqlstate::DATATYPE_MISMATCH,
        ),
        (
            "SELECT * FROM time_next('s', 5)",
            sqlstate::DATATYPE_MISMATCH,
        ),
        (
            "SELECT * FROM time_next('s', 'yesterday-ish')",
            sqlstate::INVALID_DATETIME_FORMAT,
        ),
        ("SELECT * FROM time_next('s')", sqlstate::UNDEFINED_FUNCTION),
        (
            "SELECT * FROM time_next(NULL, now())",
            sqlstate::INVALID_PARAMETER_VALUE,
        ),
        (
            "SELECT * FROM time_interpolated('s', 'label', now())",
            sqlstate::DATATYPE_MISMATCH,
        ),
        (
            "SELECT * FROM time_interpolated('s', 'nope', now())",
            sqlstate::UNDEFINED_COLUMN,
        ),
        (
            "SELECT * FROM time_interpolated('s', '*', now())",
            sqlstate::UNDEFINED_COLUMN,
        ),
        (
            "SELECT * FROM time_sampling('s', 'v', now(), now(), 0, 'SECOND')",
            sqlstate::INVALID_PARAMETER_VALUE,
        ),
        (
            "SELECT * FROM time_sampling('s', 'v', now(), now(), 1, 'WEEK')",
            sqlstate::INVALID_PARAMETER_VALUE,
        ),
        (
            "SELECT * FROM time_sampling('s', 'v', now(), now(), 1.5, 'SECOND')",
            sqlstate::DATATYPE_MISMATCH,
        ),
        (
            "SELECT * FROM time_sampling('s', 'v', now(), now(), 9223372036854775807, 'DAY')",
            sqlstate::DATETIME_FIELD_OVERFLOW,
        ),
        (
            "SELECT time_avg(ts, label) FROM s",
            sqlstate::DATATYPE_MISMATCH,
        ),
        ("SELECT time_avg(v, v) FROM s", sqlstate::DATATYPE_MISMATCH),
        ("SELECT time_avg(v) FROM s", sqlstate::FEATURE_NOT_SUPPORTED),
    ];
    for (sql, code) in cases {
        let e = error(&mut s, sql).await;
        assert_eq!(e.code, code, "{sql}: {}", e.message);
    }
    let e = error(&mut s, "SELECT * FROM TIME_NEXT('plain', now())").await;
    assert!(e.message.starts_with("TIME_NEXT: "), "{}", e.message);
}

#[tokio::test]
async fn datafusion_plans_the_reads() {
    let mut s = setup().await;
    rows(
        &mut s,
        "CREATE TABLE p (ts TIMESTAMP PRIMARY KEY, v DOUBLE) USING TIMESERIES \
         PARTITION BY RANGE (ts) EVERY (1, DAY);
         INSERT INTO p VALUES ('2024-01-01 12:00:00', 1), ('2024-01-03 12:00:00', 3), ('2024-01-05 12:00:00', 5)",
    )
    .await;
    let plan = |rows: Vec<String>| rows.join("\n");
    // The nearest row: a top-1 sort over a key-range index scan of the partitions from t on.
    let next = plan(rows(&mut s, "EXPLAIN SELECT * FROM time_next('p', '2024-01-02')").await);
    assert!(next.contains("TopK(fetch=1)"), "{next}");
    assert!(next.contains("access=index p_pkey (ts range)"), "{next}");
    assert!(next.contains("data_partitions=2/3"), "{next}");
    // Sampling: the exec over the sorted union of the three range reads.
    let sampling = plan(
        rows(
            &mut s,
            "EXPLAIN SELECT v FROM time_sampling('p', 'v', '2024-01-02', '2024-01-03', 1, 'HOUR')",
        )
        .await,
    );
    assert!(sampling.contains("SamplingExec"), "{sampling}");
    assert!(
        sampling.contains("SortPreservingMergeExec: [ts@0 ASC NULLS LAST]"),
        "{sampling}"
    );
    assert_eq!(
        sampling.matches("access=index p_pkey (ts range)").count(),
        3,
        "{sampling}"
    );
    // TIME_AVG also works as a window function (a running time-weighted mean).
    assert_eq!(
        rows(
            &mut s,
            "SELECT time_avg(ts, v) OVER (ORDER BY ts) FROM p ORDER BY ts"
        )
        .await,
        ["1.0", "2.0", "3.0"]
    );
}
