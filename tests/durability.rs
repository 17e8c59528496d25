//! Durability seen from outside: a real `kura serve` process on a data directory the test
//! keeps, killed with SIGKILL (a crash) or stopped with SIGTERM (a clean shutdown), restarted,
//! and checked for exactly the data it acknowledged. The on-disk files are damaged the way a
//! crash or a bad disk would (a torn or overwritten log tail, a flipped byte in a checkpoint
//! or in an older log segment), and `kura check [--repair]` is run on the result.
//!
//! Covered: DDL and data across log replay, checkpoint + replay and a clean shutdown; torn
//! log tails (repaired at start or by `kura check --repair`); damage in an older segment
//! (refused at start, repaired offline); falling back to an older checkpoint when the newest
//! is damaged; checkpoints racing concurrent writers; failed log writes (RLIMIT_FSIZE);
//! the data-directory lock; `synchronous_commit`.
//!
//! Synchronisation is on the server's readiness line, on statement completion and on process
//! exit (bounded `try_wait` polling); no test sleeps to wait for the server or asserts a timing.
//! The log is read directly only to find record boundaries (segment header, then frames of a
//! 17-byte header and a payload; see `src/wal/`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, exec, sqlstate, text_rows, within};
use tokio::sync::Notify;
use tokio_postgres::Client;

/// Bytes before the first frame of a log segment.
const SEGMENT_HEADER_LEN: usize = 32;
/// Payload length (u32), CRC32C (u32), LSN (u64), flags (u8).
const FRAME_HEADER_LEN: usize = 17;
/// First payload byte of a commit's last frame and of a catalog (DDL) record, both with
/// their time (log format 4, docs/STORAGE_FORMAT.md).
const KIND_COMMIT: u8 = 4;
const KIND_CATALOG: u8 = 5;
/// A frame of a commit that the frames with the next LSNs continue.
const KIND_COMMIT_PART: u8 = 3;

/// Longest wait for a process the test expects to exit on its own (`kura check`, a server
/// that must refuse to start).
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// SYNC log writes; no periodic checkpoint gets in the way of the ones a test takes.
const SYNC_CONFIG: &str =
    r#"{"dataStore": {"logWriteMode": 0}, "checkpoint": {"checkpointInterval": "1h"}}"#;

// ---------------------------------------------------------------------------------------
// Processes and files
// ---------------------------------------------------------------------------------------

/// A data directory (and optional configuration file) that outlives the servers on it.
struct Fixture {
    tmp: tempfile::TempDir,
    data: PathBuf,
    args: Vec<String>,
}

impl Fixture {
    /// A fresh data directory; `config` is the JSON of a `--config` file, if any.
    fn new(config: Option<&str>) -> Fixture {
        let tmp = common::temp_dir();
        let data = tmp.path().join("data");
        let mut args = Vec::new();
        if let Some(json) = config {
            let path = tmp.path().join("kura.json");
            std::fs::write(&path, json).expect("write the configuration file");
            args.push("--config".to_string());
            args.push(path.to_str().expect("UTF-8 temp path").to_string());
        }
        Fixture { tmp, data, args }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    fn start(&self) -> TestServer {
        TestServer::start_in(&self.data, &self.args())
    }

    /// The `kura serve` command for this directory (not started).
    fn command(&self) -> Command {
        TestServer::command(&self.data, &self.args())
    }

    /// Starts a server whose stderr goes to a file instead of the test output, and returns
    /// what it printed up to readiness (recovery reports before it listens), ANSI colours
    /// removed.
    fn start_capturing_stderr(&self, label: &str) -> (TestServer, String) {
        let path = self.tmp.path().join(format!("{label}.stderr"));
        let file = File::create(&path).expect("create the stderr file");
        let fd = file.as_raw_fd();
        let mut command = self.command();
        // SAFETY: runs in the child between fork and exec, after std has connected stdio, and
        // only calls dup2 (async-signal-safe). fd 2 then is the file; the stderr pipe std made
        // is closed in the child, so TestServer's reader of it just sees EOF.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(fd, 2) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let server = TestServer::start_command(&mut command, &self.data);
        drop(file);
        let text = strip_ansi(&std::fs::read_to_string(&path).expect("read the stderr file"));
        eprintln!("[{label} stderr up to readiness]\n{text}");
        (server, text)
    }
}

/// A process that ran to completion.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` until it exits (at most [`EXIT_TIMEOUT`]), collecting its output.
fn run_to_exit(mut command: Command, what: &str) -> Finished {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = read_in_thread(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_thread(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = strip_ansi(&stderr.join().expect("stderr reader"));
    eprintln!("[{what}] exit {status:?}\n[{what} stdout]\n{stdout}[{what} stderr]\n{stderr}");
    let status =
        status.unwrap_or_else(|| panic!("{what} did not exit within {EXIT_TIMEOUT:?}; killed"));
    Finished {
        status,
        stdout,
        stderr,
    }
}

fn read_in_thread(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// `kura check --data-dir DATA [--repair]`.
fn kura_check(data: &Path, repair: bool) -> Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kura"));
    command.arg("check").arg("--data-dir").arg(data);
    if repair {
        command.arg("--repair");
    }
    run_to_exit(
        command,
        if repair {
            "kura check --repair"
        } else {
            "kura check"
        },
    )
}

/// Asserts that `kura check` found nothing wrong.
fn assert_check_clean(data: &Path) {
    let check = kura_check(data, false);
    assert!(check.status.success(), "kura check should pass: {check:?}");
    let summary = summary_line(&check);
    assert!(summary.ends_with("; 0 problems"), "{summary}");
}

/// The report's last line, which starts with `summary:`.
fn summary_line(check: &Finished) -> String {
    let last = check.stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("summary:"),
        "the report ends in a summary line: {check:?}"
    );
    last
}

/// Removes ANSI escape sequences (the server's log lines are coloured).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One record frame found in a log segment.
#[derive(Debug, Clone, Copy)]
struct Frame {
    offset: u64,
    len: u64,
    lsn: u64,
    /// First payload byte: [`KIND_COMMIT`] or [`KIND_CATALOG`] (the log is not compressed).
    kind: u8,
}

/// The whole frames of a segment file, by their length fields (checksums are not checked).
fn frames(path: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(path).expect("read a log segment");
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    while pos + FRAME_HEADER_LEN < bytes.len() {
        let payload = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        let len = FRAME_HEADER_LEN + payload;
        if payload == 0 || pos + len > bytes.len() {
            break;
        }
        out.push(Frame {
            offset: pos as u64,
            len: len as u64,
            lsn,
            kind: bytes[pos + FRAME_HEADER_LEN],
        });
        pos += len;
    }
    out
}

/// The log segments of `data`, oldest first.
fn segments(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data.join("txnlog"))
        .expect("list txnlog/")
        .map(|e| e.expect("txnlog entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

/// The newest segment holding at least one record, and its frames.
fn newest_segment_with_records(data: &Path) -> (PathBuf, Vec<Frame>) {
    segments(data)
        .into_iter()
        .rev()
        .map(|path| {
            let frames = frames(&path);
            (path, frames)
        })
        .find(|(_, frames)| !frames.is_empty())
        .expect("a log segment with records")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .len()
}

/// XORs `mask` into the byte at `offset` of `path`.
fn flip_byte(path: &Path, offset: u64, mask: u8) {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open a file to damage");
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut byte).unwrap();
    byte[0] ^= mask;
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&byte).unwrap();
    file.sync_all().unwrap();
}

/// `(lsn, path)` of every checkpoint manifest, oldest first.
fn manifests(data: &Path) -> Vec<(u64, PathBuf)> {
    let entries = match std::fs::read_dir(data.join("checkpoint")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("list checkpoint/: {e}"),
    };
    let mut out: Vec<(u64, PathBuf)> = entries
        .map(|e| e.expect("checkpoint entry").path())
        .filter_map(|p| {
            let lsn = p
                .file_name()?
                .to_str()?
                .strip_prefix("manifest-")?
                .parse()
                .ok()?;
            Some((lsn, p))
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// SQL helpers
// ---------------------------------------------------------------------------------------

/// Runs a statement that must fail with `code`.
async fn exec_fails(client: &Client, sql: &str, code: &str) -> tokio_postgres::Error {
    let e = within(sql, client.batch_execute(sql))
        .await
        .expect_err(&format!("{sql} should fail with {code}"));
    assert_eq!(sqlstate(&e), Some(code), "{sql}: {e:?}");
    e
}

/// The single value of a one-row, one-column query.
async fn scalar(client: &Client, sql: &str) -> String {
    let rows = text_rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0].clone()
}

async fn count(client: &Client, sql: &str) -> i64 {
    scalar(client, sql).await.parse().expect("a count")
}

/// The column names of a query's result.
async fn column_names(client: &Client, sql: &str) -> Vec<String> {
    within(sql, client.prepare(sql))
        .await
        .unwrap_or_else(|e| panic!("prepare {sql}: {e:?}"))
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// Every query's column names and rows, for comparing the state before and after a restart.
async fn dump(client: &Client, queries: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for sql in queries {
        out.push(format!(
            "-- {sql} -> {}",
            column_names(client, sql).await.join("|")
        ));
        out.extend(text_rows(client, sql).await);
    }
    out
}

/// The plan text of `EXPLAIN sql`.
async fn explain(client: &Client, sql: &str) -> String {
    text_rows(client, &format!("EXPLAIN {sql}"))
        .await
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// 1. DDL survives restarts
// ---------------------------------------------------------------------------------------

/// DDL and DML before the (optional) mid-way checkpoint.
const DDL_PHASE_1: &[&str] = &[
    "CREATE TABLE items (id bigint PRIMARY KEY, price numeric(12,3), name text NOT NULL, \
     payload bytea, created timestamp, active boolean, weight double precision)",
    "INSERT INTO items VALUES \
     (1, 123.456, 'pump', '\\xdeadbeef', '2024-01-02 03:04:05.123456', true, 1.5), \
     (2, NULL, 'fan', NULL, NULL, NULL, NULL), \
     (3, -0.001, 'välve ''quoted''', '\\x', '1999-12-31 23:59:59', false, -2.25)",
    "CREATE INDEX items_name ON items (name)",
    "CREATE INDEX items_created ON items (created)",
    "CREATE TABLE pairs (a int, b text, v bigint, PRIMARY KEY (a, b))",
    "INSERT INTO pairs VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 20)",
    "CREATE INDEX pairs_v ON pairs (v)",
    "CREATE TABLE doomed (id int PRIMARY KEY, s text)",
    "INSERT INTO doomed VALUES (1, 'gone')",
    "CREATE VIEW active_items AS SELECT id, name FROM items WHERE active",
    "CREATE VIEW v_doomed AS SELECT 1 AS one",
    "ALTER TABLE items ADD COLUMN qty int DEFAULT 7",
    "ALTER TABLE items RENAME COLUMN weight TO mass",
    "INSERT INTO items (id, price, name, qty) VALUES (4, 99.999, 'late', 3)",
    "INSERT INTO items (id, name) VALUES (5, 'defaulted')",
    "DROP INDEX items_created",
    "DROP TABLE doomed",
];

/// DDL and DML after it. `pairs` gets only DDL here, so a checkpoint after this phase may
/// reuse its data file from before the ALTERs.
const DDL_PHASE_2: &[&str] = &[
    "ALTER TABLE pairs ADD COLUMN note text DEFAULT 'n/a'",
    "ALTER TABLE pairs RENAME COLUMN v TO value",
    "DROP INDEX pairs_v",
    "UPDATE items SET price = 246.912, active = false WHERE id = 1",
    "DELETE FROM items WHERE id = 2",
    "INSERT INTO items (id, name, payload, active) VALUES (6, 'after', '\\x00ff', true)",
    "CREATE TABLE doomed (id int PRIMARY KEY, t timestamp, flag boolean)",
    "INSERT INTO doomed VALUES (10, '2020-02-29 12:00:00', NULL), (11, '2021-03-01 00:00:00', true)",
    "CREATE INDEX doomed_t ON doomed (t)",
    "CREATE TABLE scratch (x int)",
    "INSERT INTO scratch VALUES (1), (2)",
    "DROP TABLE scratch",
    "CREATE VIEW big_pairs AS SELECT a, b, value FROM pairs WHERE value > 10",
    "DROP VIEW v_doomed",
];

const DDL_DUMP: &[&str] = &[
    "SELECT * FROM items ORDER BY id",
    "SELECT * FROM pairs ORDER BY a, b",
    "SELECT * FROM doomed ORDER BY id",
    "SELECT * FROM active_items ORDER BY id",
    "SELECT * FROM big_pairs ORDER BY a, b",
];

/// How the server goes down after the DDL scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: the restart replays the log only (no checkpoint was taken).
    KillLogOnly,
    /// CHECKPOINT between the phases, then SIGKILL: checkpoint + replay.
    KillAfterCheckpoint,
    /// SIGTERM: the shutdown checkpoint holds everything.
    Terminate,
    /// CHECKPOINT between the phases, then SIGTERM (the shutdown checkpoint may reuse files
    /// from the first one for partitions that only had DDL since).
    CheckpointThenTerminate,
}

async fn ddl_survives(stop: Stop) {
    let fixture = Fixture::new(Some(SYNC_CONFIG));
    let mut server = fixture.start();
    let before = {
        let client = server.connect().await;
        for sql in DDL_PHASE_1 {
            exec(&client, sql).await;
        }
        if matches!(
            stop,
            Stop::KillAfterCheckpoint | Stop::CheckpointThenTerminate
        ) {
            exec(&client, "CHECKPOINT").await;
            assert_eq!(manifests(&fixture.data).len(), 1);
        }
        for sql in DDL_PHASE_2 {
            exec(&client, sql).await;
        }
        verify_ddl_state(&client).await;
        dump(&client, DDL_DUMP).await
    };
    match stop {
        Stop::KillLogOnly | Stop::KillAfterCheckpoint => server.kill(),
        Stop::Terminate | Stop::CheckpointThenTerminate => {
            let status = server.terminate();
            assert!(status.success(), "clean shutdown exits 0: {status:?}");
        }
    }
    if stop == Stop::KillLogOnly {
        assert!(
            manifests(&fixture.data).is_empty(),
            "no checkpoint was taken"
        );
    }
    assert_check_clean(&fixture.data);

    let mut server = fixture.start();
    let client = server.connect().await;
    assert_eq!(
        dump(&client, DDL_DUMP).await,
        before,
        "state after restart ({stop:?})"
    );
    verify_ddl_state(&client).await;

    // The recovered catalog keeps working: defaults, keys and indexes apply to new rows,
    // and those survive one more crash.
    exec(
        &client,
        "INSERT INTO items (id, name) VALUES (7, 'post-restart')",
    )
    .await;
    exec(
        &client,
        "INSERT INTO pairs (a, b, value) VALUES (3, 'z', 30)",
    )
    .await;
    exec(
        &client,
        "INSERT INTO doomed VALUES (12, '2022-01-01 00:00:00', false)",
    )
    .await;
    // A table created after recovery gets an id of its own.
    exec(
        &client,
        "CREATE TABLE newcomer (id int PRIMARY KEY, s text)",
    )
    .await;
    exec(&client, "INSERT INTO newcomer VALUES (1, 'new')").await;
    let after = [
        dump(&client, DDL_DUMP).await,
        dump(&client, &["SELECT * FROM newcomer"]).await,
    ]
    .concat();
    assert!(after.contains(&"7|NULL|post-restart|NULL|NULL|NULL|NULL|7".to_string()));
    assert!(after.contains(&"3|z|30|n/a".to_string()));
    drop(client);
    server.kill();
    let server = fixture.start();
    let client = server.connect().await;
    let again = [
        dump(&client, DDL_DUMP).await,
        dump(&client, &["SELECT * FROM newcomer"]).await,
    ]
    .concat();
    assert_eq!(again, after, "state after a second restart");
    assert!(again.contains(&"1|new".to_string()));
    verify_ddl_state(&client).await;
}

/// What the DDL scenario must have left, checked on a live server and after every restart.
async fn verify_ddl_state(client: &Client) {
    assert_eq!(
        column_names(client, "SELECT * FROM items").await,
        [
            "id", "price", "name", "payload", "created", "active", "mass", "qty"
        ]
    );
    assert_eq!(
        column_names(client, "SELECT * FROM pairs").await,
        ["a", "b", "value", "note"]
    );
    assert_eq!(
        column_names(client, "SELECT * FROM doomed").await,
        ["id", "t", "flag"]
    );
    assert_eq!(
        text_rows(client, "SELECT * FROM items WHERE id <= 6 ORDER BY id").await,
        [
            "1|246.912|pump|\\xdeadbeef|2024-01-02 03:04:05.123456|f|1.5|7",
            "3|-0.001|välve 'quoted'|\\x|1999-12-31 23:59:59|f|-2.25|7",
            "4|99.999|late|NULL|NULL|NULL|NULL|3",
            "5|NULL|defaulted|NULL|NULL|NULL|NULL|7",
            "6|NULL|after|\\x00ff|NULL|t|NULL|7",
        ]
    );
    assert_eq!(
        text_rows(client, "SELECT * FROM pairs WHERE a <= 2 ORDER BY a, b").await,
        ["1|x|10|n/a", "1|y|11|n/a", "2|x|20|n/a"]
    );
    assert_eq!(
        text_rows(client, "SELECT * FROM doomed WHERE id <= 11 ORDER BY id").await,
        ["10|2020-02-29 12:00:00|NULL", "11|2021-03-01 00:00:00|t"]
    );
    assert_eq!(
        text_rows(
            client,
            "SELECT * FROM active_items WHERE id <= 6 ORDER BY id"
        )
        .await,
        ["6|after"]
    );
    assert_eq!(
        text_rows(client, "SELECT * FROM big_pairs WHERE a <= 2 ORDER BY a, b").await,
        ["1|y|11", "2|x|20"]
    );

    // Indexes: the surviving ones are used, the dropped ones are gone.
    let plan = explain(client, "SELECT * FROM items WHERE name = 'pump'").await;
    assert!(plan.contains("access=index items_name"), "{plan}");
    let plan = explain(
        client,
        "SELECT * FROM items WHERE created = '2024-01-02 03:04:05.123456'",
    )
    .await;
    assert!(
        !plan.contains("access=index"),
        "items_created was dropped: {plan}"
    );
    let plan = explain(client, "SELECT * FROM pairs WHERE value = 10").await;
    assert!(
        !plan.contains("access=index"),
        "pairs_v was dropped: {plan}"
    );
    let plan = explain(
        client,
        "SELECT * FROM doomed WHERE t = '2020-02-29 12:00:00'",
    )
    .await;
    assert!(plan.contains("access=index doomed_t"), "{plan}");

    // Dropped objects stay dropped.
    exec_fails(client, "SELECT * FROM scratch", "42P01").await;
    exec_fails(client, "SELECT * FROM v_doomed", "42P01").await;

    // Primary keys (one column and composite) are still enforced.
    exec_fails(
        client,
        "INSERT INTO items (id, name) VALUES (1, 'dup')",
        "23505",
    )
    .await;
    exec_fails(
        client,
        "INSERT INTO pairs (a, b, value) VALUES (1, 'x', 0)",
        "23505",
    )
    .await;
    exec_fails(
        client,
        "INSERT INTO doomed VALUES (10, '2000-01-01 00:00:00', NULL)",
        "23505",
    )
    .await;
}

#[tokio::test]
async fn ddl_survives_log_replay() {
    ddl_survives(Stop::KillLogOnly).await;
}

#[tokio::test]
async fn ddl_survives_checkpoint_and_log_replay() {
    ddl_survives(Stop::KillAfterCheckpoint).await;
}

#[tokio::test]
async fn ddl_survives_clean_shutdown() {
    ddl_survives(Stop::Terminate).await;
}

#[tokio::test]
async fn ddl_survives_checkpoint_then_clean_shutdown() {
    ddl_survives(Stop::CheckpointThenTerminate).await;
}

// ---------------------------------------------------------------------------------------
// 2. Torn and damaged log tails, damage in older segments, kura check --repair
// ---------------------------------------------------------------------------------------

/// Three rows per transaction, in two statements: ids `t*10 .. t*10+2`, column `txn` = t.
async fn commit_transactions(client: &Client, txns: std::ops::RangeInclusive<i64>) {
    for t in txns {
        exec(client, "BEGIN").await;
        exec(
            client,
            &format!(
                "INSERT INTO t VALUES ({}, {t}, 'a'), ({}, {t}, 'b')",
                t * 10,
                t * 10 + 1
            ),
        )
        .await;
        exec(
            client,
            &format!("INSERT INTO t VALUES ({}, {t}, 'c')", t * 10 + 2),
        )
        .await;
        exec(client, "COMMIT").await;
    }
}

/// Asserts that table `t` holds exactly the rows of transactions `expected`.
async fn assert_transactions(client: &Client, expected: impl IntoIterator<Item = i64>) {
    let expected: Vec<String> = expected.into_iter().map(|t| format!("{t}|3")).collect();
    assert_eq!(
        text_rows(
            client,
            "SELECT txn, count(*) FROM t GROUP BY txn ORDER BY txn"
        )
        .await,
        expected
    );
    assert_eq!(
        count(client, "SELECT count(*) FROM t WHERE id <> txn * 10 + 0 AND id <> txn * 10 + 1 AND id <> txn * 10 + 2").await,
        0
    );
}

#[derive(Debug, Clone, Copy)]
enum TailDamage {
    /// The last record loses its last N bytes (a write cut short).
    Truncate(u64),
    /// The last N bytes of the last record are overwritten (a bad sector, a stray write).
    Garbage(u64),
    /// Only the first N bytes of the last record's 17-byte header were written.
    HeaderOnly(u64),
}

/// Damages the last record of the newest segment that has records; returns that record.
fn damage_last_record(data: &Path, damage: TailDamage) -> (PathBuf, Frame) {
    let (path, frames) = newest_segment_with_records(data);
    let last = *frames.last().unwrap();
    assert_eq!(
        file_len(&path),
        last.offset + last.len,
        "the segment ends with a whole record"
    );
    assert_eq!(last.kind, KIND_COMMIT);
    match damage {
        TailDamage::Truncate(n) => {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(last.offset + last.len - n).unwrap();
            file.sync_all().unwrap();
        }
        TailDamage::HeaderOnly(n) => {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(last.offset + n).unwrap();
            file.sync_all().unwrap();
        }
        TailDamage::Garbage(n) => {
            for i in 1..=n {
                flip_byte(&path, last.offset + last.len - i, 0xa5);
            }
        }
    }
    eprintln!(
        "damaged {} ({damage:?}): last record LSN {} at byte offset {}",
        path.display(),
        last.lsn,
        last.offset
    );
    (path, last)
}

/// Creates table `t`, commits transactions 1..=20, and crashes; the caller damages the log.
async fn twenty_transactions_then_crash(fixture: &Fixture) {
    let mut server = fixture.start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (id bigint PRIMARY KEY, txn bigint, v text)",
    )
    .await;
    commit_transactions(&client, 1..=20).await;
    drop(client);
    server.kill();
}

async fn torn_tail_is_cut_at_restart(damage: TailDamage) {
    let fixture = Fixture::new(Some(SYNC_CONFIG));
    twenty_transactions_then_crash(&fixture).await;
    let (segment, last) = damage_last_record(&fixture.data, damage);

    let (mut server, stderr) = fixture.start_capturing_stderr("restart");
    let warning = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("truncating"))
        .unwrap_or_else(|| panic!("no truncation warning on stderr:\n{stderr}"));
    assert!(
        warning.contains(&format!("offset={}", last.offset)),
        "the warning names the byte offset {}: {warning}",
        last.offset
    );
    assert!(
        warning.contains(&format!("lsn={}", last.lsn)),
        "the warning names LSN {}: {warning}",
        last.lsn
    );
    assert_eq!(
        file_len(&segment),
        last.offset,
        "the damaged record is cut off"
    );
    let client = server.connect().await;
    // The damaged record is the last transaction's commit: it is gone as a whole.
    assert_transactions(&client, 1..=19).await;

    // New commits follow the cut; they and the old ones survive the next crash.
    commit_transactions(&client, 21..=22).await;
    drop(client);
    server.kill();
    assert_check_clean(&fixture.data);
    let mut server = fixture.start();
    let client = server.connect().await;
    assert_transactions(&client, (1..=19).chain(21..=22)).await;
    drop(client);
    assert!(server.terminate().success());
    assert_check_clean(&fixture.data);
}

/// A COPY whose rows take more than one log frame (64 MiB of encoded rows each): replayed
/// whole after a crash, and gone as a whole when the log lost its last frame.
#[tokio::test]
async fn a_commit_spanning_several_log_frames_is_replayed_whole_or_not_at_all() {
    use futures::SinkExt;
    const ROWS: usize = 300_000;
    let fixture = Fixture::new(Some(SYNC_CONFIG));
    let mut server = fixture.start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE big (id int PRIMARY KEY, v text)").await;
    exec(&client, "INSERT INTO big VALUES (-1, 'before')").await;
    let filler = "x".repeat(250);
    let sink = client
        .copy_in("COPY big FROM STDIN")
        .await
        .expect("start COPY");
    futures::pin_mut!(sink);
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(10_000) {
        let text: String = chunk.iter().map(|i| format!("{i}\t{filler}\n")).collect();
        sink.send(bytes::Bytes::from(text))
            .await
            .expect("send rows");
    }
    assert_eq!(sink.finish().await.expect("COPY"), ROWS as u64);
    drop(client);
    server.kill();

    // The same crashed directory twice: replayed as it is, and without the COPY's last frame.
    let lost_tail = Fixture::new(Some(SYNC_CONFIG));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&fixture.data)
        .arg(&lost_tail.data)
        .status()
        .expect("run cp");
    assert!(copied.success());

    let (segment, frames) = newest_segment_with_records(&lost_tail.data);
    let parts = frames.iter().filter(|f| f.kind == KIND_COMMIT_PART).count();
    assert!(parts >= 1, "the COPY took several frames: {frames:?}");
    let last = *frames.last().expect("frames");
    assert_eq!(last.kind, KIND_COMMIT);
    let first_part = frames[frames.len() - 1 - parts];
    assert_eq!(first_part.kind, KIND_COMMIT_PART);
    let expected = [format!("{}", ROWS + 1), format!("{}", ROWS * 250 + 6)];
    let query = "SELECT count(*)::text, sum(length(v))::text FROM big";
    {
        let mut server = fixture.start();
        let client = server.connect().await;
        assert_eq!(text_rows(&client, query).await, [expected.join("|")]);
        drop(client);
        server.kill();
    }
    assert_check_clean(&fixture.data);

    // Without the commit's last frame its other frames are cut too: it never happened.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open the segment")
        .set_len(last.offset)
        .expect("truncate");
    let (server, stderr) = lost_tail.start_capturing_stderr("restart");
    assert!(
        stderr.contains("truncating") && stderr.contains(&format!("lsn={}", first_part.lsn)),
        "the incomplete commit is cut from its first frame:\n{stderr}"
    );
    assert_eq!(file_len(&segment), first_part.offset);
    let client = server.connect().await;
    assert_eq!(text_rows(&client, query).await, ["1|6"]);
}

#[tokio::test]
async fn truncated_log_tail_is_cut_at_restart() {
    torn_tail_is_cut_at_restart(TailDamage::Truncate(3)).await;
}

#[tokio::test]
async fn log_tail_torn_inside_a_record_header_is_cut_at_restart() {
    torn_tail_is_cut_at_restart(TailDamage::HeaderOnly(5)).await;
}

#[tokio::test]
async fn garbage_log_tail_is_cut_at_restart() {
    torn_tail_is_cut_at_restart(TailDamage::Garbage(8)).await;
}

#[tokio::test]
async fn kura_check_reports_and_repairs_a_torn_tail() {
    let fixture = Fixture::new(Some(SYNC_CONFIG));
    twenty_transactions_then_crash(&fixture).await;
    let (segment, last) = damage_last_record(&fixture.data, TailDamage::Truncate(5));

    let check = kura_check(&fixture.data, false);
    assert!(
        !check.status.success(),
        "a torn log is a problem: {check:?}"
    );
    let damaged = check
        .stdout
        .lines()
        .find(|l| l.contains("DAMAGED"))
        .unwrap_or_else(|| panic!("no DAMAGED line: {check:?}"));
    assert!(
        damaged.contains(&format!("byte offset {}", last.offset))
            && damaged.contains(&format!("LSN {}", last.lsn)),
        "{damaged}"
    );
    assert!(summary_line(&check).ends_with("; 1 problems"), "{check:?}");
    assert!(check.stderr.contains("--repair"), "{check:?}");
    assert_eq!(
        file_len(&segment),
        last.offset + last.len - 5,
        "check alone changes nothing"
    );

    let repair = kura_check(&fixture.data, true);
    assert!(repair.status.success(), "repair fixes it: {repair:?}");
    assert!(repair.stdout.contains("repaired"), "{repair:?}");
    assert_eq!(file_len(&segment), last.offset);
    assert_check_clean(&fixture.data);

    let (server, stderr) = fixture.start_capturing_stderr("after-repair");
    assert!(
        !stderr.contains("truncating"),
        "nothing left to truncate:\n{stderr}"
    );
    let client = server.connect().await;
    assert_transactions(&client, 1..=19).await;
}

#[tokio::test]
async fn damage_in_an_older_segment_stops_the_start_until_repaired() {
    let fixture = Fixture::new(Some(
        r#"{"dataStore": {"logWriteMode": 0, "logSegmentSize": "1MB"},
            "checkpoint": {"checkpointInterval": "1h"}}"#,
    ));
    let pad = "p".repeat(40_000);
    {
        let mut server = fixture.start();
        let client = server.connect().await;
        exec(
            &client,
            "CREATE TABLE t (id bigint PRIMARY KEY, txn bigint, v text)",
        )
        .await;
        // 40 transactions of ~120 KB: the 1 MB segment size rotates the log several times.
        for t in 1..=40i64 {
            exec(
                &client,
                &format!(
                    "INSERT INTO t VALUES ({}, {t}, '{pad}'), ({}, {t}, '{pad}'), ({}, {t}, '{pad}')",
                    t * 10,
                    t * 10 + 1,
                    t * 10 + 2
                ),
            )
            .await;
        }
        drop(client);
        server.kill();
    }
    let all = segments(&fixture.data);
    assert!(all.len() >= 3, "the log rotated: {all:?}");
    let first = frames(&all[0]);
    assert_eq!(first[0].kind, KIND_CATALOG, "CREATE TABLE comes first");
    assert!(first[1..].iter().all(|f| f.kind == KIND_COMMIT));
    // Frame k of the first segment is transaction k's commit; damage one in the middle.
    let k = first.len() / 2;
    let victim = first[k];
    flip_byte(&all[0], victim.offset + victim.len / 2, 0x40);

    let refused = run_to_exit(fixture.command(), "kura serve on a damaged log");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("damaged at byte offset {}", victim.offset)),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("kura check") && refused.stderr.contains("--repair"),
        "the message points to kura check --repair: {refused:?}"
    );
    assert_eq!(
        segments(&fixture.data),
        all,
        "a refused start changes no segment"
    );

    let check = kura_check(&fixture.data, false);
    assert!(!check.status.success());
    assert!(check.stdout.contains("DAMAGED"), "{check:?}");

    let repair = kura_check(&fixture.data, true);
    assert!(repair.status.success(), "{repair:?}");
    assert_eq!(file_len(&all[0]), victim.offset);
    let discarded: BTreeSet<_> = std::fs::read_dir(fixture.data.join("txnlog/discarded"))
        .expect("txnlog/discarded exists")
        .map(|e| e.unwrap().file_name())
        .collect();
    let later: BTreeSet<_> = all[1..]
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(discarded, later, "every later segment is moved aside");
    assert_check_clean(&fixture.data);

    let server = fixture.start();
    let client = server.connect().await;
    assert_transactions(&client, 1..k as i64).await;
}

// ---------------------------------------------------------------------------------------
// 3. A damaged newest checkpoint falls back to the older one
// ---------------------------------------------------------------------------------------

const CHECKPOINT_DUMP: &[&str] = &[
    "SELECT * FROM a ORDER BY id",
    "SELECT * FROM b ORDER BY id",
    "SELECT * FROM c ORDER BY k",
];

#[derive(Debug, Clone, Copy)]
enum CheckpointDamage {
    DataFile,
    Manifest,
}

async fn damaged_newest_checkpoint_falls_back(damage: CheckpointDamage) {
    let fixture = Fixture::new(Some(SYNC_CONFIG));
    let mut server = fixture.start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE a (id bigint PRIMARY KEY, v text)").await;
    exec(
        &client,
        "CREATE TABLE b (id bigint PRIMARY KEY, n numeric(10,2), ts timestamp)",
    )
    .await;
    for id in 1..=50 {
        exec(
            &client,
            &format!(
                "INSERT INTO a VALUES ({id}, 'a{id}'); \
                 INSERT INTO b VALUES ({id}, {id}.25, '2024-05-{:02} 10:00:00')",
                id % 28 + 1
            ),
        )
        .await;
    }
    exec(&client, "CHECKPOINT").await;
    exec(&client, "UPDATE a SET v = v || '-u2' WHERE id % 3 = 0").await;
    exec(&client, "DELETE FROM b WHERE id % 4 = 0").await;
    exec(&client, "INSERT INTO a VALUES (51, 'a51'), (52, 'a52')").await;
    exec(&client, "INSERT INTO b VALUES (51, -1.5, NULL)").await;
    exec(&client, "CHECKPOINT").await;
    exec(&client, "UPDATE a SET v = v || '-u3' WHERE id % 5 = 0").await;
    exec(&client, "DELETE FROM a WHERE id < 5").await;
    exec(&client, "ALTER TABLE a ADD COLUMN extra int DEFAULT 5").await;
    exec(&client, "CREATE TABLE c (k text PRIMARY KEY, n int)").await;
    exec(&client, "INSERT INTO c VALUES ('one', 1), ('two', 2)").await;
    exec(&client, "UPDATE b SET n = n * 2 WHERE id > 45").await;
    let before = dump(&client, CHECKPOINT_DUMP).await;
    drop(client);
    server.kill();

    let manifests = manifests(&fixture.data);
    assert_eq!(
        manifests.len(),
        2,
        "two checkpoints are kept: {manifests:?}"
    );
    let (older, newest) = (manifests[0].0, manifests[1].0);
    match damage {
        CheckpointDamage::DataFile => {
            let suffix = format!("_{newest:020}.kpart");
            let mut files: Vec<PathBuf> = std::fs::read_dir(fixture.data.join("checkpoint/data"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_str().unwrap().ends_with(&suffix))
                .collect();
            files.sort();
            assert_eq!(
                files.len(),
                2,
                "both tables changed since the older checkpoint"
            );
            let victim = &files[0];
            flip_byte(victim, file_len(victim) / 2, 0x10);
        }
        CheckpointDamage::Manifest => {
            let path = &manifests[1].1;
            flip_byte(path, file_len(path) - 20, 0x10);
        }
    }

    let check = kura_check(&fixture.data, false);
    assert!(!check.status.success(), "{check:?}");
    assert!(
        check
            .stdout
            .contains(&format!("checkpoint manifest-{newest:020}: DAMAGED")),
        "{check:?}"
    );
    assert!(
        check
            .stdout
            .contains(&format!("checkpoint manifest-{older:020}: ok")),
        "{check:?}"
    );

    let (mut server, stderr) = fixture.start_capturing_stderr("fallback");
    assert!(
        stderr.contains("skipping damaged checkpoint"),
        "recovery says it skipped the damaged checkpoint:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("checkpoint_lsn={older}")),
        "recovery loads the older checkpoint:\n{stderr}"
    );
    let client = server.connect().await;
    assert_eq!(dump(&client, CHECKPOINT_DUMP).await, before);

    // A checkpoint taken right after the fallback must hold the replayed changes too.
    exec(&client, "CHECKPOINT").await;
    exec(&client, "INSERT INTO c VALUES ('three', 3)").await;
    let before = dump(&client, CHECKPOINT_DUMP).await;
    drop(client);
    server.kill();
    let (server, stderr) = fixture.start_capturing_stderr("after-new-checkpoint");
    assert!(!stderr.contains("skipping damaged checkpoint"), "{stderr}");
    let client = server.connect().await;
    assert_eq!(dump(&client, CHECKPOINT_DUMP).await, before);
}

#[tokio::test]
async fn damaged_checkpoint_data_file_falls_back_to_older_checkpoint() {
    damaged_newest_checkpoint_falls_back(CheckpointDamage::DataFile).await;
}

#[tokio::test]
async fn damaged_checkpoint_manifest_falls_back_to_older_checkpoint() {
    damaged_newest_checkpoint_falls_back(CheckpointDamage::Manifest).await;
}

// ---------------------------------------------------------------------------------------
// 4. Checkpoints while many clients write
// ---------------------------------------------------------------------------------------

/// One key a write may have changed: its value before and after (`None` = no row).
type KeyChange = (i64, Option<i64>, Option<i64>);

/// What one writer knows when it stops: the acknowledged state of its keys, and the change
/// whose acknowledgement it never got (the server was killed while it ran).
struct WriterResult {
    writer: i64,
    acknowledged: BTreeMap<i64, i64>,
    in_flight: Vec<KeyChange>,
}

struct Progress {
    ops: AtomicU64,
    checkpoints: AtomicU64,
    killed: AtomicBool,
    changed: Notify,
}

const WRITERS: i64 = 4;
const PAD: usize = 200;

/// Inserts, updates and deletes (alone and in explicit transactions) its own keys until the
/// server goes away.
async fn writer(client: Client, writer: i64, progress: Arc<Progress>) -> WriterResult {
    let pad = "w".repeat(PAD);
    let mut model: BTreeMap<i64, i64> = BTreeMap::new();
    let mut next = 0i64;
    let mut i = -1i64;
    loop {
        i += 1;
        let pick = |model: &BTreeMap<i64, i64>, salt: i64| -> Option<(i64, i64)> {
            let n = model.len() as i64;
            (n > 0).then(|| {
                let (k, v) = model.iter().nth(((i * 7 + salt) % n) as usize).unwrap();
                (*k, *v)
            })
        };
        let new_id = writer * 1_000_000 + next;
        let (change, result): (Vec<KeyChange>, Result<(), tokio_postgres::Error>) = match i % 5 {
            3 if !model.is_empty() => {
                let (id, old) = pick(&model, 0).unwrap();
                let change = vec![(id, Some(old), Some(old + 1000))];
                let sql = format!("UPDATE acc SET val = val + 1000 WHERE id = {id}");
                let result = client.execute(sql.as_str(), &[]).await.map(|n| {
                    assert_eq!(n, 1, "{sql}");
                });
                (change, result)
            }
            4 if !model.is_empty() => {
                let (gone, old) = pick(&model, 3).unwrap();
                next += 1;
                let change = vec![(new_id, None, Some(i)), (gone, Some(old), None)];
                let result = async {
                    client.batch_execute("BEGIN").await?;
                    client
                        .execute(
                            &format!("INSERT INTO acc VALUES ({new_id}, {writer}, {i}, '{pad}')"),
                            &[],
                        )
                        .await?;
                    let n = client
                        .execute(&format!("DELETE FROM acc WHERE id = {gone}"), &[])
                        .await?;
                    assert_eq!(n, 1);
                    client.batch_execute("COMMIT").await
                }
                .await;
                (change, result)
            }
            _ => {
                next += 1;
                let change = vec![(new_id, None, Some(i))];
                let sql = format!("INSERT INTO acc VALUES ({new_id}, {writer}, {i}, '{pad}')");
                (change, client.batch_execute(&sql).await)
            }
        };
        match result {
            Ok(()) => {
                for (id, _, after) in change {
                    match after {
                        Some(v) => model.insert(id, v),
                        None => model.remove(&id),
                    };
                }
                progress.ops.fetch_add(1, Ordering::AcqRel);
                progress.changed.notify_one();
            }
            Err(e) => {
                assert!(
                    progress.killed.load(Ordering::Acquire),
                    "writer {writer}: a write failed while the server ran: {e:?}"
                );
                return WriterResult {
                    writer,
                    acknowledged: model,
                    in_flight: change,
                };
            }
        }
    }
}

/// The side tables a DDL worker finished: cycle number -> still exists (not dropped).
struct DdlResult {
    completed: BTreeMap<i64, bool>,
    /// The cycle interrupted by the kill, if any (its outcome is unknown).
    interrupted: Option<i64>,
}

/// Creates, fills, alters, indexes and sometimes drops side tables, one cycle after another,
/// until the server goes away.
async fn ddl_worker(client: Client, progress: Arc<Progress>) -> DdlResult {
    let mut completed = BTreeMap::new();
    for k in 0i64.. {
        let mut statements = vec![
            format!("CREATE TABLE side_{k} (id int PRIMARY KEY, v text)"),
            format!("INSERT INTO side_{k} VALUES (1, 's{k}'), (2, 's{k}')"),
            format!("ALTER TABLE side_{k} ADD COLUMN extra bigint DEFAULT {k}"),
            format!("CREATE INDEX side_{k}_v ON side_{k} (v)"),
            format!("ALTER TABLE side_{k} RENAME COLUMN v TO w"),
            format!("INSERT INTO side_{k} (id, w) VALUES (3, 's{k}')"),
        ];
        let dropped = k % 3 == 2;
        if dropped {
            statements.push(format!("DROP TABLE side_{k}"));
        }
        for sql in &statements {
            if let Err(e) = client.batch_execute(sql).await {
                assert!(
                    progress.killed.load(Ordering::Acquire),
                    "{sql} failed while the server ran: {e:?}"
                );
                return DdlResult {
                    completed,
                    interrupted: Some(k),
                };
            }
        }
        completed.insert(k, !dropped);
        progress.ops.fetch_add(1, Ordering::AcqRel);
        progress.changed.notify_one();
        if progress.killed.load(Ordering::Acquire) {
            break;
        }
    }
    DdlResult {
        completed,
        interrupted: None,
    }
}

async fn checkpointer(client: Client, progress: Arc<Progress>) {
    loop {
        match client.batch_execute("CHECKPOINT").await {
            Ok(()) => {
                progress.checkpoints.fetch_add(1, Ordering::AcqRel);
                progress.changed.notify_one();
            }
            Err(e) => {
                assert!(
                    progress.killed.load(Ordering::Acquire),
                    "CHECKPOINT failed while the server ran: {e:?}"
                );
                return;
            }
        }
    }
}

/// `id -> (writer, val)` of every row in `acc`.
async fn acc_rows(client: &Client) -> BTreeMap<i64, (i64, i64)> {
    within(
        "select acc",
        client.query("SELECT id, writer, val FROM acc ORDER BY id", &[]),
    )
    .await
    .expect("select acc")
    .iter()
    .map(|r| (r.get::<_, i64>(0), (r.get::<_, i64>(1), r.get::<_, i64>(2))))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_during_concurrent_writes_lose_no_acknowledged_commit() {
    // The default DELAYED_SYNC mode: a crash of the process alone must lose nothing either.
    let fixture = Fixture::new(Some(r#"{"checkpoint": {"checkpointInterval": "1h"}}"#));
    let mut server = fixture.start();
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE acc (id bigint PRIMARY KEY, writer bigint NOT NULL, val bigint NOT NULL, pad text)",
    )
    .await;
    exec(&setup, "CREATE INDEX acc_writer ON acc (writer)").await;

    let progress = Arc::new(Progress {
        ops: AtomicU64::new(0),
        checkpoints: AtomicU64::new(0),
        killed: AtomicBool::new(false),
        changed: Notify::new(),
    });
    let mut writers = Vec::new();
    for w in 1..=WRITERS {
        let client = server.connect().await;
        writers.push(tokio::spawn(writer(client, w, progress.clone())));
    }
    let checkpoints = tokio::spawn(checkpointer(server.connect().await, progress.clone()));
    let ddl = tokio::spawn(ddl_worker(server.connect().await, progress.clone()));

    // Crash in the middle of it all, once several checkpoints have overlapped the writes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let ops = progress.ops.load(Ordering::Acquire);
        let done = progress.checkpoints.load(Ordering::Acquire);
        if ops >= 1500 && done >= 8 {
            eprintln!("killing the server after {ops} writes and {done} checkpoints");
            break;
        }
        assert!(
            tokio::time::timeout_at(deadline, progress.changed.notified())
                .await
                .is_ok(),
            "no progress: {ops} writes, {done} checkpoints"
        );
    }
    progress.killed.store(true, Ordering::Release);
    server.kill();
    let mut results = Vec::new();
    for task in writers {
        results.push(within("writer to stop", task).await.expect("writer task"));
    }
    within("checkpointer to stop", checkpoints)
        .await
        .expect("checkpointer task");
    let ddl = within("DDL worker to stop", ddl).await.expect("DDL task");
    drop(setup);
    assert!(!manifests(&fixture.data).is_empty());

    let mut server = fixture.start();
    let client = server.connect().await;
    let rows = acc_rows(&client).await;
    let mut expected_len = 0;
    for result in &results {
        let mine: BTreeMap<i64, i64> = rows
            .iter()
            .filter(|(_, (w, _))| *w == result.writer)
            .map(|(id, (_, v))| (*id, *v))
            .collect();
        let in_flight: BTreeSet<i64> = result.in_flight.iter().map(|(id, _, _)| *id).collect();
        for (id, v) in &result.acknowledged {
            if !in_flight.contains(id) {
                assert_eq!(
                    mine.get(id),
                    Some(v),
                    "writer {}: acknowledged row {id}",
                    result.writer
                );
            }
        }
        for id in mine.keys() {
            assert!(
                result.acknowledged.contains_key(id) || in_flight.contains(id),
                "writer {}: row {id} was never acknowledged",
                result.writer
            );
        }
        // The unacknowledged transaction is there as a whole or not at all.
        let found: Vec<Option<i64>> = result
            .in_flight
            .iter()
            .map(|(id, _, _)| mine.get(id).copied())
            .collect();
        let before: Vec<Option<i64>> = result.in_flight.iter().map(|c| c.1).collect();
        let after: Vec<Option<i64>> = result.in_flight.iter().map(|c| c.2).collect();
        assert!(
            found == before || found == after,
            "writer {}: in-flight change {:?} is half applied: {found:?}",
            result.writer,
            result.in_flight
        );
        expected_len += mine.len();
        eprintln!(
            "writer {}: {} acknowledged rows, in-flight change {}",
            result.writer,
            result.acknowledged.len(),
            if found == after && found != before {
                "committed"
            } else {
                "absent"
            }
        );
    }
    assert_eq!(rows.len(), expected_len, "only the writers' rows exist");

    // Every finished DDL cycle is there (or dropped) exactly.
    assert!(
        ddl.completed.len() >= 2,
        "DDL ran alongside the checkpoints"
    );
    eprintln!(
        "DDL: {} cycles finished, interrupted: {:?}",
        ddl.completed.len(),
        ddl.interrupted
    );
    for (k, exists) in &ddl.completed {
        let sql = format!("SELECT * FROM side_{k} ORDER BY id");
        if *exists {
            assert_eq!(column_names(&client, &sql).await, ["id", "w", "extra"]);
            assert_eq!(
                text_rows(&client, &sql).await,
                [
                    format!("1|s{k}|{k}"),
                    format!("2|s{k}|{k}"),
                    format!("3|s{k}|{k}")
                ]
            );
            let plan = explain(&client, &format!("SELECT * FROM side_{k} WHERE w = 's{k}'")).await;
            assert!(plan.contains(&format!("access=index side_{k}_v")), "{plan}");
        } else {
            exec_fails(&client, &sql, "42P01").await;
        }
    }
    assert_eq!(
        count(
            &client,
            &format!("SELECT count(*) FROM acc WHERE length(pad) <> {PAD}")
        )
        .await,
        0
    );

    // The recovered state survives a checkpoint and a clean restart unchanged.
    exec(&client, "CHECKPOINT").await;
    drop(client);
    assert!(server.terminate().success());
    let server = fixture.start();
    let client = server.connect().await;
    assert_eq!(acc_rows(&client).await, rows);
    let plan = explain(&client, "SELECT * FROM acc WHERE writer = 1").await;
    assert!(plan.contains("access=index acc_writer"), "{plan}");
}

// ---------------------------------------------------------------------------------------
// 5. A failed log write (RLIMIT_FSIZE)
// ---------------------------------------------------------------------------------------

/// The server's file size limit: its log segment reaches this long before the 1 MB rotation.
const FSIZE_LIMIT: u64 = 256 * 1024;

const SMALL_SEGMENTS_CONFIG: &str = r#"{"dataStore": {"logWriteMode": 0, "logSegmentSize": "1MB"},
    "checkpoint": {"checkpointInterval": "1h"}}"#;

/// Starts a server whose files may not grow past [`FSIZE_LIMIT`] (the soft limit; the hard
/// one is kept, so the test can lift it later with `prlimit`). The server ignores SIGXFSZ,
/// so a write past the limit fails with EFBIG, as one on a full disk fails with ENOSPC.
fn start_with_file_size_limit(fixture: &Fixture) -> TestServer {
    let mut command = fixture.command();
    // SAFETY: runs in the child between fork and exec and only calls getrlimit and setrlimit
    // (async-signal-safe). The limit applies to the server alone, not to the test process.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = (FSIZE_LIMIT as libc::rlim_t).min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    TestServer::start_command(&mut command, &fixture.data)
}

/// `INSERT` of `rows` rows with ids from `first` and a `pad_len`-byte text each.
fn padded_insert(first: i64, rows: i64, pad_len: usize) -> String {
    let pad = "f".repeat(pad_len);
    let values: Vec<String> = (first..first + rows)
        .map(|id| format!("({id}, '{pad}')"))
        .collect();
    format!("INSERT INTO big VALUES {}", values.join(", "))
}

/// Asserts that `e` is the clean failure of a log write.
fn assert_log_write_failure(e: &tokio_postgres::Error, what: &str) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: not a server error: {e:?}"));
    assert!(
        matches!(db.code().code(), "58030" | "53100"),
        "{what}: SQLSTATE {} ({e:?})",
        db.code().code()
    );
    assert!(
        db.message().contains("transaction log"),
        "{what}: the message names the transaction log: {}",
        db.message()
    );
}

/// A log that has just refused a commit because the segment would pass [`FSIZE_LIMIT`].
struct FullLog {
    segment: PathBuf,
    acknowledged: Vec<i64>,
    /// Size of a one-row commit record (`padded_insert(_, 1, 100)`).
    small_frame: u64,
    /// Size of a 16-row commit record (`padded_insert(_, 16, 1000)`).
    big_frame: u64,
    /// The commit that failed, and the segment length before it.
    failed_sql: String,
    failed_at: u64,
    /// First id of the failed commit (ids at and above it are not acknowledged).
    failed_first_id: i64,
}

/// Creates table `big` and commits one small, then 16-row commits of ~16 KB until one fails.
async fn fill_log_until_a_write_fails(fixture: &Fixture, client: &Client) -> FullLog {
    exec(client, "CREATE TABLE big (id bigint PRIMARY KEY, pad text)").await;
    let segment = segments(&fixture.data).pop().expect("a log segment");
    let mut acknowledged = Vec::new();

    let len = file_len(&segment);
    exec(client, &padded_insert(1, 1, 100)).await;
    acknowledged.push(1);
    let small_frame = file_len(&segment) - len;

    let mut next = 1000i64;
    let mut big_frame = None;
    loop {
        assert!(
            next < 1000 + 16 * 64,
            "64 big commits all fit under {FSIZE_LIMIT} bytes: is RLIMIT_FSIZE in effect?"
        );
        let len = file_len(&segment);
        let sql = padded_insert(next, 16, 1000);
        match within("big insert", client.batch_execute(&sql)).await {
            Ok(()) => {
                acknowledged.extend(next..next + 16);
                let frame = file_len(&segment) - len;
                assert_eq!(
                    *big_frame.get_or_insert(frame),
                    frame,
                    "same-shaped records"
                );
            }
            Err(e) => {
                assert_log_write_failure(&e, "the first commit past the limit");
                let big_frame = big_frame.expect("at least one big commit fits");
                eprintln!(
                    "log write failed at {len} bytes; records: big {big_frame}, small {small_frame}"
                );
                assert!(
                    len + big_frame > FSIZE_LIMIT,
                    "it failed because it did not fit"
                );
                assert_eq!(
                    file_len(&segment),
                    len,
                    "the partial record is cut off the log"
                );
                return FullLog {
                    segment,
                    acknowledged,
                    small_frame,
                    big_frame,
                    failed_sql: sql,
                    failed_at: len,
                    failed_first_id: next,
                };
            }
        }
        next += 16;
    }
}

/// The ids in table `big`, ascending.
async fn big_ids(client: &Client) -> Vec<i64> {
    within(
        "select ids",
        client.query("SELECT id FROM big ORDER BY id", &[]),
    )
    .await
    .expect("select ids")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn failed_log_write_fails_the_commit_and_loses_nothing_acknowledged() {
    let fixture = Fixture::new(Some(SMALL_SEGMENTS_CONFIG));
    let mut server = start_with_file_size_limit(&fixture);
    let client = server.connect().await;
    let full = fill_log_until_a_write_fails(&fixture, &client).await;
    let mut acknowledged = full.acknowledged.clone();
    let segment = &full.segment;

    // The failed commit was rolled back; reads work.
    assert_eq!(
        count(
            &client,
            &format!(
                "SELECT count(*) FROM big WHERE id >= {}",
                full.failed_first_id
            )
        )
        .await,
        0
    );
    assert_eq!(big_ids(&client).await, acknowledged);

    // The same commit again fails the same clean way and leaves the log as it was.
    let e = within("big insert again", client.batch_execute(&full.failed_sql))
        .await
        .expect_err("still does not fit");
    assert_log_write_failure(&e, "the retried commit");
    assert_eq!(file_len(segment), full.failed_at);
    assert_eq!(big_ids(&client).await, acknowledged);

    // A failed write does not poison the log: later commits are tried, and succeed exactly
    // while they fit under the limit.
    let mut id = 500i64;
    loop {
        let len = file_len(segment);
        let fits = len + full.small_frame <= FSIZE_LIMIT;
        let result = within(
            "small insert",
            client.batch_execute(&padded_insert(id, 1, 100)),
        )
        .await;
        match (fits, result) {
            (true, Ok(())) => acknowledged.push(id),
            (false, Err(e)) => {
                assert_log_write_failure(&e, "a small commit past the limit");
                assert_eq!(file_len(segment), len);
                break;
            }
            (fits, result) => panic!(
                "a {}-byte commit record with the segment at {len} of {FSIZE_LIMIT} bytes \
                 (fits: {fits}; the failed {}-byte record was cut back from {} bytes): {result:?}",
                full.small_frame, full.big_frame, full.failed_at
            ),
        }
        id += 1;
        assert!(id < 1000, "small commits never filled the log");
    }
    eprintln!("{} small commits fitted after the failure", id - 500);
    acknowledged.sort_unstable();
    assert_eq!(big_ids(&client).await, acknowledged);
    drop(client);
    server.kill();

    // Without the limit, exactly the acknowledged rows are back, and writes work again.
    assert_check_clean(&fixture.data);
    let server = fixture.start();
    let client = server.connect().await;
    assert_eq!(big_ids(&client).await, acknowledged);
    exec(&client, &full.failed_sql).await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM big").await,
        acknowledged.len() as i64 + 16
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn log_writes_resume_after_the_last_whole_record_once_space_returns() {
    let fixture = Fixture::new(Some(SMALL_SEGMENTS_CONFIG));
    let mut server = start_with_file_size_limit(&fixture);
    let client = server.connect().await;
    let full = fill_log_until_a_write_fails(&fixture, &client).await;
    let mut acknowledged = full.acknowledged.clone();

    // Space returns (as when a full disk is cleaned up): lift the running server's limit.
    let pid: libc::pid_t = std::fs::read_to_string(fixture.data.join("kura.lock"))
        .expect("read kura.lock")
        .trim()
        .parse()
        .expect("kura.lock holds the server's pid");
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system call on valid pointers.
    let lifted =
        unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
    assert_eq!(lifted, 0, "prlimit: {}", std::io::Error::last_os_error());

    // The failed commit and later ones now succeed...
    exec(&client, &full.failed_sql).await;
    acknowledged.extend(full.failed_first_id..full.failed_first_id + 16);
    exec(&client, &padded_insert(5000, 16, 1000)).await;
    acknowledged.extend(5000..5016);
    let len = file_len(&full.segment);
    drop(client);
    server.kill();

    // ...and are appended right after the last whole record, so all of them survive a crash.
    let check = kura_check(&fixture.data, false);
    let server = fixture.start();
    let client = server.connect().await;
    let ids = big_ids(&client).await;
    let lost: Vec<i64> = acknowledged
        .iter()
        .filter(|id| ids.binary_search(id).is_err())
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged rows lost after the restart: {lost:?}. The failed write was cut back \
         to {} bytes; the two commits after it should have made the segment {} bytes long, \
         it was {len} (a gap after the cut?). kura check before the restart: {}",
        full.failed_at,
        full.failed_at + 2 * full.big_frame,
        summary_line(&check)
    );
    assert_eq!(ids, acknowledged);
    assert!(check.status.success(), "{check:?}");
    assert_eq!(len, full.failed_at + 2 * full.big_frame);
}

// ---------------------------------------------------------------------------------------
// 6. One server per data directory
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn data_directory_is_locked_while_a_server_runs() {
    let fixture = Fixture::new(None);
    let mut server = fixture.start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE t (id int PRIMARY KEY)").await;
    exec(&client, "INSERT INTO t VALUES (1)").await;

    let second = run_to_exit(fixture.command(), "second kura serve");
    assert!(!second.status.success(), "{second:?}");
    assert!(
        second.stderr.contains("in use by another Kura server"),
        "{second:?}"
    );
    assert!(
        !second.stdout.contains("listening on"),
        "the second server never listened: {second:?}"
    );

    let check = kura_check(&fixture.data, false);
    assert!(!check.status.success(), "{check:?}");
    assert!(
        check.stderr.contains("in use by another Kura server"),
        "{check:?}"
    );
    let repair = kura_check(&fixture.data, true);
    assert!(!repair.status.success(), "{repair:?}");
    assert!(repair.stderr.contains("in use by another Kura server"));

    // The first server is unaffected.
    exec(&client, "INSERT INTO t VALUES (2)").await;
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 2);
    drop(client);

    // The lock dies with the process, however it dies.
    server.kill();
    assert_check_clean(&fixture.data);
    let server = fixture.start();
    let client = server.connect().await;
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 2);
}

// ---------------------------------------------------------------------------------------
// 7. synchronous_commit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn synchronous_commit_follows_log_write_mode() {
    let sync = Fixture::new(Some(r#"{"dataStore": {"logWriteMode": 0}}"#));
    let mut server = sync.start();
    let client = server.connect().await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "on");
    exec(&client, "SET synchronous_commit = off").await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "off");
    exec(&client, "CREATE TABLE t (id int PRIMARY KEY)").await;
    exec(&client, "INSERT INTO t VALUES (1)").await;
    exec(&client, "SET synchronous_commit TO on").await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "on");
    exec(&client, "INSERT INTO t VALUES (2)").await;
    let e = exec_fails(&client, "SET synchronous_commit = sometimes", "22023").await;
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("synchronous_commit")),
        "{e:?}"
    );
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "on");
    // Other sessions keep the server's default.
    let other = server.connect().await;
    assert_eq!(scalar(&other, "SHOW synchronous_commit").await, "on");
    drop((client, other));
    // Either way a commit is in the operating system before it is acknowledged.
    server.kill();
    let server = sync.start();
    let client = server.connect().await;
    assert_eq!(
        text_rows(&client, "SELECT id FROM t ORDER BY id").await,
        ["1", "2"]
    );
    drop(client);
    drop(server);

    let delayed = Fixture::new(None);
    let server = delayed.start();
    let client = server.connect().await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "off");
    exec(&client, "SET synchronous_commit = on").await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "on");
    exec_fails(&client, "SET synchronous_commit = 'maybe'", "22023").await;
    assert_eq!(scalar(&client, "SHOW synchronous_commit").await, "on");
}
