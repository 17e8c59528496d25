//! COPY FROM STDIN and COPY TO STDOUT through a real client (tokio-postgres drives COPY with
//! the extended protocol; psql's `\copy` with the simple one is covered in tests/compat):
//! text and CSV, defaults for omitted columns, errors naming the line, and all-or-nothing;
//! server files for administrators.

mod common;

use bytes::Bytes;
use common::{TestServer, exec, fails, sqlstate, text_rows as rows};
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
}

#[tokio::test]
async fn binary_copy_round_trips_every_type() {
    use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
    use tokio_postgres::types::{ToSql, Type};

    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE b (id integer PRIMARY KEY, ok boolean, s smallint, l bigint, f real,
                         d double precision, t text, ch char(3), raw bytea, ts timestamp,
                         day date)",
    )
    .await;
    let types = [
        Type::INT4,
        Type::BOOL,
        Type::INT2,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::TIMESTAMP,
        Type::DATE,
    ];
    let ts = chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_micro_opt(23, 59, 58, 654_321)
        .unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let sink = c
        .copy_in("COPY b FROM STDIN (FORMAT BINARY)")
        .await
        .expect("copy in");
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    let raw: &[u8] = b"\x00\xff";
    let full: Vec<&(dyn ToSql + Sync)> = vec![
        &1i32,
        &true,
        &-7i16,
        &i64::MIN,
        &1.5f32,
        &-2.25f64,
        &"héllo",
        &"x",
        &raw,
        &ts,
        &day,
    ];
    writer.as_mut().write(&full).await.expect("row 1");
    let (ok, s, l, f, d) = (
        None::<bool>,
        None::<i16>,
        None::<i64>,
        None::<f32>,
        None::<f64>,
    );
    let (text, bytes, at, on) = (
        None::<&str>,
        None::<&[u8]>,
        None::<chrono::NaiveDateTime>,
        None::<chrono::NaiveDate>,
    );
    let nulls: Vec<&(dyn ToSql + Sync)> =
        vec![&2i32, &ok, &s, &l, &f, &d, &text, &text, &bytes, &at, &on];
    writer.as_mut().write(&nulls).await.expect("row 2");
    assert_eq!(writer.finish().await.expect("finish"), 2);

    assert_eq!(
        rows(
            &c,
            "SELECT id, ok, s, l, f, d, t, ch, raw, ts, day FROM b ORDER BY id"
        )
        .await,
        [
            "1|t|-7|-9223372036854775808|1.5|-2.25|héllo|x  |\\x00ff|2024-02-29 23:59:58.654321|1999-12-31",
            "2|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL",
        ]
    );

    let out_types = [Type::INT4, Type::BPCHAR, Type::TIMESTAMP];
    let stream = c
        .copy_out("COPY (SELECT id, ch, ts FROM b ORDER BY id) TO STDOUT (FORMAT BINARY)")
        .await
        .expect("copy out");
    let out = BinaryCopyOutStream::new(stream, &out_types);
    let rows_out: Vec<_> = out.try_collect().await.expect("binary rows");
    assert_eq!(rows_out.len(), 2);
    assert_eq!(rows_out[0].get::<i32>(0), 1);
    assert_eq!(rows_out[0].get::<&str>(1), "x  ", "char(n) goes out padded");
    assert_eq!(rows_out[0].get::<chrono::NaiveDateTime>(2), ts);
    assert_eq!(rows_out[1].get::<Option<&str>>(1), None);

    // A field whose size does not fit its column's type names the line and column.
    let sink = c
        .copy_in("COPY b (id, s) FROM STDIN (FORMAT BINARY)")
        .await
        .expect("copy in");
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::INT4]);
    futures::pin_mut!(writer);
    writer.as_mut().write(&[&5i32, &7i32]).await.expect("row");
    let e = writer.finish().await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("22P03"), "{e:?}");
    assert!(format!("{e:?}").contains("column s"), "{e:?}");
    assert_eq!(rows(&c, "SELECT count(*) FROM b").await, ["2"]);
}

#[tokio::test]
async fn copy_reads_and_writes_timestamptz_in_the_session_zone() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE z (id INTEGER PRIMARY KEY, at TIMESTAMPTZ, local TIMESTAMP);
         SET TIME ZONE 'Asia/Tokyo'",
    )
    .await
    .unwrap();
    copy_in(
        &c,
        "COPY z FROM STDIN",
        "1\t2024-01-01 09:00:00\t2024-01-01 09:00:00\n2\t2024-01-01 00:00:00+00\t\\N\n",
    )
    .await
    .unwrap();
    assert_eq!(
        copy_out(&c, "COPY (SELECT id, at FROM z ORDER BY id) TO STDOUT").await,
        "1\t2024-01-01 09:00:00+09\n2\t2024-01-01 09:00:00+09\n"
    );
    c.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    assert_eq!(
        copy_out(&c, "COPY z TO STDOUT (FORMAT csv)").await,
        "1,2024-01-01 00:00:00+00,2024-01-01 09:00:00\n2,2024-01-01 00:00:00+00,\n"
    );
}

#[tokio::test]
async fn administrators_copy_server_files_both_ways() {
    let server = TestServer::start();
    let tmp = common::temp_dir();
    let c = server.connect().await;
    exec(&c, "CREATE TABLE f (id INTEGER PRIMARY KEY, name TEXT)").await;
    let input = tmp.path().join("in.csv");
    std::fs::write(&input, "id,name\n1,one\n2,\"t,wo\"\n").unwrap();
    let copied = c
        .simple_query(&format!(
            "COPY f FROM '{}' WITH (FORMAT csv, HEADER)",
            input.display()
        ))
        .await
        .unwrap();
    assert!(matches!(
        copied.last(),
        Some(tokio_postgres::SimpleQueryMessage::CommandComplete(2))
    ));
    let output = tmp.path().join("out.csv");
    exec(
        &c,
        &format!(
            "COPY (SELECT * FROM f ORDER BY id) TO '{}' CSV",
            output.display()
        ),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "1,one\n2,\"t,wo\"\n"
    );
    // Binary out and back in.
    let binary = tmp.path().join("f.bin");
    exec(
        &c,
        &format!("COPY f TO '{}' (FORMAT binary)", binary.display()),
    )
    .await;
    exec(&c, "CREATE TABLE g (id INTEGER PRIMARY KEY, name TEXT)").await;
    exec(
        &c,
        &format!("COPY g FROM '{}' (FORMAT binary)", binary.display()),
    )
    .await;
    assert_eq!(
        rows(&c, "SELECT id || name FROM g ORDER BY id").await,
        ["1one", "2t,wo"]
    );

    // A bad row aborts the whole COPY and names its line; nothing of it is visible.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "3,three\nfour,4\n").unwrap();
    let message = fails(&c, &format!("COPY f FROM '{}' CSV", bad.display()), "22P02").await;
    assert!(message.contains("four"), "{message}");
    assert_eq!(rows(&c, "SELECT count(*) FROM f").await, ["2"]);
    fails(&c, "COPY f FROM 'relative.csv'", "42602").await;
    let missing = tmp.path().join("missing.csv");
    fails(&c, &format!("COPY f FROM '{}'", missing.display()), "58P01").await;
    fails(&c, "COPY f FROM PROGRAM 'cat /etc/passwd'", "0A000").await;

    // General users may not touch server files, even with ALL on the database.
    exec(&c, "CREATE USER loader IDENTIFIED BY 'loader pw'").await;
    let loader = common::connect_to(&server.conn_string_as("loader", "loader pw", "public")).await;
    let message = fails(
        &loader,
        &format!("COPY f FROM '{}' CSV HEADER", input.display()),
        "42501",
    )
    .await;
    assert!(message.contains("administrators"), "{message}");
    fails(
        &loader,
        &format!("COPY f TO '{}'", output.display()),
        "42501",
    )
    .await;
}

async fn copy_out_bytes(client: &Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn copy_in_bytes(
    client: &Client,
    sql: &str,
    data: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    for chunk in data.chunks(1000) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

#[tokio::test]
async fn parquet_copy_round_trips_and_reports_bad_rows_by_number() {
    let server = TestServer::start();
    let c = server.connect().await;
    exec(
        &c,
        "CREATE TABLE src (id INTEGER PRIMARY KEY, name STRING, v DOUBLE, raw BYTEA, \
         ts TIMESTAMP(9), tz TIMESTAMPTZ, n NUMERIC(10,3), d DATE)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO src SELECT x, CASE WHEN x % 5 = 0 THEN NULL ELSE 'name ' || x END, \
         x / 3.0, NULL, to_timestamp_nanos(x * 1000000001), NULL, x / 7, NULL \
         FROM generate_series(1, 20000) t(x)",
    )
    .await;
    exec(
        &c,
        "INSERT INTO src VALUES (0, '', 0.5, '\\x00ff', '1969-12-31 23:59:59.999999999', \
         '2024-06-30 12:00:00+02', -1.5, '2024-02-29')",
    )
    .await;
    let file = copy_out_bytes(&c, "COPY src TO STDOUT (FORMAT parquet)").await;
    assert_eq!(&file[..4], b"PAR1");
    assert_eq!(&file[file.len() - 4..], b"PAR1");

    exec(
        &c,
        "CREATE TABLE dst (id INTEGER PRIMARY KEY, name STRING, v DOUBLE, raw BYTEA, \
         ts TIMESTAMP(9), tz TIMESTAMPTZ, n NUMERIC(10,3), d DATE)",
    )
    .await;
    let stored = copy_in_bytes(&c, "COPY dst FROM STDIN (FORMAT parquet)", &file)
        .await
        .unwrap();
    assert_eq!(stored, 20001);
    assert_eq!(
        rows(
            &c,
            "SELECT count(*) FROM (SELECT * FROM src EXCEPT SELECT * FROM dst) x"
        )
        .await,
        vec!["0"]
    );
    assert_eq!(
        rows(&c, "SELECT name = '', raw, d FROM dst WHERE id = 0").await,
        vec!["t|\\x00ff|2024-02-29"]
    );

    // A query's result, and a column subset.
    let file = copy_out_bytes(
        &c,
        "COPY (SELECT id + 100000, name FROM src WHERE id BETWEEN 1 AND 10) \
         TO STDOUT (FORMAT parquet)",
    )
    .await;
    assert_eq!(
        copy_in_bytes(&c, "COPY dst (id, name) FROM STDIN (FORMAT parquet)", &file)
            .await
            .unwrap(),
        10
    );

    // Row 3 does not fit: the whole COPY fails, naming the row and the column.
    let file = copy_out_bytes(
        &c,
        "COPY (SELECT id + 200000, CASE WHEN id = 3 THEN 'x' ELSE '1' END FROM src \
         WHERE id BETWEEN 1 AND 5 ORDER BY id) TO STDOUT (FORMAT parquet)",
    )
    .await;
    exec(
        &c,
        "CREATE TABLE narrow (id INTEGER PRIMARY KEY, k INTEGER)",
    )
    .await;
    let error = copy_in_bytes(&c, "COPY narrow FROM STDIN (FORMAT parquet)", &file)
        .await
        .unwrap_err();
    let db = error.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "22P02", "{db:?}");
    assert_eq!(db.where_(), Some("COPY narrow, line 3, column k: \"x\""));
    assert_eq!(rows(&c, "SELECT count(*) FROM narrow").await, vec!["0"]);

    // Not Parquet, or the wrong number of columns: 22P04.
    let error = copy_in_bytes(&c, "COPY narrow FROM STDIN (FORMAT parquet)", b"1,2\n")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), Some("22P04"));
    let error = copy_in_bytes(&c, "COPY narrow (id) FROM STDIN (FORMAT parquet)", &file)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), Some("22P04"));
    let message = error.as_db_error().map(|db| db.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("has 2 columns")),
        "{error:?}"
    );

    // Text-only options make no sense for Parquet.
    fails(
        &c,
        "COPY narrow TO STDOUT (FORMAT parquet, HEADER)",
        "0A000",
    )
    .await;
    fails(
        &c,
        "COPY narrow FROM STDIN (FORMAT parquet, DELIMITER ',')",
        "42601",
    )
    .await;
}
