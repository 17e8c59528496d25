//! The PostgreSQL wire protocol as clients see it: the simple query protocol (several
//! statements per message, command tags, ReadyForQuery status), the extended protocol (named
//! and unnamed statements, parameter and result types, portals with row limits), error
//! SQLSTATEs and startup ParameterStatus messages.
//!
//! Most tests use tokio-postgres. Where it hides protocol details (exact command tags, the
//! transaction status byte of ReadyForQuery, ParameterStatus), a minimal raw client speaks the
//! protocol directly.

mod common;

use common::{TestServer, sqlstate, within};
use futures::{StreamExt, pin_mut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Runs `sql` with the simple protocol and returns the first column of every row.
async fn simple_column(client: &Client, sql: &str) -> Vec<Option<String>> {
    within(sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

async fn count(client: &Client, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    within(&sql, client.query_one(&sql, &[]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// Asserts that `result` is an error with SQLSTATE `code`.
#[track_caller]
fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &str,
    what: &str,
) {
    match result {
        Err(e) => assert_eq!(
            sqlstate(&e),
            Some(code),
            "{what}: want SQLSTATE {code}, got {e:?}"
        ),
        Ok(v) => panic!("{what}: want SQLSTATE {code}, but it succeeded with {v:?}"),
    }
}

// ------------------------------------------------------------------ a raw protocol client

/// One backend message: its type byte and body.
#[derive(Debug, Clone)]
struct Msg {
    tag: u8,
    body: Vec<u8>,
}

impl Msg {
    /// The NUL-terminated strings of the body (CommandComplete, ParameterStatus...).
    fn strings(&self) -> Vec<String> {
        self.body
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// The field of an ErrorResponse/NoticeResponse with the given code ('C' = SQLSTATE).
    fn field(&self, code: u8) -> Option<String> {
        self.body
            .split(|b| *b == 0)
            .find(|f| f.first() == Some(&code))
            .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
    }

    /// The text values of a DataRow (`None` for NULL).
    fn data_row(&self) -> Vec<Option<String>> {
        assert_eq!(self.tag, b'D');
        let n = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        let mut at = 2;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let len = i32::from_be_bytes(self.body[at..at + 4].try_into().unwrap());
            at += 4;
            if len < 0 {
                values.push(None);
            } else {
                let len = len as usize;
                values.push(Some(
                    String::from_utf8_lossy(&self.body[at..at + len]).into_owned(),
                ));
                at += len;
            }
        }
        values
    }
}

/// What a simple query produced, in order, up to and including ReadyForQuery.
#[derive(Debug)]
struct Reply {
    messages: Vec<Msg>,
}

impl Reply {
    fn tags(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.tag == b'C')
            .map(|m| m.strings().join(""))
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.tag == b'E')
            .map(|m| m.field(b'C').unwrap_or_default())
            .collect()
    }

    fn rows(&self) -> Vec<Vec<Option<String>>> {
        self.messages
            .iter()
            .filter(|m| m.tag == b'D')
            .map(Msg::data_row)
            .collect()
    }

    fn parameter_status(&self) -> Vec<(String, String)> {
        self.messages
            .iter()
            .filter(|m| m.tag == b'S')
            .map(|m| {
                let mut s = m.strings();
                let value = if s.len() > 1 {
                    s.remove(1)
                } else {
                    String::new()
                };
                (s.remove(0), value)
            })
            .collect()
    }

    /// The transaction status byte of the final ReadyForQuery: b'I', b'T' or b'E'.
    fn status(&self) -> u8 {
        let last = self
            .messages
            .last()
            .expect("a reply ends with ReadyForQuery");
        assert_eq!(last.tag, b'Z', "last message is ReadyForQuery");
        last.body[0]
    }
}

struct RawClient {
    stream: TcpStream,
}

impl RawClient {
    /// Connects, sends the startup packet and returns the client with the startup reply
    /// (authentication, ParameterStatus..., BackendKeyData, ReadyForQuery).
    async fn connect(port: u16) -> (RawClient, Reply) {
        let stream = within("connect", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("tcp connect");
        let mut client = RawClient { stream };
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for (k, v) in [
            ("user", "admin"),
            ("database", "public"),
            ("application_name", "raw"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        client.stream.write_all(&packet).await.unwrap();
        client.log_in(common::ADMIN_PASSWORD).await;
        let reply = client.read_until_ready().await;
        (client, reply)
    }

    /// Answers the server's SCRAM-SHA-256 exchange (postgres-protocol plays the client).
    async fn log_in(&mut self, password: &str) {
        use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
        let auth_code = |msg: &Msg| i32::from_be_bytes(msg.body[..4].try_into().unwrap());
        let request = self.read_msg().await;
        assert_eq!(
            (request.tag, auth_code(&request)),
            (b'R', 10),
            "SASL request"
        );
        let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let mut initial = SCRAM_SHA_256.as_bytes().to_vec();
        initial.push(0);
        initial.extend_from_slice(&(scram.message().len() as i32).to_be_bytes());
        initial.extend_from_slice(scram.message());
        self.send(b'p', &initial).await;
        let server_first = self.read_msg().await;
        assert_eq!((server_first.tag, auth_code(&server_first)), (b'R', 11));
        scram.update(&server_first.body[4..]).expect("server-first");
        let client_final = scram.message().to_vec();
        self.send(b'p', &client_final).await;
        let server_final = self.read_msg().await;
        assert_eq!((server_final.tag, auth_code(&server_final)), (b'R', 12));
        scram
            .finish(&server_final.body[4..])
            .expect("server signature");
    }

    async fn read_msg(&mut self) -> Msg {
        let mut head = [0u8; 5];
        self.stream
            .read_exact(&mut head)
            .await
            .expect("read message header");
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        assert!((4..1 << 24).contains(&len), "message length {len}");
        let mut body = vec![0u8; len - 4];
        self.stream
            .read_exact(&mut body)
            .await
            .expect("read message body");
        Msg { tag: head[0], body }
    }

    async fn read_until_ready(&mut self) -> Reply {
        let mut messages = Vec::new();
        within("read until ReadyForQuery", async {
            // Bounded: no reply in these tests has anywhere near this many messages.
            for _ in 0..100_000 {
                let msg = self.read_msg().await;
                let done = msg.tag == b'Z';
                messages.push(msg);
                if done {
                    return;
                }
            }
            panic!("no ReadyForQuery after 100000 messages");
        })
        .await;
        Reply { messages }
    }

    /// Sends one frontend message of type `tag`.
    async fn send(&mut self, tag: u8, body: &[u8]) {
        let mut packet = vec![tag];
        packet.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        packet.extend_from_slice(body);
        self.stream.write_all(&packet).await.unwrap();
    }

    /// Parse (unnamed, no parameter types), Describe of the statement, Sync.
    async fn parse_and_describe(&mut self, sql: &str) -> Reply {
        let mut parse = vec![0u8];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        self.send(b'P', &parse).await;
        self.send(b'D', b"S\0").await;
        self.send(b'S', &[]).await;
        self.read_until_ready().await
    }

    async fn query(&mut self, sql: &str) -> Reply {
        let mut packet = vec![b'Q'];
        packet.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        packet.extend_from_slice(sql.as_bytes());
        packet.push(0);
        self.stream.write_all(&packet).await.unwrap();
        self.read_until_ready().await
    }
}

// ------------------------------------------------------------------ simple query protocol

#[tokio::test]
async fn simple_query_command_tags() {
    let server = TestServer::start();
    let (mut raw, startup) = RawClient::connect(server.port).await;
    assert_eq!(startup.status(), b'I');
    let reply = raw
        .query(
            "CREATE TABLE t (k int PRIMARY KEY, v text); \
             INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'); \
             UPDATE t SET v = 'x' WHERE k >= 2; \
             DELETE FROM t WHERE k = 3; \
             SELECT k, v FROM t ORDER BY k; \
             UPDATE t SET v = 'y' WHERE k = 42; \
             DELETE FROM t WHERE k = 42; \
             INSERT INTO t SELECT k + 10, v FROM t; \
             SELECT count(*) FROM t",
        )
        .await;
    assert!(reply.errors().is_empty(), "{:?}", reply.errors());
    assert_eq!(
        reply.tags(),
        [
            "CREATE TABLE",
            "INSERT 0 3",
            "UPDATE 2",
            "DELETE 1",
            "SELECT 2",
            "UPDATE 0",
            "DELETE 0",
            "INSERT 0 2",
            "SELECT 1",
        ]
    );
    assert_eq!(
        reply.rows(),
        [
            vec![Some("1".into()), Some("a".into())],
            vec![Some("2".into()), Some("x".into())],
            vec![Some("4".into())],
        ]
    );
    // RowDescription precedes the rows of each SELECT.
    let kinds: String = reply
        .messages
        .iter()
        .map(|m| m.tag as char)
        .filter(|c| "TDC".contains(*c))
        .collect();
    assert_eq!(kinds, "CCCCTDDCCCCTDC");
    assert_eq!(reply.status(), b'I');

    // Transaction control tags and the status byte of each ReadyForQuery.
    let reply = raw.query("BEGIN").await;
    assert_eq!((reply.tags(), reply.status()), (vec!["BEGIN".into()], b'T'));
    let reply = raw.query("INSERT INTO t VALUES (100, 'z')").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (vec!["INSERT 0 1".into()], b'T')
    );
    let reply = raw.query("SAVEPOINT s1").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (vec!["SAVEPOINT".into()], b'T')
    );
    let reply = raw.query("RELEASE SAVEPOINT s1").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (vec!["RELEASE".into()], b'T')
    );
    let reply = raw.query("COMMIT").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (vec!["COMMIT".into()], b'I')
    );
    let reply = raw.query("BEGIN; DELETE FROM t; ROLLBACK").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (
            vec!["BEGIN".into(), "DELETE 5".into(), "ROLLBACK".into()],
            b'I'
        )
    );

    // COPY TO's tag counts rows however they are framed: a message per row in text, a
    // Parquet file in a few messages.
    let reply = raw
        .query("COPY t TO STDOUT; COPY t TO STDOUT (FORMAT parquet)")
        .await;
    assert_eq!(reply.tags(), ["COPY 5", "COPY 5"]);
    let data_messages = reply.messages.iter().filter(|m| m.tag == b'd').count();
    assert!(data_messages < 10, "{data_messages} CopyData messages");

    // An empty query string gets EmptyQueryResponse and no tag.
    let reply = raw.query("").await;
    assert!(reply.messages.iter().any(|m| m.tag == b'I'), "{reply:?}");
    assert!(reply.tags().is_empty());
    assert_eq!(reply.status(), b'I');
}

#[tokio::test]
async fn simple_query_counts_with_tokio_postgres() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "batch",
        client.batch_execute(
            "CREATE TABLE t (k int PRIMARY KEY, v text); \
             INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
        ),
    )
    .await
    .unwrap();
    let messages = within(
        "simple",
        client.simple_query(
            "INSERT INTO t VALUES (5, 'e'); UPDATE t SET v = v || '!' WHERE k <= 3; \
             DELETE FROM t WHERE k IN (1, 2); SELECT k, v FROM t ORDER BY k",
        ),
    )
    .await
    .unwrap();
    let mut counts = Vec::new();
    let mut rows = Vec::new();
    for m in &messages {
        match m {
            SimpleQueryMessage::CommandComplete(n) => counts.push(*n),
            SimpleQueryMessage::Row(r) => {
                rows.push((r.get(0).unwrap().to_string(), r.get(1).unwrap().to_string()))
            }
            SimpleQueryMessage::RowDescription(cols) => {
                let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
                assert_eq!(names, ["k", "v"]);
            }
            _ => {}
        }
    }
    assert_eq!(counts, [1, 3, 2, 3]);
    let rows: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(rows, [("3", "c!"), ("4", "d"), ("5", "e")]);

    // A failing statement stops the rest of the message: nothing after it runs.
    let e = within(
        "failing batch",
        client.batch_execute(
            "INSERT INTO t VALUES (6, 'f'); SELECT * FROM nosuch; INSERT INTO t VALUES (7, 'g')",
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&e), Some("42P01"));
    assert_eq!(
        simple_column(&client, "SELECT k FROM t ORDER BY k").await,
        ["3", "4", "5", "6"].map(|s| Some(s.to_string())),
        "statements before the error are committed (autocommit), the one after never ran"
    );
}

// ------------------------------------------------------------------ extended protocol

const TYPED_TABLE: &str = "CREATE TABLE typed (
    k int PRIMARY KEY,
    s smallint,
    b bigint,
    v text,
    d double precision,
    f real,
    flag boolean,
    ts timestamp,
    tz timestamptz,
    n numeric(10,2),
    dt date,
    raw bytea
)";

#[tokio::test]
async fn prepared_statement_parameter_and_column_types() {
    let server = TestServer::start();
    let client = server.connect().await;
    within("create", client.batch_execute(TYPED_TABLE))
        .await
        .unwrap();

    let cases: &[(&str, &[Type])] = &[
        ("SELECT * FROM typed WHERE k = $1", &[Type::INT4]),
        ("SELECT * FROM typed WHERE s = $1", &[Type::INT2]),
        (
            "SELECT * FROM typed WHERE b = $1 AND v = $2",
            &[Type::INT8, Type::TEXT],
        ),
        (
            "SELECT * FROM typed WHERE d > $1 AND f < $2 AND flag = $3",
            &[Type::FLOAT8, Type::FLOAT4, Type::BOOL],
        ),
        (
            "SELECT * FROM typed WHERE ts >= $1 AND tz < $2 AND dt = $3",
            &[Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::DATE],
        ),
        (
            "SELECT * FROM typed WHERE n = $1 AND raw = $2",
            &[Type::NUMERIC, Type::BYTEA],
        ),
        // The same parameter used twice, and parameters out of order.
        (
            "SELECT k FROM typed WHERE k = $2 OR b = $1 OR k = $2",
            &[Type::INT8, Type::INT4],
        ),
        (
            "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                Type::INT4,
                Type::INT2,
                Type::INT8,
                Type::TEXT,
                Type::FLOAT8,
                Type::FLOAT4,
                Type::BOOL,
                Type::TIMESTAMP,
                Type::TIMESTAMPTZ,
                Type::NUMERIC,
                Type::DATE,
                Type::BYTEA,
            ],
        ),
        (
            "INSERT INTO typed (v, k) VALUES ($1, $2)",
            &[Type::TEXT, Type::INT4],
        ),
        (
            "UPDATE typed SET v = $1, d = $2 WHERE k = $3",
            &[Type::TEXT, Type::FLOAT8, Type::INT4],
        ),
        (
            "UPDATE typed SET b = $1, ts = $2, n = $3 WHERE k = $4",
            &[Type::INT8, Type::TIMESTAMP, Type::NUMERIC, Type::INT4],
        ),
        ("UPDATE typed SET s = s + $1", &[Type::INT2]),
        ("DELETE FROM typed WHERE b < $1", &[Type::INT8]),
        ("SELECT 1", &[]),
    ];
    let mut failures = Vec::new();
    for (sql, want) in cases {
        match within(sql, client.prepare(sql)).await {
            Ok(stmt) => {
                if stmt.params() != *want {
                    failures.push(format!("{sql}: params {:?}, want {want:?}", stmt.params()));
                }
            }
            Err(e) => failures.push(format!("{sql}: prepare failed: {e:?}")),
        }
    }

    // Result columns: names and types.
    let columns = |stmt: &tokio_postgres::Statement| -> Vec<(String, Type)> {
        stmt.columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone()))
            .collect()
    };
    let want_columns = |list: &[(&str, Type)]| -> Vec<(String, Type)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect()
    };
    let column_cases: &[(&str, &[(&str, Type)])] = &[
        (
            "SELECT k, s, b, v, d, f, flag, ts, tz, n, dt, raw FROM typed",
            &[
                ("k", Type::INT4),
                ("s", Type::INT2),
                ("b", Type::INT8),
                ("v", Type::TEXT),
                ("d", Type::FLOAT8),
                ("f", Type::FLOAT4),
                ("flag", Type::BOOL),
                ("ts", Type::TIMESTAMP),
                ("tz", Type::TIMESTAMPTZ),
                ("n", Type::NUMERIC),
                ("dt", Type::DATE),
                ("raw", Type::BYTEA),
            ],
        ),
        (
            "SELECT k + 1 AS k1, b * 2 AS b2, v IS NULL AS missing, count(*) OVER () AS total \
             FROM typed",
            &[
                // Kura types integer literals as bigint (DataFusion's rule), so `int + 1` is
                // bigint where PostgreSQL says integer; see docs/ARCHITECTURE.md, Status.
                ("k1", Type::INT8),
                ("b2", Type::INT8),
                ("missing", Type::BOOL),
                ("total", Type::INT8),
            ],
        ),
        (
            "SELECT count(*) AS c, max(v) AS m FROM typed",
            &[("c", Type::INT8), ("m", Type::TEXT)],
        ),
        (
            "DELETE FROM typed WHERE k = $1 RETURNING k, v",
            &[("k", Type::INT4), ("v", Type::TEXT)],
        ),
        (
            "INSERT INTO typed (k, d) VALUES ($1, $2) RETURNING d, k",
            &[("d", Type::FLOAT8), ("k", Type::INT4)],
        ),
        // Statements without a result have no columns.
        ("UPDATE typed SET v = $1 WHERE k = $2", &[]),
        ("INSERT INTO typed (k) VALUES ($1)", &[]),
    ];
    for (sql, want) in column_cases {
        match within(sql, client.prepare(sql)).await {
            Ok(stmt) => {
                let got = columns(&stmt);
                if got != want_columns(want) {
                    failures.push(format!("{sql}: columns {got:?}, want {want:?}"));
                }
            }
            Err(e) => failures.push(format!("{sql}: prepare failed: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn prepared_statement_with_every_parameter_type() {
    use chrono::{NaiveDate, NaiveDateTime};
    let server = TestServer::start();
    let client = server.connect().await;
    within("create", client.batch_execute(TYPED_TABLE))
        .await
        .unwrap();
    let insert = within(
        "prepare",
        client.prepare(
            "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        ),
    )
    .await
    .unwrap();
    let ts =
        NaiveDateTime::parse_from_str("2024-05-06 07:08:09.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let tz = ts.and_utc();
    let n = rust_decimal::Decimal::new(12345, 2);
    let dt = NaiveDate::from_ymd_opt(2024, 5, 6).unwrap();
    let raw = vec![1u8, 2, 3];
    let params: [&(dyn ToSql + Sync); 12] = [
        &7i32,
        &-3i16,
        &(1i64 << 40),
        &"seven",
        &0.5f64,
        &-2.5f32,
        &true,
        &ts,
        &tz,
        &n,
        &dt,
        &raw,
    ];
    let inserted = within("insert", client.execute(&insert, &params))
        .await
        .unwrap();
    assert_eq!(inserted, 1);

    // Every parameter type in a WHERE clause finds the row.
    let select = within(
        "prepare",
        client.prepare(
            "SELECT k FROM typed WHERE k = $1 AND s = $2 AND b = $3 AND v = $4 AND d = $5 \
             AND f = $6 AND flag = $7 AND ts = $8 AND tz = $9 AND n = $10 AND dt = $11 \
             AND raw = $12",
        ),
    )
    .await
    .unwrap();
    let rows = within("select", client.query(&select, &params))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 7);

    let row = within(
        "select all",
        client.query_one("SELECT * FROM typed WHERE k = $1", &[&7i32]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, i16>("s"), -3);
    assert_eq!(row.get::<_, i64>("b"), 1 << 40);
    assert_eq!(row.get::<_, &str>("v"), "seven");
    assert_eq!(row.get::<_, f64>("d"), 0.5);
    assert_eq!(row.get::<_, f32>("f"), -2.5);
    assert!(row.get::<_, bool>("flag"));
    assert_eq!(row.get::<_, NaiveDateTime>("ts"), ts);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>("tz"), tz);
    assert_eq!(
        row.get::<_, rust_decimal::Decimal>("n").to_string(),
        "123.45"
    );
    assert_eq!(row.get::<_, NaiveDate>("dt"), dt);
    assert_eq!(row.get::<_, Vec<u8>>("raw"), raw);

    // Parameters in expressions and in the select list.
    let row = within(
        "expressions",
        client.query_one(
            "SELECT k + $1, v || $2, b * $3 FROM typed WHERE k = $4",
            &[&1i32, &"!", &2i64, &7i32],
        ),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, i32>(0), 8);
    assert_eq!(row.get::<_, &str>(1), "seven!");
    assert_eq!(row.get::<_, i64>(2), 1 << 41);

    // UPDATE and DELETE with parameters report their row counts.
    let updated = within(
        "update",
        client.execute(
            "UPDATE typed SET v = $1, d = d * 2 WHERE k = $2",
            &[&"eight", &7i32],
        ),
    )
    .await
    .unwrap();
    assert_eq!(updated, 1);
    let updated = within(
        "update none",
        client.execute("UPDATE typed SET v = $1 WHERE k = $2", &[&"x", &999i32]),
    )
    .await
    .unwrap();
    assert_eq!(updated, 0);
    let row = within(
        "read",
        client.query_one("SELECT v, d FROM typed WHERE k = 7", &[]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, &str>(0), "eight");
    assert_eq!(row.get::<_, f64>(1), 1.0);
    let deleted = within(
        "delete",
        client.execute("DELETE FROM typed WHERE b = $1", &[&(1i64 << 40)]),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(count(&client, "typed").await, 0);
}

#[tokio::test]
async fn prepared_statement_reexecuted_many_times() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "create",
        client.batch_execute("CREATE TABLE kv (k int PRIMARY KEY, v bigint, s text)"),
    )
    .await
    .unwrap();
    let insert = within(
        "prepare",
        client.prepare("INSERT INTO kv VALUES ($1, $2, $3)"),
    )
    .await
    .unwrap();
    let lookup = within(
        "prepare",
        client.prepare("SELECT v, s FROM kv WHERE k = $1"),
    )
    .await
    .unwrap();
    let bump = within(
        "prepare",
        client.prepare("UPDATE kv SET v = v + $1 WHERE k = $2"),
    )
    .await
    .unwrap();
    const N: i32 = 300;
    for k in 0..N {
        let n = within(
            "insert",
            client.execute(&insert, &[&k, &(k as i64 * 10), &format!("s{k}")]),
        )
        .await
        .unwrap();
        assert_eq!(n, 1, "insert {k}");
    }
    for k in 0..N {
        let rows = within("lookup", client.query(&lookup, &[&k]))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "lookup {k}");
        assert_eq!(rows[0].get::<_, i64>(0), k as i64 * 10);
        assert_eq!(rows[0].get::<_, &str>(1), format!("s{k}"));
    }
    for k in (0..N).step_by(3) {
        let n = within("bump", client.execute(&bump, &[&5i64, &k]))
            .await
            .unwrap();
        assert_eq!(n, 1, "bump {k}");
    }
    // A key that does not exist finds nothing.
    assert!(
        within("lookup", client.query(&lookup, &[&-1i32]))
            .await
            .unwrap()
            .is_empty()
    );
    let sum: i64 = within("sum", client.query_one("SELECT sum(v) FROM kv", &[]))
        .await
        .unwrap()
        .get(0);
    let want: i64 = (0..N as i64).map(|k| k * 10).sum::<i64>() + 5 * (N as u32).div_ceil(3) as i64;
    assert_eq!(sum, want);
    // Statements stay usable after an error on the same connection.
    let e = within("dup", client.execute(&insert, &[&0i32, &0i64, &"dup"]))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"));
    let rows = within("lookup", client.query(&lookup, &[&0i32]))
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 5);
}

#[tokio::test]
async fn unnamed_statements() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "create",
        client.batch_execute("CREATE TABLE u (k bigint PRIMARY KEY, v text)"),
    )
    .await
    .unwrap();
    // query_typed uses the unnamed statement and unnamed portal (Parse "" / Bind "" "").
    for k in 0..20i64 {
        let rows = within(
            "insert",
            client.query_typed(
                "INSERT INTO u VALUES ($1, $2) RETURNING k",
                &[(&k, Type::INT8), (&format!("v{k}"), Type::TEXT)],
            ),
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>(0), k);
    }
    // A different unnamed statement replaces the previous one each time.
    for k in 0..20i64 {
        let rows = within(
            "select",
            client.query_typed("SELECT v FROM u WHERE k = $1", &[(&k, Type::INT8)]),
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, &str>(0), format!("v{k}"));
        let rows = within(
            "select2",
            client.query_typed("SELECT count(*) FROM u WHERE k <= $1", &[(&k, Type::INT8)]),
        )
        .await
        .unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), k + 1);
    }
    // The client may declare a parameter type itself (text for a bigint column is cast).
    let n = within(
        "execute_typed",
        client.execute_typed("DELETE FROM u WHERE k >= $1", &[(&10i64, Type::INT8)]),
    )
    .await
    .unwrap();
    assert_eq!(n, 10);
    assert_eq!(count(&client, "u").await, 10);
}

#[tokio::test]
async fn portal_with_row_limit_is_suspended_and_resumed() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    within(
        "create",
        client.batch_execute(
            "CREATE TABLE p (k int PRIMARY KEY, v text); \
             INSERT INTO p SELECT CAST(value AS int), 'v' || CAST(value AS text) \
             FROM generate_series(1, 25) AS g(value)",
        ),
    )
    .await
    .unwrap();
    assert_eq!(count(&client, "p").await, 25);
    let stmt = within(
        "prepare",
        client.prepare("SELECT k, v FROM p WHERE k > $1 ORDER BY k"),
    )
    .await
    .unwrap();
    let txn = within("begin", client.transaction()).await.unwrap();
    let portal = within("bind", txn.bind(&stmt, &[&3i32])).await.unwrap();
    let mut seen = Vec::new();
    let mut batches = Vec::new();
    // 22 rows in batches of 2: 11 full batches, then an empty one. Bounded well above that.
    for _ in 0..50 {
        let rows = within("fetch", txn.query_portal(&portal, 2)).await.unwrap();
        batches.push(rows.len());
        if rows.is_empty() {
            break;
        }
        for row in rows {
            seen.push((row.get::<_, i32>(0), row.get::<_, String>(1)));
        }
    }
    let want: Vec<(i32, String)> = (4..=25).map(|k| (k, format!("v{k}"))).collect();
    assert_eq!(seen, want, "every row exactly once, in order");
    assert!(
        batches[..11].iter().all(|n| *n == 2),
        "batches of max_rows: {batches:?}"
    );
    assert_eq!(*batches.last().unwrap(), 0, "exhausted portal: {batches:?}");

    // Two portals of the same statement interleaved.
    let a = within("bind a", txn.bind(&stmt, &[&0i32])).await.unwrap();
    let b = within("bind b", txn.bind(&stmt, &[&20i32])).await.unwrap();
    let a1 = within("a1", txn.query_portal(&a, 3)).await.unwrap();
    let b1 = within("b1", txn.query_portal(&b, 3)).await.unwrap();
    let a2 = within("a2", txn.query_portal(&a, 3)).await.unwrap();
    let b2 = within("b2", txn.query_portal(&b, 3)).await.unwrap();
    let keys =
        |rows: &[tokio_postgres::Row]| rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>();
    assert_eq!(keys(&a1), [1, 2, 3]);
    assert_eq!(keys(&a2), [4, 5, 6]);
    assert_eq!(keys(&b1), [21, 22, 23]);
    assert_eq!(keys(&b2), [24, 25]);
    // max_rows = 0 fetches the rest.
    let rest = within("rest", txn.query_portal(&a, 0)).await.unwrap();
    assert_eq!(keys(&rest), (7..=25).collect::<Vec<_>>());
    within("commit", txn.commit()).await.unwrap();

    // query_raw streams all rows of a statement with parameters.
    let stream = within(
        "query_raw",
        client.query_raw(&stmt, [&20i32 as &(dyn ToSql + Sync)]),
    )
    .await
    .unwrap();
    pin_mut!(stream);
    let mut keys = Vec::new();
    for _ in 0..100 {
        match within("next", stream.next()).await {
            Some(row) => keys.push(row.unwrap().get::<_, i32>(0)),
            None => break,
        }
    }
    assert_eq!(keys, [21, 22, 23, 24, 25]);
    assert_eq!(stream.rows_affected(), Some(5));
}

#[tokio::test]
async fn update_set_with_typed_parameters() {
    use chrono::NaiveDateTime;
    let server = TestServer::start();
    let client = server.connect().await;
    within("create", client.batch_execute(TYPED_TABLE))
        .await
        .unwrap();
    within(
        "insert",
        client.batch_execute("INSERT INTO typed (k, v) VALUES (1, 'one')"),
    )
    .await
    .unwrap();
    // A client sends each parameter in the binary format of the type the server described;
    // assignments must therefore describe the column's type, as PostgreSQL does.
    let ts = NaiveDateTime::parse_from_str("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S").unwrap();
    let n = rust_decimal::Decimal::new(-150, 2);
    let updated = within(
        "update",
        client.execute(
            "UPDATE typed SET d = $1, b = $2, ts = $3, n = $4, flag = $5 WHERE k = $6",
            &[&2.5f64, &-7i64, &ts, &n, &true, &1i32],
        ),
    )
    .await
    .unwrap();
    assert_eq!(updated, 1);
    let row = within(
        "read",
        client.query_one("SELECT d, b, ts, n, flag FROM typed WHERE k = 1", &[]),
    )
    .await
    .unwrap();
    assert_eq!(row.get::<_, f64>(0), 2.5);
    assert_eq!(row.get::<_, i64>(1), -7);
    assert_eq!(row.get::<_, NaiveDateTime>(2), ts);
    assert_eq!(row.get::<_, rust_decimal::Decimal>(3).to_string(), "-1.50");
    assert!(row.get::<_, bool>(4));
}

#[tokio::test]
async fn pipelined_requests_recover_from_an_error() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "create",
        client.batch_execute("CREATE TABLE pl (k int PRIMARY KEY); INSERT INTO pl VALUES (1), (2)"),
    )
    .await
    .unwrap();
    let stmt = within(
        "prepare",
        client.prepare("SELECT k FROM pl WHERE k >= $1 ORDER BY k"),
    )
    .await
    .unwrap();
    // tokio-postgres pipelines concurrent requests on one connection: each request is its own
    // Bind/Execute/Sync sequence, and an error must only discard its own sequence.
    let (first, failing, duplicate, last) = within("pipeline", async {
        futures::join!(
            client.query(&stmt, &[&1i32]),
            client.query("SELECT * FROM nosuch", &[]),
            client.execute("INSERT INTO pl VALUES ($1)", &[&1i32]),
            client.query(&stmt, &[&2i32]),
        )
    })
    .await;
    let keys = |rows: Vec<tokio_postgres::Row>| {
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>()
    };
    assert_eq!(keys(first.unwrap()), [1, 2]);
    assert_code(failing, "42P01", "pipelined undefined table");
    assert_code(duplicate, "23505", "pipelined duplicate key");
    assert_eq!(keys(last.unwrap()), [2]);
    assert_eq!(count(&client, "pl").await, 2);
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn error_sqlstates_and_connection_stays_usable() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "setup",
        client.batch_execute(
            "CREATE TABLE e (k int PRIMARY KEY, nn text NOT NULL, s smallint, i int, \
             ts timestamp, y BYTE)",
        ),
    )
    .await
    .unwrap();
    within(
        "setup",
        client.batch_execute("INSERT INTO e (k, nn) VALUES (1, 'one')"),
    )
    .await
    .unwrap();

    let cases: &[(&str, &str)] = &[
        ("SELEC 1", "42601"),
        ("SELECT * FROM", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("INSERT INTO no_such_table VALUES (1)", "42P01"),
        ("SELECT no_such_column FROM e", "42703"),
        ("UPDATE e SET no_such_column = 1", "42703"),
        ("CREATE TABLE e (a int)", "42P07"),
        ("INSERT INTO e (k, nn) VALUES (1, 'again')", "23505"),
        ("INSERT INTO e (k, nn) VALUES (2, NULL)", "23502"),
        ("INSERT INTO e (k) VALUES (3)", "23502"),
        ("UPDATE e SET nn = NULL", "23502"),
        ("SELECT CAST('abc' AS int)", "22P02"),
        ("INSERT INTO e (k, nn, i) VALUES (4, 'x', 'ten')", "22P02"),
        ("SELECT CAST(40000 AS smallint)", "22003"),
        ("INSERT INTO e (k, nn, s) VALUES (5, 'x', 40000)", "22003"),
        (
            "INSERT INTO e (k, nn, i) VALUES (6, 'x', 2147483648)",
            "22003",
        ),
        ("INSERT INTO e (k, nn, y) VALUES (7, 'x', 300)", "22003"),
        ("SELECT CAST('not a timestamp' AS timestamp)", "22007"),
        (
            "INSERT INTO e (k, nn, ts) VALUES (8, 'x', '2024-13-45 00:00:00')",
            "22007",
        ),
        ("SELECT 1 / 0", "22012"),
        ("CREATE TABLE f (a int REFERENCES e(k))", "0A000"),
        ("DROP TABLE e CASCADE", "0A000"),
    ];
    let mut failures = Vec::new();
    for (sql, code) in cases {
        // Extended protocol (prepare + execute).
        match within(sql, client.execute(*sql, &[])).await {
            Err(e) if sqlstate(&e) == Some(code) => {}
            other => failures.push(format!("extended `{sql}`: want {code}, got {other:?}")),
        }
        // Simple protocol.
        match within(sql, client.batch_execute(sql)).await {
            Err(e) if sqlstate(&e) == Some(code) => {}
            other => failures.push(format!("simple `{sql}`: want {code}, got {other:?}")),
        }
        // The connection is still usable, and not in a transaction.
        match within("probe", client.query_one("SELECT 'alive' AS probe", &[])).await {
            Ok(row) if row.try_get::<_, &str>(0).ok() == Some("alive") => {}
            other => failures.push(format!("after `{sql}`: probe got {other:?}")),
        }
    }
    // No failed statement left anything behind.
    let rows = simple_column(&client, "SELECT k FROM e ORDER BY k").await;
    if rows != [Some("1".to_string())] {
        failures.push(format!("rows left in e: {rows:?}"));
    }
    let nn = simple_column(&client, "SELECT nn FROM e").await;
    if nn != [Some("one".to_string())] {
        failures.push(format!("e.nn after failed UPDATE: {nn:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn failed_transaction_block_until_rollback() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "setup",
        client.batch_execute("CREATE TABLE ft (k int PRIMARY KEY)"),
    )
    .await
    .unwrap();
    within("begin", client.batch_execute("BEGIN"))
        .await
        .unwrap();
    within("insert", client.batch_execute("INSERT INTO ft VALUES (1)"))
        .await
        .unwrap();
    assert_code(
        within("bad", client.batch_execute("SELECT * FROM nosuch")).await,
        "42P01",
        "error inside the block",
    );
    // Simple and extended protocol, reads and writes, all fail with 25P02.
    assert_code(
        within("select", client.batch_execute("SELECT 1")).await,
        "25P02",
        "simple SELECT in failed block",
    );
    assert_code(
        within("select", client.query("SELECT k FROM ft", &[])).await,
        "25P02",
        "extended SELECT in failed block",
    );
    assert_code(
        within(
            "insert",
            client.execute("INSERT INTO ft VALUES ($1)", &[&2i32]),
        )
        .await,
        "25P02",
        "extended INSERT in failed block",
    );
    assert_code(
        within("savepoint", client.batch_execute("SAVEPOINT s")).await,
        "25P02",
        "SAVEPOINT in failed block",
    );
    within("rollback", client.batch_execute("ROLLBACK"))
        .await
        .unwrap();
    assert_eq!(count(&client, "ft").await, 0, "the block was rolled back");

    // COMMIT of a failed block rolls back (and reports ROLLBACK).
    let server_port = server.port;
    let (mut raw, _) = RawClient::connect(server_port).await;
    let reply = raw.query("BEGIN; INSERT INTO ft VALUES (10)").await;
    assert_eq!(reply.status(), b'T');
    let reply = raw.query("INSERT INTO ft VALUES (10)").await;
    assert_eq!(reply.errors(), ["23505"]);
    assert_eq!(
        reply.status(),
        b'E',
        "ReadyForQuery reports the failed block"
    );
    let reply = raw.query("SELECT 1").await;
    assert_eq!(reply.errors(), ["25P02"]);
    assert_eq!(reply.status(), b'E');
    let reply = raw.query("COMMIT").await;
    assert!(reply.errors().is_empty());
    assert_eq!(reply.tags(), ["ROLLBACK"], "COMMIT of a failed block");
    assert_eq!(reply.status(), b'I');
    assert_eq!(count(&client, "ft").await, 0);

    // An error in a multi-statement simple query inside a block fails the block, and the
    // statements after it in the same message are skipped.
    let reply = raw
        .query("BEGIN; INSERT INTO ft VALUES (20); SELECT 1/0; INSERT INTO ft VALUES (21)")
        .await;
    assert_eq!(reply.tags(), ["BEGIN", "INSERT 0 1"]);
    assert_eq!(reply.errors(), ["22012"]);
    assert_eq!(reply.status(), b'E');
    let reply = raw.query("ROLLBACK").await;
    assert_eq!(
        (reply.tags(), reply.status()),
        (vec!["ROLLBACK".into()], b'I')
    );
    assert_eq!(count(&client, "ft").await, 0);

    // An error outside a block leaves the session idle.
    let reply = raw.query("SELECT * FROM nosuch").await;
    assert_eq!(reply.errors(), ["42P01"]);
    assert_eq!(reply.status(), b'I');
}

#[tokio::test]
async fn rollback_to_savepoint_recovers_failed_block() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "setup",
        client.batch_execute("CREATE TABLE sp (k int PRIMARY KEY)"),
    )
    .await
    .unwrap();
    let (mut raw, _) = RawClient::connect(server.port).await;
    let reply = raw
        .query("BEGIN; INSERT INTO sp VALUES (1); SAVEPOINT a; INSERT INTO sp VALUES (2)")
        .await;
    assert_eq!(reply.status(), b'T');
    let reply = raw.query("INSERT INTO sp VALUES (1)").await;
    assert_eq!(reply.errors(), ["23505"]);
    assert_eq!(reply.status(), b'E');
    let reply = raw.query("SELECT count(*) FROM sp").await;
    assert_eq!(reply.errors(), ["25P02"]);
    let reply = raw.query("ROLLBACK TO SAVEPOINT a").await;
    assert!(reply.errors().is_empty(), "{:?}", reply.errors());
    assert_eq!(reply.tags(), ["ROLLBACK"]);
    assert_eq!(reply.status(), b'T', "the block is usable again");
    // The insert of 2 (after the savepoint) is undone, the insert of 1 is kept.
    let reply = raw.query("SELECT k FROM sp ORDER BY k").await;
    assert_eq!(reply.rows(), [vec![Some("1".to_string())]]);
    let reply = raw.query("INSERT INTO sp VALUES (3); COMMIT").await;
    assert_eq!(reply.tags(), ["INSERT 0 1", "COMMIT"]);
    assert_eq!(reply.status(), b'I');
    assert_eq!(
        simple_column(&client, "SELECT k FROM sp ORDER BY k").await,
        [Some("1".to_string()), Some("3".to_string())]
    );

    // The same through tokio-postgres' extended protocol, with an error raised by Parse
    // (undefined table) and one raised by Execute (unique violation).
    within("begin", client.batch_execute("BEGIN; SAVEPOINT b"))
        .await
        .unwrap();
    assert_code(
        within("parse error", client.query("SELECT * FROM nosuch", &[])).await,
        "42P01",
        "undefined table in block",
    );
    assert_code(
        within("after", client.query("SELECT 1", &[])).await,
        "25P02",
        "after a Parse error",
    );
    within(
        "rollback to",
        client.batch_execute("ROLLBACK TO SAVEPOINT b"),
    )
    .await
    .unwrap();
    assert_code(
        within(
            "dup",
            client.execute("INSERT INTO sp VALUES ($1)", &[&3i32]),
        )
        .await,
        "23505",
        "duplicate key in block",
    );
    within(
        "rollback to",
        client.batch_execute("ROLLBACK TO SAVEPOINT b"),
    )
    .await
    .unwrap();
    let n = within(
        "insert",
        client.execute("INSERT INTO sp VALUES ($1)", &[&4i32]),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    within("commit", client.batch_execute("COMMIT"))
        .await
        .unwrap();
    assert_eq!(
        simple_column(&client, "SELECT k FROM sp ORDER BY k").await,
        ["1", "3", "4"].map(|s| Some(s.to_string()))
    );

    // Unknown savepoints, and savepoints outside a block.
    assert_code(
        within("no block", client.batch_execute("SAVEPOINT x")).await,
        "25P01",
        "SAVEPOINT outside a block",
    );
    within("begin", client.batch_execute("BEGIN"))
        .await
        .unwrap();
    assert_code(
        within(
            "unknown",
            client.batch_execute("ROLLBACK TO SAVEPOINT nope"),
        )
        .await,
        "3B001",
        "ROLLBACK TO an unknown savepoint",
    );
    within("rollback", client.batch_execute("ROLLBACK"))
        .await
        .unwrap();
}

// ------------------------------------------------------------------ session parameters

#[tokio::test]
async fn startup_parameter_status_and_show() {
    let server = TestServer::start();
    let (mut raw, startup) = RawClient::connect(server.port).await;
    assert_eq!(startup.messages[0].tag, b'R', "authentication first");
    assert_eq!(
        startup.messages[0].body,
        0i32.to_be_bytes(),
        "AuthenticationOk"
    );
    assert!(
        startup.messages.iter().any(|m| m.tag == b'K'),
        "BackendKeyData is sent"
    );
    assert_eq!(startup.status(), b'I');
    let params = startup.parameter_status();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no ParameterStatus {name}: {params:?}"))
    };
    assert!(get("server_version").contains("Kura"), "{params:?}");
    assert!(
        get("server_version").starts_with(|c: char| c.is_ascii_digit()),
        "server_version starts with a PostgreSQL version number: {params:?}"
    );
    assert_eq!(get("server_encoding"), "UTF8");
    assert_eq!(get("client_encoding"), "UTF8");
    assert_eq!(get("DateStyle"), "ISO, MDY");
    assert_eq!(get("TimeZone"), "UTC");
    assert_eq!(get("integer_datetimes"), "on");
    assert_eq!(get("standard_conforming_strings"), "on");
    assert_eq!(
        get("application_name"),
        "raw",
        "taken from the startup packet"
    );

    // SET of a reported parameter sends ParameterStatus.
    let reply = raw.query("SET application_name = 'renamed'").await;
    assert_eq!(reply.tags(), ["SET"]);
    assert_eq!(
        reply.parameter_status(),
        [("application_name".to_string(), "renamed".to_string())]
    );
    let reply = raw.query("SHOW application_name").await;
    assert_eq!(reply.rows(), [vec![Some("renamed".to_string())]]);

    // The same through tokio-postgres and SHOW.
    let client = server.connect().await;
    let show = |name: &'static str| {
        let client = &client;
        async move {
            let v = simple_column(client, &format!("SHOW {name}")).await;
            assert_eq!(v.len(), 1, "SHOW {name}");
            v[0].clone().unwrap()
        }
    };
    assert!(show("server_version").await.contains("Kura"));
    assert_eq!(show("client_encoding").await, "UTF8");
    assert_eq!(show("TimeZone").await, "UTC");
    assert_eq!(show("server_encoding").await, "UTF8");
    assert_eq!(show("transaction_isolation").await, "read committed");
    // SHOW also works through the extended protocol.
    let row = within("show", client.query_one("SHOW client_encoding", &[]))
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "UTF8");
    assert_code(
        within("unknown", client.batch_execute("SHOW no_such_parameter")).await,
        "42704",
        "SHOW of an unknown parameter",
    );
    assert_code(
        within(
            "read only",
            client.batch_execute("SET server_version = '1'"),
        )
        .await,
        "55P02",
        "SET of a read-only parameter",
    );
}

/// One field of a RowDescription: name, type oid, typlen, typmod.
fn row_description(msg: &Msg) -> Vec<(String, u32, i16, i32)> {
    let body = &msg.body;
    let count = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut fields = Vec::new();
    for _ in 0..count {
        let end = at + body[at..].iter().position(|b| *b == 0).unwrap();
        let name = String::from_utf8(body[at..end].to_vec()).unwrap();
        at = end + 1 + 4 + 2;
        let oid = u32::from_be_bytes(body[at..at + 4].try_into().unwrap());
        let len = i16::from_be_bytes(body[at + 4..at + 6].try_into().unwrap());
        let typmod = i32::from_be_bytes(body[at + 6..at + 10].try_into().unwrap());
        at += 4 + 2 + 4 + 2;
        fields.push((name, oid, len, typmod));
    }
    fields
}

#[tokio::test]
async fn what_drivers_rely_on_in_replies() {
    let server = TestServer::start();
    let (mut raw, _) = RawClient::connect(server.port).await;
    raw.query("CREATE TABLE d (k integer PRIMARY KEY, c char(3))")
        .await;

    // A query of comments only (Grafana's health check) is an empty query.
    let reply = raw.query("-- ping").await;
    let tags: Vec<u8> = reply.messages.iter().map(|m| m.tag).collect();
    assert_eq!(tags, [b'I', b'Z'], "EmptyQueryResponse then ReadyForQuery");

    // Describing a statement without a result says NoData (pgjdbc takes an empty
    // RowDescription for a result set).
    let reply = raw
        .parse_and_describe("INSERT INTO d VALUES ($1, $2)")
        .await;
    let tags: Vec<u8> = reply.messages.iter().map(|m| m.tag).collect();
    assert_eq!(tags, [b'1', b't', b'n', b'Z'], "{reply:?}");

    // RowDescription carries typlen (psycopg reads it) and the declared type.
    let reply = raw
        .parse_and_describe("SELECT k, c, k::bigint AS b, 'x'::text AS t, c::text AS ct FROM d")
        .await;
    let description = reply
        .messages
        .iter()
        .find(|m| m.tag == b'T')
        .expect("RowDescription");
    let fields = row_description(description);
    let summary: Vec<(&str, u32, i16, i32)> = fields
        .iter()
        .map(|(n, o, l, m)| (n.as_str(), *o, *l, *m))
        .collect();
    assert_eq!(
        summary,
        [
            ("k", 23, 4, -1),
            ("c", 1042, -1, 7),
            ("b", 20, 8, -1),
            ("t", 25, -1, -1),
            ("ct", 25, -1, -1),
        ]
    );
}

#[tokio::test]
async fn parameters_as_drivers_send_them() {
    let server = TestServer::start();
    let client = server.connect().await;
    within(
        "create",
        client.batch_execute("CREATE TABLE p (k integer PRIMARY KEY, c char(3), n text, d date)"),
    )
    .await
    .unwrap();

    // NULLs declared with types the decoder has no case for (pgjdbc's setNull(i, CHAR) is
    // bpchar) keep every later parameter in its place.
    let insert = within(
        "prepare",
        client.prepare_typed(
            "INSERT INTO p VALUES ($1, $2, $3, $4)",
            &[Type::INT4, Type::BPCHAR, Type::NAME, Type::UNKNOWN],
        ),
    )
    .await
    .unwrap();
    let none: Option<&str> = None;
    within(
        "insert nulls",
        client.execute(&insert, &[&1i32, &none, &none, &none]),
    )
    .await
    .unwrap();
    within(
        "insert values",
        client.execute(&insert, &[&2i32, &"ab", &"nm", &none]),
    )
    .await
    .unwrap();
    let rows = simple_column(&client, "SELECT concat_ws('|', k, c, n) FROM p ORDER BY k").await;
    assert_eq!(rows, [Some("1".to_string()), Some("2|ab|nm".to_string())]);

    // A parameter in a table function's arguments: typed by the function, bound before
    // the rows are made.
    let series = within(
        "prepare series",
        client.prepare("SELECT g FROM generate_series(1, $1) g"),
    )
    .await
    .unwrap();
    assert_eq!(series.params(), [Type::INT8]);
    let rows = within("series", client.query(&series, &[&4i64]))
        .await
        .unwrap();
    let values: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, [1, 2, 3, 4]);
}

// ------------------------------------------------------------------ hostile input after login

/// A deterministic stream of pseudo-random bytes (xorshift64*), so a failure can be replayed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends `bytes` on a logged-in connection, then half-closes it and reads until the server
/// closes its end: whatever it answers, it must end the connection rather than hang.
async fn throw_at_logged_in(port: u16, bytes: &[u8]) {
    let (mut raw, _) = RawClient::connect(port).await;
    // The server may close before reading everything; a failed write is an answer too.
    let _ = raw.stream.write_all(bytes).await;
    let _ = raw.stream.shutdown().await;
    let mut sink = Vec::new();
    let _ = within(
        "the server ends the connection",
        raw.stream.read_to_end(&mut sink),
    )
    .await;
}

/// A frontend message whose length field says `claimed` while `body` follows.
fn framed(tag: u8, claimed: i32, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![tag];
    packet.extend_from_slice(&claimed.to_be_bytes());
    packet.extend_from_slice(body);
    packet
}

#[tokio::test]
async fn malformed_truncated_and_random_messages_end_only_their_connection() {
    let server = TestServer::start();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<Vec<u8>> = vec![
        // Lengths too small for their own header, negative, and past the 1 GB limit.
        framed(b'Q', 0, b""),
        framed(b'Q', 3, b"x"),
        framed(b'Q', -5, b"SELECT 1\0"),
        framed(b'Q', i32::MAX, b"SELECT 1\0"),
        // Truncated: the length promises more than arrives before the client half-closes.
        framed(b'Q', 200, b"SELECT 1"),
        framed(b'P', 40, b"\0SELECT"),
        // Well framed, bad inside: no terminator, counts beyond the body, unknown kinds.
        framed(b'Q', 12, b"SELECT 1"),
        framed(b'P', 4 + 12, b"\0SELECT 1\0\xff\xff"),
        framed(b'B', 4 + 8, b"\0\0\x7f\xff\0\0\0\0"),
        framed(b'D', 4 + 2, b"X\0"),
        framed(b'E', 4 + 5, b"\0\xff\xff\xff\xff"),
        framed(b'C', 4 + 1, b"Z"),
        framed(b'z', 4 + 3, b"abc"),
        framed(b'd', 4 + 4, b"data"),
        framed(b'f', 4, b""),
    ];
    for _ in 0..40 {
        let len = (noise.next() % 300) as usize;
        cases.push(noise.bytes(len));
    }
    // Random bodies under valid tags and lengths reach the message decoders.
    for tag in [b'Q', b'P', b'B', b'D', b'E', b'C', b'H', b'S'] {
        for _ in 0..5 {
            let len = (noise.next() % 64) as usize;
            let body = noise.bytes(len);
            cases.push(framed(tag, (len + 4) as i32, &body));
        }
    }
    for bytes in &cases {
        throw_at_logged_in(server.port, bytes).await;
    }
    let client = server.connect().await;
    let rows = simple_column(&client, "SELECT 'still serving'").await;
    assert_eq!(rows, [Some("still serving".to_string())]);
}
