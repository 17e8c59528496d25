//! The audit log and the event log through a real server: records per category and level,
//! their fields, masked passwords, truncated statements, rotation by size and at restart, and
//! the event log's per-category levels.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, TestServer, connect_to, exec, text_rows};

fn start_with(tmp: &Path, config: &str) -> TestServer {
    let file = tmp.join("kura.json");
    std::fs::write(&file, config).unwrap();
    TestServer::start_with_args(&["--config", file.to_str().unwrap()])
}

/// Every file of `dir`, oldest first, with its text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort_by_key(|(name, _)| sequence_key(name));
    files
}

/// `kura-audit-20261122-10.log` → ("20261122", 10), so that file 10 sorts after file 9.
fn sequence_key(name: &str) -> (String, u32) {
    let stem = name.trim_end_matches(".log");
    let mut parts = stem.rsplitn(3, '-');
    let sequence = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let date = parts.next().unwrap_or("").to_string();
    (date, sequence)
}

fn audit_text(server: &TestServer) -> String {
    files(&server.data_dir().join("audit"))
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// Waits until the audit log holds a line containing all of `parts` (records of ended
/// connections are written when the server notices the end); returns that line.
async fn await_line(server: &TestServer, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = audit_text(server);
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no audit line with {parts:?} in:\n{text}"
        );
        // The test's runtime also runs the client connections that are closing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines_with(text: &str, part: &str) -> usize {
    text.lines().filter(|l| l.contains(part)).count()
}

#[tokio::test]
async fn connections_and_statements_are_audited_as_configured() {
    let tmp = common::temp_dir();
    let server = start_with(
        tmp.path(),
        r#"{"trace": {"auditLogs": true, "auditSqlRead": "INFO", "auditSqlWrite": "ERROR",
            "auditDdl": "INFO", "auditDcl": "INFO", "auditStat": "INFO",
            "auditMessageLimit": 40}}"#,
    );
    let admin = connect_to(&format!(
        "{} application_name=audit-test",
        server.conn_string()
    ))
    .await;
    exec(&admin, "CREATE TABLE t (a int)").await;
    exec(&admin, "INSERT INTO t VALUES (1)").await;
    assert!(
        admin
            .simple_query("INSERT INTO missing VALUES (1)")
            .await
            .is_err()
    );
    exec(&admin, "SELECT a FROM t").await;
    exec(&admin, "BEGIN; COMMIT").await;
    exec(&admin, "CREATE USER auditor IDENTIFIED BY 'audit-secret'").await;
    exec(&admin, "SELECT count(*) FROM pg_stat_activity").await;
    exec(
        &admin,
        "SELECT 'a statement far longer than forty bytes of text'",
    )
    .await;
    assert!(
        tokio_postgres::connect(
            &server.conn_string_as("auditor", "wrong-secret", "public"),
            tokio_postgres::NoTls
        )
        .await
        .is_err()
    );
    assert!(
        tokio_postgres::connect(
            &server.conn_string_as("auditor", "audit-secret", "nowhere"),
            tokio_postgres::NoTls
        )
        .await
        .is_err()
    );
    drop(admin);

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let login = await_line(&server, &["AUDIT_CONNECT", " CONNECT SQL CONNECT "]).await;
    assert!(
        login.contains(&format!(" {host} "))
            && login
                .contains(" INFO AUDIT_CONNECT [00000] admin ADMIN public audit-test 127.0.0.1:"),
        "{login}"
    );
    assert!(
        login.contains(&format!(
            " 127.0.0.1:{} CONNECT SQL CONNECT (null) ",
            server.port
        )),
        "{login}"
    );
    let ddl = await_line(&server, &["AUDIT_DDL"]).await;
    assert!(
        ddl.contains(" INFO AUDIT_DDL [00000] admin ADMIN public audit-test ")
            && ddl.contains(" DDL SQL DDL \"CREATE TABLE t (a INT)\" ")
            && ddl.ends_with(":1 \"tables=['t']\""),
        "{ddl}"
    );
    let failed_insert = await_line(&server, &["AUDIT_SQL_WRITE"]).await;
    assert!(
        failed_insert.contains(" ERROR AUDIT_SQL_WRITE [42P01] ")
            && failed_insert.contains("\"INSERT INTO missing VALUES (1)\"")
            && failed_insert.contains("tables=['missing']; error="),
        "{failed_insert}"
    );
    let read = await_line(&server, &["AUDIT_SQL_READ", "FROM t"]).await;
    assert!(
        read.contains(" SQL_READ SQL SELECT \"SELECT a FROM t\" "),
        "{read}"
    );
    let dcl = await_line(&server, &["AUDIT_DCL"]).await;
    assert!(dcl.contains("LOGIN PASSWORD '****..."), "{dcl}");
    let stat = await_line(&server, &["AUDIT_STAT"]).await;
    assert!(stat.contains("tables=['pg_stat_activity']"), "{stat}");
    let cut = await_line(&server, &["a statement far"]).await;
    assert!(
        cut.contains("\"SELECT 'a statement far longer than fort...\""),
        "{cut}"
    );
    let failed_login = await_line(&server, &["[28P01]"]).await;
    assert!(
        failed_login
            .contains(" ERROR AUDIT_CONNECT [28P01] auditor (null) public (null) 127.0.0.1:")
            && failed_login.contains(" CONNECT SQL AUTHENTICATE (null) "),
        "{failed_login}"
    );
    let no_database = await_line(&server, &["[3D000]"]).await;
    assert!(
        no_database.contains(" auditor (null) nowhere "),
        "{no_database}"
    );
    await_line(&server, &["admin ADMIN", " CONNECT SQL DISCONNECT "]).await;

    let text = audit_text(&server);
    // A successful write and the transaction control are not audited at these levels.
    assert_eq!(lines_with(&text, "VALUES (1)"), 1, "{text}");
    assert_eq!(lines_with(&text, "BEGIN"), 0, "{text}");
    // Every record is one line of the same shape.
    for line in text.lines() {
        assert!(line.starts_with("20"), "{line}");
        assert!(line.contains(" AUDIT_"), "{line}");
    }
    let mut every_log = text.clone();
    for (_, log) in files(&server.data_dir().join("log")) {
        every_log.push_str(&log);
    }
    for password in ["audit-secret", "wrong-secret", ADMIN_PASSWORD] {
        assert!(!every_log.contains(password), "{password} appears in a log");
    }
}

#[tokio::test]
async fn audit_files_roll_over_by_size_and_at_restart() {
    let tmp = common::temp_dir();
    let data = tmp.path().join("data");
    let config = tmp.path().join("kura.json");
    std::fs::write(
        &config,
        r#"{"trace": {"auditLogs": true, "auditFileLimit": "1KB",
            "auditSqlRead": "INFO", "auditSystem": "INFO"}}"#,
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut server = TestServer::start_in(&data, &args);
    let client = server.connect().await;
    for i in 0..20 {
        exec(&client, &format!("SELECT {i} AS statement_number")).await;
    }
    drop(client);
    await_line(&server, &[" DISCONNECT "]).await;
    let before = files(&data.join("audit"));
    assert!(before.len() >= 2, "{before:?}");
    for (name, text) in &before {
        assert!(name.starts_with("kura-audit-"), "{name}");
        assert!(
            text.len() <= 1024,
            "{name} passed the limit: {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "{name} ends inside a record");
    }
    let all: String = before.iter().map(|(_, t)| t.as_str()).collect();
    for i in 0..20 {
        assert_eq!(
            lines_with(&all, &format!("SELECT {i} AS statement_number")),
            1
        );
    }
    server.terminate();
    let server = TestServer::start_in(&data, &args);
    drop(server.connect().await);
    await_line(&server, &[" DISCONNECT "]).await;
    let after = files(&data.join("audit"));
    let last_before = &before.last().unwrap().0;
    let newest = &after.last().unwrap().0;
    assert!(
        sequence_key(newest) > sequence_key(last_before),
        "a restart begins a new file: {last_before} then {newest}"
    );
    // What was written before the restart stays as it was.
    for (name, text) in &before {
        let kept = after.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(&kept.1, text, "{name} changed");
    }
}

#[tokio::test]
async fn event_log_levels_follow_categories_and_audit_stays_off_by_default() {
    let tmp = common::temp_dir();
    // Failed logins are WARN in transactionService; slow statements WARN in sqlService.
    let server = start_with(
        tmp.path(),
        r#"{"sql": {"traceLimitExecutionTime": "0s"},
            "trace": {"sqlService": "LEVEL_ERROR"}}"#,
    );
    let admin = server.connect().await;
    exec(&admin, "SELECT 'not logged as slow'").await;
    assert!(
        tokio_postgres::connect(
            &server.conn_string_as("admin", "wrong", "public"),
            tokio_postgres::NoTls
        )
        .await
        .is_err()
    );
    assert_eq!(text_rows(&admin, "SELECT 1").await, vec!["1"]);
    let logs = files(&server.data_dir().join("log"));
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    assert!(
        logs.iter()
            .any(|(name, _)| name.starts_with(&format!("kura-{today}-")) && name.ends_with(".log")),
        "{:?}",
        logs.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let text: String = logs.iter().map(|(_, t)| t.as_str()).collect();
    assert!(text.contains("login failed"), "{text}");
    assert!(!text.contains("slow statement"), "{text}");
    assert!(!server.data_dir().join("audit").exists());
}
