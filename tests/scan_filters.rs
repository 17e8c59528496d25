//! Filters the scan applies itself (`Exact` pushdown, no `FilterExec`) give the rows a filter
//! node would: boundaries of interval partitions, filters the interval makes true for a whole
//! partition next to ones it does not, columns named only by a filter, NULLs, LIMIT, aliases,
//! the transaction's own rows, parameters, and volatile filters (left to DataFusion).

mod common;

use common::{TestServer, exec, text_rows as rows};
use tokio_postgres::Client;

async fn count(client: &Client, filter: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM tf WHERE {filter}");
    let text = rows(client, &sql).await;
    text[0]
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not a count {text:?}: {e}"))
}

async fn plan(client: &Client, sql: &str) -> String {
    rows(client, &format!("EXPLAIN {sql}")).await.join("\n")
}

/// `2024-01-01 HH:MM:00`.
fn at(hour: u32, minute: u32) -> String {
    format!("TIMESTAMP '2024-01-01 {hour:02}:{minute:02}:00'")
}

/// 36 rows, one every 10 minutes from 00:00, in hourly partitions; row `i` has `v = i`, except
/// that `v` is NULL for every seventh row (i = 0, 7, ..., 35).
async fn setup(client: &Client) {
    exec(
        client,
        "CREATE TABLE tf (ts TIMESTAMP NOT NULL PRIMARY KEY, v INTEGER) \
         PARTITION BY RANGE (ts) EVERY (1, HOUR)",
    )
    .await;
    exec(
        client,
        "INSERT INTO tf SELECT to_timestamp_millis(1704067200000 + x * 600000), \
         CASE WHEN x % 7 = 0 THEN NULL ELSE x END FROM generate_series(0, 35) t(x)",
    )
    .await;
}

#[tokio::test]
async fn interval_ranges_select_exactly_the_rows_in_range() {
    let server = TestServer::start();
    let c = server.connect().await;
    setup(&c).await;

    // Whole partitions (01:00 and 02:00) and nothing else.
    let whole = format!("ts >= {} AND ts < {}", at(1, 0), at(3, 0));
    assert_eq!(count(&c, &whole).await, 12);
    let shown = plan(&c, &format!("SELECT * FROM tf WHERE {whole}")).await;
    assert!(!shown.contains("FilterExec"), "{shown}");
    assert!(shown.contains("filters=["), "{shown}");
    // Open and closed ends that cut into a partition.
    assert_eq!(
        count(&c, &format!("ts > {} AND ts <= {}", at(1, 0), at(3, 0))).await,
        12
    );
    assert_eq!(
        count(&c, &format!("ts >= {} AND ts <= {}", at(1, 0), at(3, 0))).await,
        13
    );
    assert_eq!(
        count(&c, &format!("ts > {} AND ts < {}", at(1, 0), at(3, 0))).await,
        11
    );
    assert_eq!(
        count(&c, &format!("ts BETWEEN {} AND {}", at(1, 0), at(2, 50))).await,
        12
    );
    assert_eq!(count(&c, &format!("ts >= {}", at(5, 0))).await, 6);
    assert_eq!(count(&c, &format!("ts < {}", at(0, 30))).await, 3);
    // Two lower bounds: the looser one covers whole partitions the tighter one cuts.
    for filter in [
        format!(
            "ts >= {} AND ts >= {} AND ts < {}",
            at(1, 30),
            at(1, 0),
            at(3, 0)
        ),
        format!(
            "ts >= {} AND ts >= {} AND ts < {}",
            at(1, 0),
            at(1, 30),
            at(3, 0)
        ),
    ] {
        assert_eq!(count(&c, &filter).await, 9, "{filter}");
    }
    // A filter on another column still applies on whole partitions: i = 11..17 without 14.
    assert_eq!(count(&c, &format!("{whole} AND v > 10")).await, 6);
    // The expressions a range is written with are also checked row by row.
    assert_eq!(
        count(
            &c,
            &format!(
                "ts + INTERVAL '1 hour' >= {} AND ts < {}",
                at(2, 0),
                at(3, 0)
            )
        )
        .await,
        12
    );
    assert_eq!(count(&c, &format!("ts >= {} OR v = 35", at(5, 0))).await, 6);
    assert_eq!(
        count(&c, &format!("ts IN ({}, {})", at(1, 0), at(4, 10))).await,
        2
    );
}

#[tokio::test]
async fn filters_on_unread_columns_nulls_limits_and_aliases() {
    let server = TestServer::start();
    let c = server.connect().await;
    setup(&c).await;

    // v > 20: i = 21..35 without 21, 28 and 35 (NULL).
    assert_eq!(count(&c, "v > 20").await, 12);
    assert_eq!(count(&c, "v IS NULL").await, 6);
    assert_eq!(count(&c, "NOT (v > 20)").await, 18);
    assert_eq!(
        rows(&c, "SELECT ts FROM tf WHERE v = 3").await,
        ["2024-01-01 00:30:00"]
    );
    // LIMIT reaches the scan once every filter is the scan's: the rows still pass them.
    assert_eq!(
        rows(
            &c,
            "SELECT count(*), count(*) FILTER (WHERE v < 10) FROM (SELECT v FROM tf WHERE v < 10 LIMIT 5) s"
        )
        .await,
        ["5|5"]
    );
    assert_eq!(
        rows(&c, "SELECT count(*) FROM tf AS x WHERE x.v >= 30").await,
        ["5"]
    );
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) FROM tf a JOIN tf b ON a.v = b.v WHERE a.v > 30 AND b.ts < TIMESTAMP '2024-01-01 05:30:00'"
        )
        .await,
        ["2"]
    );
    // A parameter is bound before the scan is planned.
    let n: i64 = c
        .query_one("SELECT count(*) FROM tf WHERE v > $1", &[&20i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 12);
    // A volatile filter is left to a filter node, which runs it once per row.
    let shown = plan(&c, "SELECT * FROM tf WHERE random() < 2.0").await;
    assert!(shown.contains("FilterExec"), "{shown}");
    assert_eq!(count(&c, "random() < 2.0").await, 36);
}

#[tokio::test]
async fn the_transactions_own_rows_pass_the_same_filters() {
    let server = TestServer::start();
    let c = server.connect().await;
    setup(&c).await;

    exec(&c, "BEGIN").await;
    exec(
        &c,
        "INSERT INTO tf VALUES (TIMESTAMP '2024-01-01 01:05:00', 100), \
         (TIMESTAMP '2024-01-01 09:00:00', 5)",
    )
    .await;
    exec(
        &c,
        "DELETE FROM tf WHERE ts = TIMESTAMP '2024-01-01 01:10:00'",
    )
    .await;
    let hour = format!("ts >= {} AND ts < {}", at(1, 0), at(2, 0));
    assert_eq!(count(&c, &hour).await, 6);
    assert_eq!(count(&c, "v = 100").await, 1);
    assert_eq!(count(&c, "v = 5").await, 2);
    exec(&c, "UPDATE tf SET v = v + 1000 WHERE v > 30").await;
    assert_eq!(count(&c, "v > 1000").await, 5);
    exec(&c, "ROLLBACK").await;
    assert_eq!(count(&c, &hour).await, 6);
    assert_eq!(count(&c, "v > 1000").await, 0);
}
