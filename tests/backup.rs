//! Online backup and restore, end to end through `kura backup` / `kura restore` and SQL:
//! a backup taken while clients write restores to a consistent cut; incremental chains;
//! point-in-time restore between two known commits from the continuous archive; a backup
//! restored after its server was killed and its data directory lost; damage found by
//! verify and refused by restore; and the errors of misuse.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::replicas::{config_file, eventually, kura_client, kura_run as kura, printed as text};
use common::{TestServer, exec, fails, text_rows};

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A server committing synchronously (so what a client saw acknowledged is durable and
/// archived at once) with its backups in `backups`.
fn sync_server(dir: &Path, backups: &Path) -> TestServer {
    let config = config_file(
        dir,
        "kura.json",
        &format!(
            r#"{{"dataStore": {{"logWriteMode": 0, "backupPath": "{}"}}}}"#,
            path(backups)
        ),
    );
    TestServer::start_in(&dir.join("data"), &["--config", &config])
}

/// Restores `set` into `data_dir` with extra arguments; panics if it fails.
fn restore(backups: &Path, set: &str, data_dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "restore",
        set,
        "--backup-path",
        path(backups),
        "--data-dir",
        path(data_dir),
    ];
    args.extend_from_slice(extra);
    kura_client(&args)
}

async fn rows(server: &TestServer, sql: &str) -> Vec<String> {
    text_rows(&server.connect().await, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_writes_restores_a_consistent_cut() {
    let dir = common::temp_dir();
    let backups = dir.path().join("backups");
    let server = sync_server(dir.path(), &backups);
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE w (writer int, seq int, pad text, PRIMARY KEY (writer, seq)) \
         PARTITION BY HASH (writer) PARTITIONS 4",
    )
    .await;
    exec(
        &client,
        "INSERT INTO w SELECT 99, g, repeat('x', 100) FROM generate_series(1, 20000) g",
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = server.connect().await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = 0;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!("INSERT INTO w VALUES ({writer}, {}, 'w')", acknowledged + 1);
                client.simple_query(&sql).await.expect("insert");
                acknowledged += 1;
            }
            acknowledged
        }));
    }
    // Writes before the backup starts must all be in it.
    let before = text_rows(&client, "SELECT count(*) FROM w WHERE writer < 4").await;
    let port = server.port.to_string();
    let said = tokio::task::spawn_blocking(move || {
        kura_client(&["backup", "create", "cut1", "-p", &port])
    })
    .await
    .unwrap();
    assert!(said.contains("cut1_lv0 (full) OK"), "{said}");
    let after = text_rows(&client, "SELECT count(*) FROM w WHERE writer < 4").await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }
    drop(server);

    let list = kura_client(&["backup", "list", "--backup-path", path(&backups)]);
    assert!(list.contains(" cut1") && list.contains("OK"), "{list}");
    let verified = kura_client(&["backup", "verify", "cut1", "--backup-path", path(&backups)]);
    assert!(verified.contains("the backup is sound"), "{verified}");

    let restored_dir = dir.path().join("restored");
    restore(&backups, "cut1", &restored_dir, &[]);
    let restored = TestServer::start_in(&restored_dir, &[]);
    assert_eq!(
        rows(&restored, "SELECT count(*) FROM w WHERE writer = 99").await,
        ["20000"]
    );
    // Each writer commits in order, so a consistent cut holds a prefix of its rows: every
    // sequence number from 1 to its highest, and nothing it had not committed yet.
    let mut total = 0;
    for (writer, acknowledged) in acknowledged.iter().enumerate() {
        let counts = rows(
            &restored,
            &format!("SELECT count(*), coalesce(max(seq), 0) FROM w WHERE writer = {writer}"),
        )
        .await;
        let (count, max) = counts[0].split_once('|').expect("two columns");
        assert_eq!(count, max, "writer {writer}: a gap in its rows");
        let count: i64 = count.parse().unwrap();
        assert!(
            count <= *acknowledged,
            "writer {writer}: rows it never committed"
        );
        total += count;
    }
    let before: i64 = before[0].parse().unwrap();
    let after: i64 = after[0].parse().unwrap();
    eprintln!(
        "restored {total} writer rows; {before} were committed before the backup began, \
         {after} when it ended, {acknowledged:?} in all"
    );
    assert!(
        (before..=after).contains(&total),
        "restored {total} rows; {before} were committed before the backup, {after} after it"
    );
}

/// The rows of `t` as text, in key order.
async fn contents(client: &tokio_postgres::Client) -> Vec<String> {
    text_rows(client, "SELECT k, v FROM t ORDER BY k").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_chains_restore_each_level() {
    let dir = common::temp_dir();
    let backups = dir.path().join("backups");
    let server = sync_server(dir.path(), &backups);
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (k int PRIMARY KEY, v text) PARTITION BY HASH (k) PARTITIONS 8",
    )
    .await;
    exec(
        &client,
        "INSERT INTO t SELECT g, 'v0' FROM generate_series(1, 800) g",
    )
    .await;
    let port = server.port.to_string();
    // Takes a backup of `mode`, which must be written as `data` and succeed.
    let backup = |mode: &'static str, data: &'static str| {
        let port = port.clone();
        async move {
            let said = tokio::task::spawn_blocking(move || {
                kura_client(&["backup", "create", "chain", "--mode", mode, "-p", &port])
            })
            .await
            .unwrap();
            assert!(said.contains(&format!("{data} ({mode}) OK")), "{said}");
            said
        }
    };
    let mut expected = Vec::new();
    backup("baseline", "chain_lv0").await;
    expected.push(contents(&client).await);
    // One partition changes: the incremental backup copies it alone.
    exec(&client, "UPDATE t SET v = 'v1' WHERE k = 8").await;
    let said = backup("incremental", "chain_lv1_000_001").await;
    assert!(
        said.contains(" 2 files"),
        "the manifest and one partition file: {said}"
    );
    expected.push(contents(&client).await);
    exec(&client, "DELETE FROM t WHERE k BETWEEN 100 AND 120").await;
    exec(&client, "INSERT INTO t VALUES (5000, 'new')").await;
    backup("since", "chain_lv1_001_000").await;
    expected.push(contents(&client).await);
    exec(&client, "UPDATE t SET v = 'v3' WHERE k = 5000").await;
    backup("incremental", "chain_lv1_001_001").await;
    expected.push(contents(&client).await);

    let listed = kura_client(&["backup", "list", "chain", "--backup-path", path(&backups)]);
    for data in [
        "chain_lv0",
        "chain_lv1_000_001",
        "chain_lv1_001_000",
        "chain_lv1_001_001",
    ] {
        assert!(listed.contains(data), "{listed}");
    }
    let overview = kura_client(&["backup", "list", "--backup-path", path(&backups)]);
    assert!(
        overview.contains("*chain"),
        "an incremental set is starred: {overview}"
    );
    drop(server);

    // Restoring up to each backup's end uses the chain up to it.
    let infos: Vec<serde_json::Value> = [
        "chain_lv0",
        "chain_lv1_000_001",
        "chain_lv1_001_000",
        "chain_lv1_001_001",
    ]
    .iter()
    .map(|data| {
        let text =
            std::fs::read_to_string(backups.join("chain").join(data).join("backup_info.json"))
                .unwrap();
        serde_json::from_str(&text).unwrap()
    })
    .collect();
    for (level, info) in infos.iter().enumerate() {
        let end = info["end_lsn"].as_u64().unwrap().to_string();
        let target = dir.path().join(format!("level{level}"));
        let plan = restore(&backups, "chain", &target, &["--until-lsn", &end, "--test"]);
        assert!(plan.contains(info["data"].as_str().unwrap()), "{plan}");
        assert!(!target.join("checkpoint").exists(), "--test writes nothing");
        restore(&backups, "chain", &target, &["--until-lsn", &end]);
        let restored = TestServer::start_in(&target, &[]);
        assert_eq!(
            contents(&restored.connect().await).await,
            expected[level],
            "level {level}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restore_from_the_archive_and_after_losing_the_data_directory() {
    let dir = common::temp_dir();
    let backups = dir.path().join("backups");
    let mut server = sync_server(dir.path(), &backups);
    let client = server.connect().await;
    exec(&client, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    exec(&client, "INSERT INTO t VALUES (1, 'before the backup')").await;
    let row = client
        .simple_query("BACKUP DATABASE TO 'pitr' MODE auto")
        .await
        .expect("BACKUP DATABASE");
    assert_eq!(common::rows_as_text(row)[0].split('|').nth(3), Some("OK"));

    exec(&client, "INSERT INTO t VALUES (2, 'a')").await;
    let between = text_rows(&client, "SELECT now()::text").await.remove(0);
    let lsn_between = text_rows(&client, "SELECT pg_current_wal_lsn()")
        .await
        .remove(0);
    exec(&client, "INSERT INTO t VALUES (3, 'b')").await;
    exec(&client, "UPDATE t SET v = 'changed' WHERE k = 1").await;
    exec(&client, "CREATE TABLE late (x int)").await;
    exec(&client, "INSERT INTO late VALUES (42)").await;
    let last = contents(&client).await;
    let end = text_rows(&client, "SELECT pg_current_wal_lsn()")
        .await
        .remove(0);
    // Everything acknowledged is archived once the archiver has caught up with the log.
    eventually(
        &client,
        "SELECT archived_lsn FROM pg_stat_archiver",
        |rows| rows[0] == end,
    )
    .await;
    server.kill();
    std::fs::remove_dir_all(dir.path().join("data")).expect("lose the data directory");

    let verified = kura_client(&["backup", "verify", "pitr", "--backup-path", path(&backups)]);
    assert!(verified.contains("archive: OK"), "{verified}");

    let latest = dir.path().join("latest");
    let said = restore(&backups, "pitr", &latest, &[]);
    assert!(said.contains(&format!("log to LSN {end}")), "{said}");
    let restored = TestServer::start_in(&latest, &[]);
    let restored_client = restored.connect().await;
    assert_eq!(contents(&restored_client).await, last);
    assert_eq!(
        text_rows(&restored_client, "SELECT x FROM late").await,
        ["42"]
    );
    drop(restored);

    for (name, target) in [
        ("by_time", ["--until", &between]),
        ("by_lsn", ["--until-lsn", &lsn_between]),
    ] {
        restore(&backups, "pitr", &dir.path().join(name), &target);
        let restored = TestServer::start_in(&dir.path().join(name), &[]);
        assert_eq!(
            contents(&restored.connect().await).await,
            ["1|before the backup", "2|a"],
            "{name}"
        );
    }
    let by_lsn = dir.path().join("by_lsn");

    // Restore never writes over a database, and a target past the log is refused.
    let refused = kura(&[
        "restore",
        "pitr",
        "--backup-path",
        path(&backups),
        "--data-dir",
        path(&by_lsn),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("already holds a database"),
        "{}",
        text(&refused)
    );
    let beyond = (end.parse::<u64>().unwrap() + 100).to_string();
    let refused = kura(&[
        "restore",
        "pitr",
        "--backup-path",
        path(&backups),
        "--data-dir",
        path(&dir.path().join("beyond")),
        "--until-lsn",
        &beyond,
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("before the target LSN"),
        "{}",
        text(&refused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_is_found_by_verify_and_refused_by_restore() {
    let dir = common::temp_dir();
    let backups = dir.path().join("backups");
    let server = sync_server(dir.path(), &backups);
    let client = server.connect().await;
    exec(&client, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    exec(
        &client,
        "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g",
    )
    .await;
    exec(&client, "BACKUP DATABASE TO 'dmg'").await;
    drop(server);

    let data_dir = backups
        .join("dmg")
        .join("dmg_lv0")
        .join("checkpoint")
        .join("data");
    let damaged = std::fs::read_dir(&data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".kpart.zst"))
        .expect("a partition file");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&damaged, bytes).unwrap();
    let name = damaged.file_name().unwrap().to_string_lossy().into_owned();

    let verified = kura(&["backup", "verify", "dmg", "--backup-path", path(&backups)]);
    assert!(!verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains(&name), "{}", text(&verified));
    assert!(text(&verified).contains("DAMAGED"), "{}", text(&verified));

    for extra in [&["--test"][..], &[]] {
        let target = dir.path().join("restored");
        let mut args = vec![
            "restore",
            "dmg",
            "--backup-path",
            path(&backups),
            "--data-dir",
            path(&target),
        ];
        args.extend_from_slice(extra);
        let refused = kura(&args);
        assert!(!refused.status.success(), "{}", text(&refused));
        assert!(text(&refused).contains("digest"), "{}", text(&refused));
        assert!(!target.join("checkpoint").exists());
    }

    // An altered information file is refused as well.
    let info = backups.join("dmg").join("dmg_lv0").join("backup_info.json");
    let altered = std::fs::read_to_string(&info)
        .unwrap()
        .replace("\"full\"", "\"baseline\"");
    std::fs::write(&info, altered).unwrap();
    let verified = kura(&["backup", "verify", "dmg", "--backup-path", path(&backups)]);
    assert!(!verified.status.success());
    assert!(
        text(&verified).contains("altered or damaged"),
        "{}",
        text(&verified)
    );
}

#[tokio::test]
async fn misuse_is_refused_with_the_right_sqlstate() {
    let server = TestServer::start();
    let client = server.connect().await;
    fails(&client, "BACKUP DATABASE TO 'much_too_long_name'", "42602").await;
    fails(&client, "BACKUP DATABASE TO '../escape'", "42602").await;
    fails(&client, "CALL kura_backup('b1', 'sometimes')", "22023").await;
    fails(
        &client,
        "CALL kura_backup('nobase', 'incremental')",
        "42704",
    )
    .await;
    exec(&client, "BACKUP DATABASE TO 'b1'").await;
    fails(&client, "BACKUP DATABASE TO 'b1'", "42710").await;
    fails(&client, "CALL kura_backup('b1', 'since')", "55000").await;
    fails(&client, "CALL kura_backup('b1', 'auto_stop')", "55000").await;
    exec(&client, "CREATE USER reader IDENTIFIED BY 'pw'").await;
    let reader = common::connect_to(&server.conn_string_as("reader", "pw", "public")).await;
    fails(&reader, "BACKUP DATABASE TO 'b2'", "42501").await;
    let progress = text_rows(&client, "SELECT count(*) FROM pg_stat_progress_basebackup").await;
    assert_eq!(progress, ["0"]);
    let names: BTreeSet<String> = std::fs::read_dir(server.data_dir().join("backup"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["b1".to_string()]));
}
