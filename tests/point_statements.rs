//! Point statements (primary-key SELECT, single-row UPDATE by key, INSERT ... VALUES of
//! parameters and literals) take a path that skips DataFusion's planning. Each test runs a
//! statement that takes that path beside an equivalent one that cannot (an `ORDER BY`, an
//! expression on the key, `+ 0` on a value) and requires the same result: rows, column names,
//! column types, command tags and errors.

mod common;

use common::{TestServer, affected, exec, sqlstate, text_rows as rows, within};
use tokio_postgres::Client;
use tokio_postgres::types::{FromSql, ToSql, Type};

/// Column names and type oids of a prepared statement's result.
async fn described(client: &Client, sql: &str) -> Vec<(String, u32)> {
    let statement = client
        .prepare(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    statement
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().oid()))
        .collect()
}

/// A value as the server sent it (binary format), whatever its type.
#[derive(Debug, PartialEq)]
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }

    fn from_sql_null(_: &Type) -> Result<Raw, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The rows of a prepared statement run with `params`, as the bytes of each value.
async fn prepared_rows(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<Vec<Raw>> {
    let result = within(sql, client.query(sql, params))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    result
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get::<_, Raw>(i)).collect())
        .collect()
}

async fn setup(client: &Client) {
    exec(
        client,
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), code char(3), \
         at timestamptz, data bytea, ok boolean, n bigint); \
         INSERT INTO items VALUES \
         (1, 'bolt', 1.50, 'ab', '2024-01-02 03:04:05+00', '\\x00ff', true, 10), \
         (2, 'nut', NULL, NULL, NULL, NULL, NULL, NULL), \
         (3, 'it''s', 0.05, 'xyz', '1999-12-31 23:59:59.123456+00', '\\x', false, -5)",
    )
    .await;
}

#[tokio::test]
async fn point_select_matches_the_general_path() {
    let server = TestServer::start();
    let client = server.connect().await;
    setup(&client).await;
    exec(&client, "SET TIME ZONE 'Asia/Tokyo'").await;
    for (point, general) in [
        (
            "SELECT * FROM items WHERE id = 1",
            "SELECT * FROM items WHERE id = 1 ORDER BY 1",
        ),
        (
            "SELECT * FROM items WHERE id = 2",
            "SELECT * FROM items WHERE id = 2 ORDER BY 1",
        ),
        (
            "SELECT name, price AS p, i.code, i.at FROM items i WHERE 3 = i.id",
            "SELECT name, price AS p, i.code, i.at FROM items i WHERE 3 = i.id ORDER BY 1",
        ),
        (
            "SELECT data, ok, n FROM items WHERE (id = -1)",
            "SELECT data, ok, n FROM items WHERE id + 0 = -1",
        ),
        // Values the point path leaves to the general one: a key out of the column's range,
        // a quoted number, NULL.
        (
            "SELECT id FROM items WHERE id = 3000000000",
            "SELECT id FROM items WHERE id + 0 = 3000000000",
        ),
        (
            "SELECT id, name FROM items WHERE id = '3'",
            "SELECT id, name FROM items WHERE id = 3 ORDER BY 1",
        ),
        (
            "SELECT id FROM items WHERE id = NULL",
            "SELECT id FROM items WHERE id + 0 = NULL",
        ),
    ] {
        assert_eq!(
            rows(&client, point).await,
            rows(&client, general).await,
            "{point}"
        );
        assert_eq!(
            described(&client, point).await,
            described(&client, general).await,
            "{point}"
        );
    }
    // Prepared, as drivers and pgbench -M prepared send it.
    for id in [1i32, 2, 3, 4] {
        let point = prepared_rows(&client, "SELECT * FROM items WHERE id = $1", &[&id]).await;
        assert_eq!(point.len(), usize::from(id < 4));
        assert_eq!(
            point,
            prepared_rows(
                &client,
                "SELECT * FROM items WHERE id = $1 ORDER BY 1",
                &[&id]
            )
            .await,
        );
    }
}

#[tokio::test]
async fn point_select_on_composite_and_partitioned_keys() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b)); \
         INSERT INTO pairs VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 20); \
         CREATE TABLE hashed (k bigint PRIMARY KEY, v text) PARTITION BY HASH (k) PARTITIONS 4; \
         INSERT INTO hashed SELECT g, 'v' || g FROM generate_series(1, 100) AS t(g); \
         CREATE TABLE ranged (k int PRIMARY KEY, v text) PARTITION BY RANGE (k) EVERY (10); \
         INSERT INTO ranged SELECT g, 'r' || g FROM generate_series(-25, 25) AS t(g)",
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT v FROM pairs WHERE b = 'y' AND a = 1").await,
        ["11"]
    );
    assert!(
        rows(&client, "SELECT v FROM pairs WHERE a = 2 AND b = 'y'")
            .await
            .is_empty()
    );
    // Only a part of the key: not a point statement, same answer.
    assert_eq!(
        rows(&client, "SELECT v FROM pairs WHERE a = 1").await,
        ["10", "11"]
    );
    for k in [1i64, 37, 100, 101] {
        assert_eq!(
            prepared_rows(&client, "SELECT v FROM hashed WHERE k = $1", &[&k]).await,
            prepared_rows(
                &client,
                "SELECT v FROM hashed WHERE k = $1 ORDER BY 1",
                &[&k]
            )
            .await,
        );
    }
    for k in [-25i32, -11, -10, -1, 0, 9, 25, 26] {
        assert_eq!(
            prepared_rows(&client, "SELECT * FROM ranged WHERE k = $1", &[&k]).await,
            prepared_rows(
                &client,
                "SELECT * FROM ranged WHERE k = $1 ORDER BY 1",
                &[&k]
            )
            .await,
            "k = {k}"
        );
    }
}

#[tokio::test]
async fn point_statements_see_the_transaction_and_its_snapshot() {
    let server = TestServer::start();
    let a = server.connect().await;
    let b = server.connect().await;
    exec(
        &a,
        "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 10), (2, 20)",
    )
    .await;
    exec(&a, "BEGIN").await;
    assert_eq!(affected(&a, "INSERT INTO kv VALUES (3, 30)").await, 1);
    assert_eq!(affected(&a, "UPDATE kv SET v = v + 1 WHERE k = 3").await, 1);
    assert_eq!(affected(&a, "UPDATE kv SET v = 5 - v WHERE k = 1").await, 1);
    assert_eq!(affected(&a, "DELETE FROM kv WHERE k = 2").await, 1);
    assert_eq!(rows(&a, "SELECT v FROM kv WHERE k = 3").await, ["31"]);
    assert_eq!(rows(&a, "SELECT v FROM kv WHERE k = 1").await, ["-5"]);
    assert!(rows(&a, "SELECT v FROM kv WHERE k = 2").await.is_empty());
    // Nothing of it is visible to another session before COMMIT.
    assert!(rows(&b, "SELECT v FROM kv WHERE k = 3").await.is_empty());
    assert_eq!(rows(&b, "SELECT v FROM kv WHERE k = 1").await, ["10"]);
    assert_eq!(rows(&b, "SELECT v FROM kv WHERE k = 2").await, ["20"]);
    exec(&a, "COMMIT").await;
    assert_eq!(
        rows(&b, "SELECT k, v FROM kv ORDER BY k").await,
        ["1|-5", "3|31"]
    );

    // A REPEATABLE READ snapshot keeps the version it saw.
    exec(&b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    assert_eq!(rows(&b, "SELECT v FROM kv WHERE k = 3").await, ["31"]);
    assert_eq!(affected(&a, "UPDATE kv SET v = 99 WHERE k = 3").await, 1);
    assert_eq!(rows(&b, "SELECT v FROM kv WHERE k = 3").await, ["31"]);
    let conflict = b
        .simple_query("UPDATE kv SET v = v + 1 WHERE k = 3")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&conflict), Some("40001"));
    exec(&b, "ROLLBACK").await;
    assert_eq!(rows(&b, "SELECT v FROM kv WHERE k = 3").await, ["99"]);
}

#[tokio::test]
async fn concurrent_point_updates_of_one_key_all_count() {
    let server = TestServer::start();
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE counter (k int PRIMARY KEY, v bigint); INSERT INTO counter VALUES (1, 0)",
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let update = client
                .prepare("UPDATE counter SET v = v + $1 WHERE k = $2")
                .await
                .unwrap();
            for _ in 0..50 {
                let n = client.execute(&update, &[&1i64, &1i32]).await.unwrap();
                assert_eq!(n, 1);
            }
        }));
    }
    for task in tasks {
        within("updates", task).await.unwrap();
    }
    assert_eq!(
        rows(&setup, "SELECT v FROM counter WHERE k = 1").await,
        ["200"]
    );
}

#[tokio::test]
async fn point_writes_check_like_the_general_path() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE w (k int PRIMARY KEY, v int NOT NULL, s varchar(3), d int DEFAULT 7)",
    )
    .await;
    let insert = client
        .prepare("INSERT INTO w (k, v, s) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(
        client
            .execute(&insert, &[&1i32, &10i32, &"abc"])
            .await
            .unwrap(),
        1
    );
    let cases = [
        ("INSERT INTO w (k, v) VALUES (1, 5)", "23505"),
        ("INSERT INTO w (k, v) VALUES (2, NULL)", "23502"),
        ("INSERT INTO w (k, v, s) VALUES (2, 1, 'abcd')", "22001"),
        ("UPDATE w SET v = v + 2147483647 WHERE k = 1", "22003"),
        ("UPDATE w SET v = NULL WHERE k = 1", "23502"),
    ];
    for (sql, code) in cases {
        let error = client.simple_query(sql).await.unwrap_err();
        assert_eq!(sqlstate(&error), Some(code), "{sql}: {error:?}");
    }
    // The unlisted column with a DEFAULT takes the general path and gets its default.
    assert_eq!(
        affected(&client, "INSERT INTO w (k, v) VALUES (2, 20)").await,
        1
    );
    assert_eq!(
        affected(
            &client,
            "INSERT INTO w (k, v) VALUES (2, 0), (3, 30) ON CONFLICT (k) DO NOTHING"
        )
        .await,
        1
    );
    assert_eq!(
        affected(&client, "UPDATE w SET v = 1 WHERE k = 99").await,
        0
    );
    assert_eq!(
        rows(&client, "SELECT k, v, s, d FROM w ORDER BY k").await,
        ["1|10|abc|7", "2|20|NULL|7", "3|30|NULL|7"]
    );
}
