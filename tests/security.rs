//! Users, databases and privileges through a real server and real clients: SCRAM logins,
//! failures that look alike, databases that keep their own tables across restarts, READ and
//! ALL grants, what general users may and may not do, and the authentication timeout.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, TestServer, connect_to, exec, fails, sqlstate, text_rows};
use tokio::io::AsyncReadExt;

async fn try_connect(conn: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The SQLSTATE and message of a failed login.
async fn login_error(conn: &str) -> (String, String) {
    let Err(e) = try_connect(conn).await else {
        panic!("the login as {conn} should fail");
    };
    let db = e.as_db_error().expect("a server error");
    (db.code().code().to_string(), db.message().to_string())
}

#[tokio::test]
async fn logins_use_scram_and_failures_look_alike() {
    let server = TestServer::start();
    let admin = server.connect().await;
    assert_eq!(
        text_rows(&admin, "SELECT current_user, current_database()").await,
        vec!["admin|public"]
    );
    exec(&admin, "CREATE USER app IDENTIFIED BY 'app pw'").await;
    let app = connect_to(&server.conn_string_as("APP", "app pw", "public")).await;
    assert_eq!(text_rows(&app, "SELECT current_user").await, vec!["app"]);

    let wrong = login_error(&server.conn_string_as("app", "nope", "public")).await;
    let unknown = login_error(&server.conn_string_as("ghost", "nope", "public")).await;
    assert_eq!(wrong.0, "28P01");
    assert_eq!(unknown.0, "28P01");
    assert_eq!(
        wrong.1.replace("\"app\"", "USER"),
        unknown.1.replace("\"ghost\"", "USER"),
        "unknown users and wrong passwords get the same answer"
    );
    let admin_wrong = login_error(&server.conn_string_as("admin", "nope", "public")).await;
    assert_eq!(admin_wrong.0, "28P01");

    // The stored form is a SCRAM verifier; psql's \password sends one, which is kept as is.
    let verifier = postgres_protocol::password::scram_sha_256(b"hashed on the client");
    exec(&admin, &format!("ALTER USER app PASSWORD '{verifier}'")).await;
    connect_to(&server.conn_string_as("app", "hashed on the client", "public")).await;
    let roles = text_rows(
        &admin,
        "SELECT rolname, rolsuper, rolpassword FROM pg_roles ORDER BY rolname",
    )
    .await;
    assert_eq!(roles, vec!["admin|t|********", "app|f|********"]);
}

#[tokio::test]
async fn databases_keep_their_own_tables_across_restarts() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    {
        let server = TestServer::start_in(&data, &[]);
        let admin = server.connect().await;
        exec(&admin, "CREATE DATABASE sensors").await;
        exec(&admin, "CREATE USER app IDENTIFIED BY 'pw'").await;
        exec(&admin, "GRANT ALL ON DATABASE sensors TO app").await;
        exec(&admin, "CREATE TABLE shared_name (id int PRIMARY KEY)").await;
        exec(&admin, "INSERT INTO shared_name VALUES (1)").await;
        let app = connect_to(&server.conn_string_as("app", "pw", "sensors")).await;
        exec(
            &app,
            "CREATE TABLE shared_name (id int PRIMARY KEY, v text)",
        )
        .await;
        exec(
            &app,
            "INSERT INTO shared_name VALUES (7, 'seven'), (8, 'eight')",
        )
        .await;
        exec(
            &app,
            "CREATE VIEW eights AS SELECT * FROM shared_name WHERE id = 8",
        )
        .await;
        // Half the history in a checkpoint, the rest only in the log.
        exec(&admin, "CHECKPOINT").await;
        exec(&admin, "CREATE DATABASE later").await;
        exec(&app, "DELETE FROM shared_name WHERE id = 7").await;
    }
    let server = TestServer::start_in(&data, &[]);
    let admin = server.connect().await;
    assert_eq!(
        text_rows(&admin, "SELECT id FROM shared_name").await,
        vec!["1"]
    );
    assert_eq!(
        text_rows(&admin, "SELECT datname FROM pg_database ORDER BY 1").await,
        vec!["later", "public", "sensors"]
    );
    let app = connect_to(&server.conn_string_as("app", "pw", "sensors")).await;
    assert_eq!(
        text_rows(&app, "SELECT * FROM eights").await,
        vec!["8|eight"]
    );
    assert_eq!(
        text_rows(&app, "SELECT count(*) FROM shared_name").await,
        vec!["1"]
    );
    // The user sees public and the database granted to it, not `later`.
    assert_eq!(
        text_rows(&app, "SELECT datname FROM pg_database ORDER BY 1").await,
        vec!["public", "sensors"]
    );
}

#[tokio::test]
async fn grants_decide_what_general_users_may_do() {
    let server = TestServer::start();
    let admin = server.connect().await;
    for sql in [
        "CREATE DATABASE sensors",
        "CREATE DATABASE private",
        "CREATE USER reader IDENTIFIED BY 'r'",
        "CREATE USER writer IDENTIFIED BY 'w'",
        "GRANT SELECT ON sensors TO reader",
        "GRANT ALL ON DATABASE sensors TO writer",
    ] {
        exec(&admin, sql).await;
    }
    let writer = connect_to(&server.conn_string_as("writer", "w", "sensors")).await;
    exec(&writer, "CREATE TABLE t (id int PRIMARY KEY)").await;
    exec(&writer, "INSERT INTO t VALUES (1)").await;
    let reader = connect_to(&server.conn_string_as("reader", "r", "sensors")).await;
    assert_eq!(text_rows(&reader, "SELECT id FROM t").await, vec!["1"]);
    for sql in [
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET id = 3",
        "DELETE FROM t",
        "CREATE TABLE u (id int)",
        "DROP TABLE t",
        "CREATE INDEX ti ON t (id)",
    ] {
        fails(&reader, sql, "42501").await;
    }
    // Administrators' statements.
    for sql in [
        "CREATE DATABASE mine",
        "DROP DATABASE private",
        "CREATE USER other IDENTIFIED BY 'x'",
        "DROP USER writer",
        "GRANT ALL ON sensors TO reader",
        "CHECKPOINT",
        "ALTER USER reader PASSWORD 'x'",
    ] {
        fails(&writer, sql, "42501").await;
    }
    // A general user changes its own password.
    exec(&reader, "SET PASSWORD = 'r2'").await;
    connect_to(&server.conn_string_as("reader", "r2", "sensors")).await;

    let (code, message) = login_error(&server.conn_string_as("reader", "r2", "private")).await;
    assert_eq!(code, "42501");
    assert!(
        message.contains("permission denied for database"),
        "{message}"
    );
    // public is open to every user, with every privilege.
    let public = connect_to(&server.conn_string_as("reader", "r2", "public")).await;
    exec(&public, "CREATE TABLE mine (id int)").await;

    // A revoke takes effect at the next statement of a connected session.
    exec(&admin, "REVOKE SELECT ON DATABASE sensors FROM reader").await;
    fails(&reader, "SELECT id FROM t", "42501").await;
    // A grant of ALL replaces READ.
    exec(&admin, "GRANT SELECT ON sensors TO reader").await;
    exec(&admin, "GRANT ALL ON sensors TO reader").await;
    exec(&reader, "INSERT INTO t VALUES (2)").await;

    fails(&admin, "GRANT ALL ON DATABASE public TO reader", "0LP01").await;
    fails(&admin, "GRANT ALL ON DATABASE nosuch TO reader", "3D000").await;
    fails(&admin, "GRANT ALL ON DATABASE sensors TO nobody", "42704").await;
    fails(
        &admin,
        "GRANT INSERT ON DATABASE sensors TO reader",
        "0A000",
    )
    .await;
    fails(&admin, "GRANT ALL ON DATABASE sensors TO admin", "0LP01").await;
}

#[tokio::test]
async fn databases_and_users_follow_griddb_rules() {
    let server = TestServer::start();
    let admin = server.connect().await;
    fails(&admin, "CREATE DATABASE \"9lives\"", "22023").await;
    fails(&admin, "CREATE DATABASE \"a b\"", "22023").await;
    fails(&admin, "CREATE DATABASE information_schema", "42939").await;
    fails(&admin, "CREATE USER system IDENTIFIED BY 'x'", "42939").await;
    fails(&admin, "CREATE USER \"gs#x\" IDENTIFIED BY 'x'", "42939").await;
    fails(&admin, "CREATE USER nopass", "42601").await;
    fails(&admin, "CREATE ROLE grp", "0A000").await;
    fails(
        &admin,
        "CREATE ROLE boss SUPERUSER LOGIN PASSWORD 'x'",
        "0A000",
    )
    .await;
    exec(&admin, "CREATE USER dup IDENTIFIED BY 'x'").await;
    fails(&admin, "CREATE USER DUP IDENTIFIED BY 'y'", "42710").await;
    fails(&admin, "DROP USER nobody", "42704").await;
    exec(&admin, "DROP USER IF EXISTS nobody").await;
    fails(&admin, "DROP USER admin", "42501").await;

    exec(&admin, "CREATE DATABASE \"sensors/eu-1.v=2\"").await;
    exec(&admin, "CREATE DATABASE db1").await;
    // GridDB: CREATE DATABASE of an existing database does nothing.
    exec(&admin, "CREATE DATABASE DB1").await;
    fails(&admin, "BEGIN; CREATE DATABASE db2", "25001").await;
    exec(&admin, "ROLLBACK").await;
    fails(&admin, "DROP DATABASE public", "42939").await;
    fails(&admin, "DROP DATABASE nosuch", "3D000").await;
    exec(&admin, "DROP DATABASE IF EXISTS nosuch").await;

    let user_conn = server.conn_string_as("admin", ADMIN_PASSWORD, "db1");
    let in_db1 = connect_to(&user_conn).await;
    exec(&in_db1, "CREATE TABLE t (id int)").await;
    fails(&admin, "DROP DATABASE db1", "2BP01").await;
    exec(&in_db1, "DROP TABLE t").await;
    fails(&admin, "DROP DATABASE db1", "55006").await;
    fails(&in_db1, "DROP DATABASE db1", "55006").await;
    drop(in_db1);
    // The other session's entry leaves with its connection.
    let mut dropped = false;
    for _ in 0..200 {
        if admin.simple_query("DROP DATABASE db1").await.is_ok() {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(dropped, "db1 is dropped once nobody uses it");
    let (code, _) = login_error(&user_conn).await;
    assert_eq!(code, "3D000");
}

#[tokio::test]
async fn a_client_that_does_not_log_in_in_time_is_disconnected() {
    let tmp = common::temp_dir();
    let config = tmp.path().join("kura.json");
    std::fs::write(
        &config,
        r#"{"transaction": {"authenticationTimeoutInterval": "1s"}}"#,
    )
    .unwrap();
    let server = TestServer::start_with_args(&["--config", config.to_str().unwrap()]);
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut received = Vec::new();
    let read = common::within("the server closes the connection", async {
        socket.read_to_end(&mut received).await
    })
    .await;
    assert!(read.is_ok(), "{read:?}");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("canceling authentication due to timeout"),
        "{text}"
    );
    // A client that logs in in time keeps its connection past the interval.
    let client = server.connect().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(text_rows(&client, "SELECT 1").await, vec!["1"]);
}

/// Runs `kura user ARGS` on `data`, the password on standard input.
fn kura_user(data: &std::path::Path, args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kura user");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{password}").expect("write the password");
    drop(stdin);
    child.wait_with_output().expect("wait for kura user")
}

#[tokio::test]
async fn administrators_are_managed_with_kura_user_while_the_server_runs() {
    let server = TestServer::start();
    let data = server.data_dir();
    let added = kura_user(&data, &["add", "gs#ops"], "ops secret");
    assert!(added.status.success(), "{added:?}");
    let ops = connect_to(&server.conn_string_as("gs#ops", "ops secret", "public")).await;
    // An administrator may do what only administrators may.
    exec(&ops, "CREATE DATABASE made_by_ops").await;
    let file = std::fs::read_to_string(data.join("conf/password")).unwrap();
    assert!(!file.contains("ops secret") && file.contains("gs#ops,SCRAM-SHA-256$"));

    let refused = kura_user(&data, &["add", "ops"], "x");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("gs#NAME"));

    let changed = kura_user(&data, &["passwd", "gs#ops"], "new secret");
    assert!(changed.status.success(), "{changed:?}");
    let (code, _) = login_error(&server.conn_string_as("gs#ops", "ops secret", "public")).await;
    assert_eq!(code, "28P01");
    connect_to(&server.conn_string_as("gs#ops", "new secret", "public")).await;

    let removed = kura_user(&data, &["del", "gs#ops"], "");
    assert!(removed.status.success(), "{removed:?}");
    let (code, _) = login_error(&server.conn_string_as("gs#ops", "new secret", "public")).await;
    assert_eq!(code, "28P01");
    // A removed administrator's open session loses its rights (the server looks at the file
    // at most once a second for running sessions).
    let mut ended = false;
    for _ in 0..100 {
        if let Err(e) = ops.simple_query("SELECT 1").await {
            assert_eq!(sqlstate(&e), Some("28000"), "{e:?}");
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ended,
        "the removed administrator's session still runs statements"
    );
    // No password reaches the event log.
    let admin = server.connect().await;
    exec(&admin, "CREATE USER logged IDENTIFIED BY 'never-logged-pw'").await;
    for entry in std::fs::read_dir(data.join("log")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("never-logged-pw") && !text.contains("new secret"));
    }
}

/// Sends `bytes` as the first thing on a new connection; returns what the server answered
/// before it closed the connection.
async fn first_bytes(port: u16, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The server may close before reading everything; a failed write is an answer too.
    let _ = socket.write_all(bytes).await;
    let mut received = Vec::new();
    let _ = common::within("the server closes the connection", async {
        socket.read_to_end(&mut received).await
    })
    .await;
    received
}

#[tokio::test]
async fn malformed_startup_messages_end_only_their_connection() {
    let server = TestServer::start();
    // An unknown protocol version, a length far beyond any startup message, a length too
    // short to hold one, a startup message with no terminator, and plain garbage.
    let mut unterminated = 196608i32.to_be_bytes().to_vec();
    unterminated.extend_from_slice(b"user\0admin");
    let mut framed = ((unterminated.len() + 4) as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&unterminated);
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78],
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        vec![0, 0, 0, 2],
        framed,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200),
    ];
    for bytes in &cases {
        first_bytes(server.port, bytes).await;
    }
    let client = server.connect().await;
    assert_eq!(
        text_rows(&client, "SELECT 'still serving'").await,
        vec!["still serving"]
    );
}

#[tokio::test]
async fn md5_logins_when_configured() {
    let tmp = common::temp_dir();
    let config = tmp.path().join("kura.json");
    std::fs::write(
        &config,
        r#"{"security": {"authMethod": "MD5", "passwordEncryption": "MD5"}}"#,
    )
    .unwrap();
    let server = TestServer::start_with_args(&["--config", config.to_str().unwrap()]);
    // The administrator's verifier is SCRAM: it still logs in with SCRAM.
    let admin = server.connect().await;
    exec(&admin, "CREATE USER old_client IDENTIFIED BY 'md5 pw'").await;
    let client = connect_to(&server.conn_string_as("old_client", "md5 pw", "public")).await;
    assert_eq!(
        text_rows(&client, "SELECT current_user").await,
        vec!["old_client"]
    );
    let (code, _) = login_error(&server.conn_string_as("old_client", "wrong", "public")).await;
    assert_eq!(code, "28P01");
}

#[tokio::test]
async fn slow_statements_are_logged_with_passwords_masked() {
    let tmp = common::temp_dir();
    let config = tmp.path().join("kura.json");
    // 0s: every request counts as slow.
    std::fs::write(&config, r#"{"sql": {"traceLimitExecutionTime": "0s"}}"#).unwrap();
    let server = TestServer::start_with_args(&["--config", config.to_str().unwrap()]);
    let admin = server.connect().await;
    exec(&admin, "CREATE USER logged IDENTIFIED BY 'must-not-appear'").await;
    exec(&admin, "SET PASSWORD FOR logged = 'nor-this-one'").await;
    // The extended protocol too: the request ends at Sync, after the rows were sent.
    admin
        .query("SELECT $1::int + 1 AS two", &[&1i32])
        .await
        .unwrap();
    let mut log = String::new();
    for entry in std::fs::read_dir(server.data_dir().join("log")).unwrap() {
        log.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert!(log.contains("slow statement"), "{log}");
    assert!(
        log.contains("CREATE ROLE logged LOGIN PASSWORD '********'"),
        "{log}"
    );
    assert!(
        log.contains("ALTER ROLE logged WITH PASSWORD '********'"),
        "{log}"
    );
    assert!(log.contains("AS two"), "{log}");
    assert!(!log.contains("must-not-appear") && !log.contains("nor-this-one"));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_53300() {
    let tmp = common::temp_dir();
    let config = tmp.path().join("kura.json");
    std::fs::write(&config, r#"{"transaction": {"connectionLimit": 2}}"#).unwrap();
    let server = TestServer::start_with_args(&["--config", config.to_str().unwrap()]);
    let first = server.connect().await;
    let second = server.connect().await;
    let Err(e) = try_connect(&server.conn_string()).await else {
        panic!("a third connection must be refused");
    };
    assert_eq!(sqlstate(&e), Some("53300"), "{e:?}");
    let message = e.as_db_error().map(|d| d.message().to_string());
    assert_eq!(message.as_deref(), Some("sorry, too many clients already"));
    drop(second);
    // The slot frees when the server sees the connection end.
    let third = common::within("a freed slot", async {
        loop {
            if let Ok(client) = try_connect(&server.conn_string()).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(text_rows(&third, "SELECT 1").await, vec!["1"]);
    assert_eq!(text_rows(&first, "SELECT 2").await, vec!["2"]);
}
