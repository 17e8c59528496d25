//! Day-2 operations end to end: `kura stat`, the `kura_stat` relation and the Prometheus
//! endpoint show figures that change as work happens; `/health`; online setting changes
//! (`ALTER SYSTEM SET`, `kura config`) take effect at once, are logged, and settings that
//! need a restart say so.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::replicas::{event_log_mentions, eventually, kura_client};
use common::{TestServer, exec, fails, text_rows, within};

/// `GET path` on the metrics endpoint: status line and body.
fn http_get(address: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn metrics_address(server: &TestServer) -> String {
    server
        .startup_lines
        .iter()
        .find_map(|line| {
            let rest = line.split_once("metrics on http://")?.1;
            Some(rest.split('/').next()?.to_string())
        })
        .expect("the server prints where its metrics are")
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{body}"))
}

fn stat(server: &TestServer) -> serde_json::Value {
    let port = server.port.to_string();
    let out = kura_client(&["stat", "-p", &port]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kura stat: {e}\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_metrics_follow_the_work() {
    let server = TestServer::start_with_args(&["--metrics-listen", "127.0.0.1:0"]);
    let address = metrics_address(&server);
    let client = server.connect().await;

    let before = tokio::task::block_in_place(|| stat(&server));
    assert_eq!(before["cluster"]["nodeStatus"], "ACTIVE");
    assert_eq!(before["cluster"]["nodeRole"], "primary");
    for figure in [
        "processMemory",
        "storeMemoryLimit",
        "dataFileSize",
        "logFileSize",
        "numConnection",
        "numSession",
        "totalRowRead",
        "totalRowWrite",
        "totalLockConflictCount",
        "recoveryTime",
    ] {
        assert!(
            before["performance"][figure].is_number(),
            "{figure}: {before}"
        );
    }
    let metrics_before = http_get(&address, "/metrics").1;

    exec(&client, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    exec(
        &client,
        "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 500) g",
    )
    .await;
    assert_eq!(text_rows(&client, "SELECT count(*) FROM t").await, ["500"]);
    exec(&client, "CHECKPOINT").await;
    // Two transactions wanting one row: the second waits, a lock conflict.
    let other = server.connect().await;
    exec(&client, "BEGIN").await;
    exec(&client, "UPDATE t SET v = 'a' WHERE k = 1").await;
    let waiting = tokio::spawn(async move {
        other
            .simple_query("UPDATE t SET v = 'b' WHERE k = 1")
            .await
            .map(|_| ())
    });
    let observer = server.connect().await;
    eventually(
        &observer,
        "SELECT count(*) FROM pg_locks WHERE NOT granted",
        |rows| rows[0] != "0",
    )
    .await;
    exec(&client, "COMMIT").await;
    waiting.await.unwrap().expect("the waiting update");

    let after = tokio::task::block_in_place(|| stat(&server));
    let grew = |section: &str, figure: &str, by: i64| {
        let old = before[section][figure].as_i64().unwrap();
        let new = after[section][figure].as_i64().unwrap();
        assert!(new >= old + by, "{figure}: {old} -> {new}");
    };
    grew("performance", "totalRowWrite", 502);
    grew("performance", "totalRowRead", 500);
    grew("performance", "totalCommit", 3);
    grew("performance", "totalLockConflictCount", 1);
    grew("performance", "totalWriteOperation", 3);
    grew("checkpoint", "normalCheckpointOperation", 1);
    assert!(after["performance"]["dataFileSize"].as_i64().unwrap() > 0);
    assert!(after["performance"]["storeMemory"].as_i64().unwrap() > 0);

    // The same figures through SQL.
    let rows = text_rows(
        &client,
        "SELECT value FROM kura_stat WHERE section = 'performance' AND name = 'totalRowWrite'",
    )
    .await;
    assert!(rows[0].parse::<i64>().unwrap() >= 502, "{rows:?}");

    // GridDB's per-database metatable: every database for an administrator, with its
    // connections (this test holds two), the statements running (this one) and its row data
    // in memory.
    exec(&client, "CREATE DATABASE quiet").await;
    let rows = text_rows(
        &client,
        &format!(
            "SELECT database_name, node_port = {}, sql_connection_count, \
         sql_request_count, store_memory_size > 0, store_block_size >= store_memory_size, \
         transaction_connection_count, store_swap_read_size IS NULL \
             FROM \"#database_stats\" ORDER BY database_id",
            server.port
        ),
    )
    .await;
    assert_eq!(
        rows,
        vec!["public|t|2|1|t|t|0|t", "quiet|t|0|0|f|t|0|t"],
        "{rows:?}"
    );
    // pg_stat_activity shows this statement running, and the other connection idle after
    // its last one.
    let sql = "SELECT state, query FROM pg_stat_activity ORDER BY pid = pg_backend_pid()";
    let rows = text_rows(&client, sql).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("idle|"), "{rows:?}");
    assert_eq!(rows[1], format!("active|{sql}"));
    // Nobody sees a password there, and general users see only their own statements.
    exec(&observer, "CREATE USER watcher IDENTIFIED BY 'topsecret'").await;
    let shown = text_rows(&client, "SELECT query FROM pg_stat_activity").await;
    assert!(shown.iter().any(|q| q.contains("'********'")), "{shown:?}");
    assert!(!shown.iter().any(|q| q.contains("topsecret")), "{shown:?}");
    let watcher =
        common::connect_to(&server.conn_string_as("watcher", "topsecret", "public")).await;
    let seen = text_rows(
        &watcher,
        "SELECT usename, query FROM pg_stat_activity ORDER BY pid",
    )
    .await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    for row in &seen[..2] {
        assert_eq!(row, "admin|<insufficient privilege>");
    }

    let (status, metrics_after) = http_get(&address, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(metrics_after.contains("# TYPE kura_commits_total counter"));
    for name in [
        "kura_commits_total",
        "kura_rows_written_total",
        "kura_checkpoints_total",
    ] {
        assert!(
            metric(&metrics_after, name) > metric(&metrics_before, name),
            "{name} did not grow"
        );
    }
    assert!(metric(&metrics_after, "kura_process_resident_bytes") > 0.0);
    let (status, body) = http_get(&address, "/health");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"role\":\"primary\""), "{body}");
    assert!(http_get(&address, "/nothing").0.contains("404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_settings_take_effect_and_the_rest_need_a_restart() {
    let server = TestServer::start();
    let client = server.connect().await;
    let data_dir = server.data_dir();

    // The slow-statement log starts at 300 s: a short statement is not logged.
    exec(&client, "SELECT 'fast before the change'").await;
    exec(
        &client,
        "ALTER SYSTEM SET \"/sql/traceLimitExecutionTime\" = '0s'",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SHOW \"/sql/traceLimitExecutionTime\"").await,
        ["0s"]
    );
    exec(&client, "SELECT 'logged after the change'").await;
    within("the slow-statement entry", async {
        while !event_log_mentions(&data_dir, "logged after the change") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(!event_log_mentions(&data_dir, "fast before the change"));
    assert!(event_log_mentions(&data_dir, "setting changed online"));

    // A lower store memory limit swaps rows out at once.
    exec(&client, "CREATE TABLE big (k int PRIMARY KEY, v text)").await;
    exec(
        &client,
        "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g",
    )
    .await;
    let port = server.port.to_string();
    let said = tokio::task::block_in_place(|| {
        kura_client(&[
            "config",
            "set",
            "/dataStore/storeMemoryLimit",
            "1MB",
            "-p",
            &port,
        ])
    });
    assert!(
        said.contains("1MB") && said.contains("online change"),
        "{said}"
    );
    eventually(
        &client,
        "SELECT value FROM kura_stat WHERE name = 'storeSwapped'",
        |rows| rows[0] != "0",
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT count(*) FROM big").await,
        ["60000"]
    );
    let row = text_rows(
        &client,
        "SELECT setting, context, source, boot_val FROM pg_settings \
         WHERE name = '/dataStore/storeMemoryLimit'",
    )
    .await;
    assert_eq!(row, ["1MB|sighup|online change|1GB"]);
    exec(
        &client,
        "ALTER SYSTEM RESET \"/dataStore/storeMemoryLimit\"",
    )
    .await;
    let row = text_rows(
        &client,
        "SELECT setting, source FROM pg_settings WHERE name = '/dataStore/storeMemoryLimit'",
    )
    .await;
    assert_eq!(row, ["1GB|configuration file"]);

    fails(
        &client,
        "ALTER SYSTEM SET \"/system/servicePort\" = 1",
        "55P02",
    )
    .await;
    fails(
        &client,
        "ALTER SYSTEM SET \"/dataStore/storeMemoryLimit\" = 'lots'",
        "22023",
    )
    .await;
    fails(&client, "ALTER SYSTEM SET \"/no/such\" = 1", "42704").await;
    exec(&client, "CREATE USER plain IDENTIFIED BY 'pw'").await;
    let plain = common::connect_to(&server.conn_string_as("plain", "pw", "public")).await;
    fails(
        &plain,
        "ALTER SYSTEM SET \"/sql/traceLimitQuerySize\" = 10",
        "42501",
    )
    .await;
    let listed = text_rows(
        &client,
        "SELECT count(*) FROM pg_settings WHERE name LIKE '/%'",
    )
    .await;
    assert!(listed[0].parse::<i64>().unwrap() > 40, "{listed:?}");
}
