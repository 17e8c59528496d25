//! Bad input never crashes the server: pathological SQL gets an error with the right SQLSTATE
//! and the connection (and server) keep working afterwards.

mod common;

use common::TestServer;

async fn expect_code(client: &tokio_postgres::Client, sql: &str, code: &str) {
    let error = client
        .simple_query(sql)
        .await
        .expect_err(&format!("{} should fail", &sql[..sql.len().min(60)]));
    let got = error.code().map(|c| c.code().to_string());
    assert_eq!(
        got.as_deref(),
        Some(code),
        "{}: {error:?}",
        &sql[..sql.len().min(60)]
    );
    let rows = client
        .simple_query("SELECT 1")
        .await
        .expect("connection still usable");
    assert!(!rows.is_empty());
}

#[tokio::test]
async fn pathological_statements_fail_cleanly() {
    let server = TestServer::start();
    let client = server.connect().await;
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    expect_code(&client, &deep, "54000").await;
    expect_code(&client, "SELECT 1/0", "22012").await;
    expect_code(&client, "SELECT", "42601").await;
    expect_code(&client, "\u{1F600} nonsense", "42601").await;
    expect_code(&client, "SELECT 'unterminated", "42601").await;
    let huge = format!(
        "SELECT * FROM no_such_table WHERE x IN ({})",
        vec!["1"; 20_000].join(",")
    );
    expect_code(&client, &huge, "42P01").await;
    client
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (1, 0), (2, 5)")
        .await
        .unwrap();
    // A statement failing half-way leaves nothing behind.
    expect_code(&client, "UPDATE t SET v = 10 / v", "22012").await;
    let rows = client
        .query("SELECT v FROM t ORDER BY k", &[])
        .await
        .unwrap();
    let values: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, [0, 5]);
    expect_code(&client, "INSERT INTO t VALUES (3, 1), (3, 2)", "23505").await;
    expect_code(&client, "INSERT INTO t VALUES (NULL, 1)", "23502").await;
    let rows = client.query("SELECT count(*) FROM t", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    // Empty and comment-only queries are fine.
    client.simple_query("").await.expect("empty query");
    client
        .simple_query("-- just a comment")
        .await
        .expect("comment only");
    // The server accepts new connections after all of this.
    let other = server.connect().await;
    other
        .simple_query("SELECT 1")
        .await
        .expect("new connection works");
}
