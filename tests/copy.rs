//! COPY FROM STDIN and COPY TO STDOUT through a real client (tokio-postgres drives COPY with
//! the extended protocol; psql's `\copy` with the simple one is covered in tests/compat):
//! text and CSV, defaults for omitted columns, errors naming the line, and all-or-nothing.

mod common;

use bytes::Bytes;
use common::{TestServer, exec, sqlstate, text_rows as rows};
use futures::{SinkExt, TryStreamExt};
use tokio_postgres::Client;

async fn copy_in(client: &Client, sql: &str, data: &str) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    // Several messages that split rows in the middle, as clients may send them.
    for chunk in data.as_bytes().chunks(7) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> String {
    let stream = client.copy_out(sql).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

#[tokio::test]
async fn copy_round_trips_text_and_csv() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE m (id INTEGER PRIMARY KEY, name VARCHAR(20), v DOUBLE, \
         ok BOOLEAN DEFAULT true)",
    )
    .await;
    let n = copy_in(
        &c,
        "COPY m (id, name, v) FROM STDIN",
        "1\tone\t1.5\n2\t\\N\t2.5\n3\ttab\\there\t3\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let n = copy_in(
        &c,
        "COPY m FROM STDIN WITH (FORMAT csv, HEADER true)",
        "id,name,v,ok\n4,\"a,b\",4,false\n5,\"two\nlines\",5,\n",
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        rows(&c, "SELECT id, name, v, ok FROM m ORDER BY id").await,
        vec![
            "1|one|1.5|t",
            "2|NULL|2.5|t",
            "3|tab\there|3|t",
            "4|a,b|4|f",
            "5|two\nlines|5|NULL",
        ]
    );
    assert_eq!(
        copy_out(&c, "COPY m TO STDOUT").await,
        "1\tone\t1.5\tt\n2\t\\N\t2.5\tt\n3\ttab\\there\t3\tt\n4\ta,b\t4\tf\n5\ttwo\\nlines\t5\t\\N\n"
    );
    assert_eq!(
        copy_out(
            &c,
            "COPY (SELECT id, name FROM m WHERE id >= 4 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"
        )
        .await,
        "id,name\n4,\"a,b\"\n5,\"two\nlines\"\n"
    );
}

#[tokio::test]
async fn a_bad_row_aborts_the_whole_copy_and_names_its_line() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE m (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
    )
    .await;
    let mut data = String::new();
    for i in 0..20_000 {
        data.push_str(&format!("{i}\t{i}\n"));
    }
    data.push_str("20000\tnot a number\n");
    let e = copy_in(&c, "COPY m FROM STDIN", &data).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P02"), "{e:?}");
    let db = e.as_db_error().unwrap();
    assert_eq!(
        db.where_(),
        Some("COPY m, line 20001, column v: \"not a number\"")
    );
    assert_eq!(rows(&c, "SELECT count(*) FROM m").await, vec!["0"]);

    let e = copy_in(&c, "COPY m FROM STDIN", "1\t1\n2\t2\n1\t3\n")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"), "{e:?}");
    assert_eq!(e.as_db_error().unwrap().where_(), Some("COPY m, line 3"));
    let e = copy_in(&c, "COPY m FROM STDIN", "1\t1\t9\n")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P04"), "{e:?}");
    let e = copy_in(&c, "COPY m FROM STDIN", "1\t\\N\n")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("23502"), "{e:?}");
    assert_eq!(rows(&c, "SELECT count(*) FROM m").await, vec!["0"]);

    exec(&c, "BEGIN").await;
    copy_in(&c, "COPY m FROM STDIN", "7\t7\n").await.unwrap();
    assert!(copy_in(&c, "COPY m FROM STDIN", "8\tx\n").await.is_err());
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        sqlstate(&e),
        Some("25P02"),
        "the block failed with the COPY"
    );
    exec(&c, "ROLLBACK").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM m").await, vec!["0"]);
    let e = c
        .simple_query("COPY m FROM '/etc/passwd'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"));
}
