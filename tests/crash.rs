//! Crash harness for the durability layer (transaction log with group commit, checkpoints,
//! recovery): concurrent clients write while the server is killed with SIGKILL at a moment
//! chosen by a seeded PRNG, the server restarts on the same data directory, and everything
//! every client was told is committed is checked against what recovery brought back.
//!
//! Invariants checked after every restart, over all data written since the test began:
//! - every acknowledged commit is present, with exactly the values it wrote (also commits made
//!   with `synchronous_commit = off`: their log record reaches the OS before the commit is
//!   acknowledged, so a process crash cannot lose them);
//! - nothing rolled back (explicitly, to a savepoint, or because the client lost its
//!   connection before COMMIT) is present;
//! - a commit whose COMMIT call failed or was cut off by the kill is all or nothing: all of
//!   its rows (and, for a transfer, both balance changes) or none;
//! - the table holds exactly the acknowledged rows plus those of the unknown-outcome commits
//!   found applied (no stray, duplicated or half-updated rows), and an unknown outcome, once
//!   observed, never changes at a later restart;
//! - the transfer sum invariant holds and every balance equals the initial balance plus the
//!   transfers found applied; concurrent readers never see a partial transfer;
//! - primary-key and secondary-index lookups agree with the table contents, and the primary key
//!   still rejects duplicates;
//! - DDL (CREATE TABLE, CREATE INDEX, ALTER TABLE ADD COLUMN) acknowledged before a crash
//!   survives it, and DDL cut off by the crash is present up to some prefix of its steps.
//!
//! A client error with a SQLSTATE (the server answered) is a test failure unless it is a
//! transaction conflict; losing the connection is expected only after the kill.
//!
//! `KURA_CRASH_ITERATIONS` (default 20) sets the number of crashes of the main loop,
//! `KURA_CRASH_SEED` the base seed (decimal or 0x-hex); the seed of every iteration is printed.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, sqlstate, within};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Concurrent writing clients per iteration.
const CLIENTS: usize = 8;
/// Accounts of the transfer workload and the balance each starts with.
const ACCOUNTS: i64 = 16;
const INITIAL_BALANCE: i64 = 1_000;
const DEFAULT_ITERATIONS: u32 = 20;
const DEFAULT_SEED: u64 = 0x6b75_7261_6372_6173;
/// Safety bound on the operations of one client between two kills.
const MAX_OPS_PER_CLIENT: u64 = 200_000;
/// SQLSTATEs a transaction may legitimately fail with under contention (it is then rolled
/// back): serialization failure, deadlock, lock timeout.
const CONFLICTS: [&str; 3] = ["40001", "40P01", "55P03"];
/// How many problems a failed verification prints in full.
const SHOWN_PROBLEMS: usize = 40;

const CREATE_ITEMS: &str = "CREATE TABLE items (k BIGINT PRIMARY KEY, tag BIGINT NOT NULL, \
     n BIGINT NOT NULL, v BIGINT NOT NULL, payload TEXT NOT NULL)";
const CREATE_ITEMS_TAG: &str = "CREATE INDEX items_tag ON items (tag)";
const CREATE_ACCOUNTS: &str =
    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)";

// ---------------------------------------------------------------------------------------------
// Seeds and the PRNG

fn iterations() -> u32 {
    match std::env::var("KURA_CRASH_ITERATIONS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("KURA_CRASH_ITERATIONS={v:?} is not a number")),
        Err(_) => DEFAULT_ITERATIONS,
    }
}

fn base_seed() -> u64 {
    match std::env::var("KURA_CRASH_SEED") {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("KURA_CRASH_SEED={v:?} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// The seed of one iteration (or round) of a test.
fn seed_for(base: u64, iteration: u32) -> u64 {
    base ^ u64::from(iteration).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// xorshift64, seeded through splitmix64 so that neighbouring seeds give unrelated streams.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(z | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Up to `n` elements of `items`, picked at random (with repetition).
    fn sample<T: Copy>(&mut self, items: &[T], n: usize) -> Vec<T> {
        if items.is_empty() {
            return Vec::new();
        }
        (0..n.min(items.len()))
            .map(|_| items[self.below(items.len() as u64) as usize])
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The model: every transaction a client attempted and what it was told

/// One row of `items` (keyed by `k`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// The transaction that inserted the row.
    tag: i64,
    /// How many rows that transaction left in the table.
    n: i64,
    v: i64,
    payload: String,
}

impl Row {
    fn new(label: &str, k: i64, tag: i64, n: i64) -> Row {
        Row {
            tag,
            n,
            v: k * 7 + tag,
            payload: format!("{label}-t{tag}-k{k}-{}", "x".repeat((k % 37) as usize)),
        }
    }

    fn values(&self, k: i64) -> String {
        format!(
            "({k}, {}, {}, {}, '{}')",
            self.tag, self.n, self.v, self.payload
        )
    }
}

fn insert_sql(rows: &[(i64, Row)]) -> String {
    let values: Vec<String> = rows.iter().map(|(k, r)| r.values(*k)).collect();
    format!("INSERT INTO items VALUES {}", values.join(", "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One autocommit INSERT.
    Single,
    /// BEGIN; several INSERTs, an UPDATE and a DELETE of its own rows, maybe a savepoint
    /// rolled back; COMMIT.
    Batch,
    /// BEGIN; two balance UPDATEs and a marker row; COMMIT.
    Transfer,
    /// BEGIN; DELETE or UPDATE of a committed `Single` row and a marker row; COMMIT.
    Modify,
    /// BEGIN; INSERTs, maybe a transfer; ROLLBACK.
    Rollback,
    /// One INSERT ... SELECT of many rows (the heavy-checkpoint test's load).
    Bulk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// COMMIT (or the autocommit statement) succeeded.
    Acked,
    /// COMMIT was sent but its answer was an error or never came.
    Unknown,
    /// Ended with ROLLBACK (or the connection died after the ROLLBACK was decided).
    RolledBack,
    /// COMMIT was never sent: a statement failed or the connection died before it.
    Aborted,
}

#[derive(Debug, Clone)]
enum Change {
    Delete,
    Update { v: i64, payload: String },
}

#[derive(Debug, Clone)]
struct Txn {
    tag: i64,
    kind: Kind,
    outcome: Outcome,
    /// Whether the verification after a restart found it applied; later ones must agree.
    settled: Option<bool>,
    iteration: u32,
    client: usize,
    /// Ran with `synchronous_commit = off`.
    async_commit: bool,
    /// The rows it leaves in `items` when applied (final values as of its commit).
    rows: Vec<(i64, Row)>,
    /// Keys it inserted and removed again (DELETE or ROLLBACK TO SAVEPOINT): never visible.
    ghosts: Vec<i64>,
    /// A `Single` row it deletes or updates.
    target: Option<(i64, Change)>,
    /// Balance changes (account, delta).
    transfer: Vec<(i64, i64)>,
    /// Where it failed, for messages.
    note: String,
}

impl Txn {
    fn describe(&self) -> String {
        let mut s = format!(
            "txn tag {} ({:?}, {:?}, iteration {}, client {}",
            self.tag, self.kind, self.outcome, self.iteration, self.client
        );
        if self.async_commit {
            s.push_str(", synchronous_commit=off");
        }
        if !self.transfer.is_empty() {
            s.push_str(&format!(", transfer {:?}", self.transfer));
        }
        if let Some((k, change)) = &self.target {
            s.push_str(&format!(", {change:?} of key {k}"));
        }
        if !self.note.is_empty() {
            s.push_str(&format!(", {}", self.note));
        }
        s.push(')');
        s
    }

    fn keys(&self) -> Vec<i64> {
        self.rows.iter().map(|(k, _)| *k).collect()
    }
}

/// A DDL sequence on table `ddl_<iteration>`, cut off by the kill at some step.
#[derive(Debug, Clone)]
struct Ddl {
    iteration: u32,
    /// Steps acknowledged, in order (see [`ddl_step`]).
    acked: usize,
    /// The step after `acked` was sent and its outcome is unknown.
    unknown: bool,
}

const DDL_STEPS: usize = 4;

/// Step `step` (1-based) of the DDL sequence of `iteration`.
fn ddl_step(iteration: u32, step: usize) -> String {
    match step {
        1 => format!("CREATE TABLE ddl_{iteration} (id BIGINT PRIMARY KEY, note TEXT NOT NULL)"),
        2 => format!("INSERT INTO ddl_{iteration} VALUES (1, 'iteration {iteration}')"),
        3 => format!("CREATE INDEX ddl_{iteration}_note ON ddl_{iteration} (note)"),
        4 => format!("ALTER TABLE ddl_{iteration} ADD COLUMN extra BIGINT DEFAULT 7"),
        _ => unreachable!("DDL step {step}"),
    }
}

/// What the clients share across iterations: key and tag counters, and the acknowledged
/// `Single` rows nobody has modified yet.
#[derive(Debug)]
struct Shared {
    next_key: AtomicI64,
    next_tag: AtomicI64,
    targets: Mutex<Vec<i64>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    ops: u64,
    acked: u64,
    acked_async: u64,
    unknown: u64,
    unknown_applied: u64,
    rolled_back: u64,
    aborted: u64,
    checkpoints: u64,
    reads: u64,
    conflicts: u64,
    ddl_acked: u64,
    ddl_unknown: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.ops += o.ops;
        self.acked += o.acked;
        self.acked_async += o.acked_async;
        self.unknown += o.unknown;
        self.unknown_applied += o.unknown_applied;
        self.rolled_back += o.rolled_back;
        self.aborted += o.aborted;
        self.checkpoints += o.checkpoints;
        self.reads += o.reads;
        self.conflicts += o.conflicts;
        self.ddl_acked += o.ddl_acked;
        self.ddl_unknown += o.ddl_unknown;
    }

    fn line(&self) -> String {
        format!(
            "ops {}, acknowledged {} ({} with synchronous_commit=off), unknown {} ({} found applied), \
             rolled back {}, aborted before COMMIT {}, conflicts {}, CHECKPOINTs {}, reads {}, \
             DDL steps acknowledged {} / unknown {}",
            self.ops,
            self.acked,
            self.acked_async,
            self.unknown,
            self.unknown_applied,
            self.rolled_back,
            self.aborted,
            self.conflicts,
            self.checkpoints,
            self.reads,
            self.ddl_acked,
            self.ddl_unknown
        )
    }
}

/// Everything a test has written, across restarts.
struct World {
    shared: Arc<Shared>,
    txns: Vec<Txn>,
    ddl: Vec<Ddl>,
    /// Unexpected client-side errors (server errors, connections lost before the kill).
    errors: Vec<String>,
    totals: Totals,
    rng: Rng,
}

impl World {
    fn new(seed: u64) -> World {
        World {
            shared: Arc::new(Shared {
                next_key: AtomicI64::new(1),
                next_tag: AtomicI64::new(1),
                targets: Mutex::new(Vec::new()),
            }),
            txns: Vec::new(),
            ddl: Vec::new(),
            errors: Vec::new(),
            totals: Totals::default(),
            rng: Rng::new(seed ^ 0x5645_5249_4659),
        }
    }

    /// Adds a finished worker's transactions and counters; returns its counters.
    fn absorb(&mut self, report: WorkerReport) -> Totals {
        let mut t = Totals {
            ops: report.ops,
            checkpoints: report.checkpoints,
            reads: report.reads,
            conflicts: report.conflicts,
            ..Totals::default()
        };
        for txn in &report.txns {
            match txn.outcome {
                Outcome::Acked => {
                    t.acked += 1;
                    t.acked_async += u64::from(txn.async_commit);
                }
                Outcome::Unknown => t.unknown += 1,
                Outcome::RolledBack => t.rolled_back += 1,
                Outcome::Aborted => t.aborted += 1,
            }
        }
        self.txns.extend(report.txns);
        self.errors.extend(report.errors);
        t
    }

    fn absorb_ddl(&mut self, ddl: Ddl, errors: Vec<String>) -> Totals {
        let t = Totals {
            ddl_acked: ddl.acked as u64,
            ddl_unknown: u64::from(ddl.unknown),
            ..Totals::default()
        };
        self.ddl.push(ddl);
        self.errors.extend(errors);
        t
    }

    /// Prints the unexpected client errors (before verification, whose own failure would
    /// otherwise hide them).
    fn print_client_errors(&self, context: &str) {
        for error in &self.errors {
            println!("{context}: UNEXPECTED client error: {error}");
        }
    }

    fn fail_on_client_errors(&self, context: &str) {
        assert!(
            self.errors.is_empty(),
            "{context}: {} unexpected client errors:\n{}",
            self.errors.len(),
            self.errors
                .iter()
                .take(SHOWN_PROBLEMS)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

enum Failure {
    /// The connection is gone (expected only once the server was killed).
    Lost(String),
    /// The server answered with an error.
    Server { code: String, message: String },
}

/// A statement of a transaction and the row count it must report (`None`: any).
struct Stmt {
    sql: String,
    expect: Option<u64>,
}

impl Stmt {
    fn rows(sql: String, expect: u64) -> Stmt {
        Stmt {
            sql,
            expect: Some(expect),
        }
    }

    fn any(sql: &str) -> Stmt {
        Stmt {
            sql: sql.to_string(),
            expect: None,
        }
    }
}

#[derive(Debug, Default)]
struct WorkerReport {
    txns: Vec<Txn>,
    errors: Vec<String>,
    ops: u64,
    checkpoints: u64,
    reads: u64,
    conflicts: u64,
}

/// One client running a random mix of transactions until its connection dies.
struct Worker {
    id: usize,
    iteration: u32,
    client: Client,
    rng: Rng,
    shared: Arc<Shared>,
    /// Set just before the server is killed: a lost connection is expected from then on.
    killed: Arc<AtomicBool>,
    allow_checkpoint: bool,
    report: WorkerReport,
}

impl Worker {
    fn spawn(
        id: usize,
        iteration: u32,
        client: Client,
        seed: u64,
        shared: &Arc<Shared>,
        killed: &Arc<AtomicBool>,
        allow_checkpoint: bool,
    ) -> tokio::task::JoinHandle<WorkerReport> {
        let worker = Worker {
            id,
            iteration,
            client,
            rng: Rng::new(seed.wrapping_add((id as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))),
            shared: shared.clone(),
            killed: killed.clone(),
            allow_checkpoint,
            report: WorkerReport::default(),
        };
        tokio::spawn(worker.run())
    }

    async fn run(mut self) -> WorkerReport {
        while !self.killed.load(Ordering::SeqCst) && self.report.ops < MAX_OPS_PER_CLIENT {
            self.report.ops += 1;
            let alive = match self.rng.below(100) {
                0..32 => self.single().await,
                32..52 => self.batch().await,
                52..68 => self.transfer().await,
                68..80 => self.modify().await,
                80..90 => self.rolled_back().await,
                90..98 => self.read().await,
                _ if self.allow_checkpoint => self.checkpoint().await,
                _ => self.single().await,
            };
            if !alive {
                break;
            }
        }
        self.report
    }

    fn new_txn(&mut self, kind: Kind) -> Txn {
        Txn {
            tag: self.shared.next_tag.fetch_add(1, Ordering::SeqCst),
            kind,
            outcome: Outcome::Aborted,
            settled: None,
            iteration: self.iteration,
            client: self.id,
            async_commit: kind != Kind::Rollback && self.rng.percent(15),
            rows: Vec::new(),
            ghosts: Vec::new(),
            target: None,
            transfer: Vec::new(),
            note: String::new(),
        }
    }

    /// `n` fresh keys, never used before.
    fn keys(&self, n: usize) -> Vec<i64> {
        let first = self.shared.next_key.fetch_add(n as i64, Ordering::SeqCst);
        (first..first + n as i64).collect()
    }

    fn error(&mut self, what: String) {
        self.report.errors.push(format!(
            "iteration {} client {}: {what}",
            self.iteration, self.id
        ));
    }

    /// Runs one statement (simple protocol); returns its row count.
    async fn exec(&mut self, sql: &str) -> Result<u64, Failure> {
        match within(sql, self.client.simple_query(sql)).await {
            Ok(messages) => Ok(messages
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0)),
            Err(e) => Err(self.failure(sql, &e)),
        }
    }

    /// Runs a query; returns its rows as text.
    async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Failure> {
        match within(sql, self.client.simple_query(sql)).await {
            Ok(messages) => Ok(text_rows(&messages)),
            Err(e) => Err(self.failure(sql, &e)),
        }
    }

    fn failure(&mut self, sql: &str, e: &tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => Failure::Server {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => {
                if !self.killed.load(Ordering::SeqCst) {
                    self.error(format!(
                        "connection lost before the server was killed, at `{sql}`: {e}"
                    ));
                }
                Failure::Lost(e.to_string())
            }
        }
    }

    /// Records a server error: a conflict is expected now and then, anything else is not.
    fn server_error(&mut self, txn: &Txn, sql: &str, code: &str, message: &str) {
        if CONFLICTS.contains(&code) {
            self.report.conflicts += 1;
        } else {
            self.error(format!(
                "{}: `{sql}` failed with {code}: {message}",
                txn.describe()
            ));
        }
    }

    /// Sets `synchronous_commit`; returns whether the connection is still alive.
    async fn set_synchronous_commit(&mut self, txn: &Txn, on: bool) -> bool {
        let sql = if on {
            "SET synchronous_commit = on"
        } else {
            "SET synchronous_commit = off"
        };
        match self.exec(sql).await {
            Ok(_) => true,
            Err(Failure::Lost(_)) => false,
            Err(Failure::Server { code, message }) => {
                self.server_error(txn, sql, &code, &message);
                true
            }
        }
    }

    /// Runs `sql` as its own (autocommit) transaction; returns whether the connection lives.
    async fn autocommit(&mut self, txn: &mut Txn, sql: &str, expect: u64) -> bool {
        if txn.async_commit && !self.set_synchronous_commit(txn, false).await {
            txn.outcome = Outcome::Aborted;
            txn.note = "connection lost at SET".into();
            return false;
        }
        let alive = match self.exec(sql).await {
            Ok(n) => {
                txn.outcome = Outcome::Acked;
                if n != expect {
                    self.error(format!(
                        "{}: `{sql}` reported {n} rows, expected {expect}",
                        txn.describe()
                    ));
                }
                true
            }
            Err(Failure::Lost(e)) => {
                txn.outcome = Outcome::Unknown;
                txn.note = format!("connection lost at the statement: {e}");
                false
            }
            Err(Failure::Server { code, message }) => {
                txn.outcome = Outcome::Unknown;
                txn.note = format!("statement failed: {code} {message}");
                self.server_error(txn, sql, &code, &message);
                true
            }
        };
        if alive && txn.async_commit {
            return self.set_synchronous_commit(txn, true).await;
        }
        alive
    }

    /// Runs BEGIN; `body`; COMMIT (or ROLLBACK); returns whether the connection lives.
    async fn transaction(&mut self, txn: &mut Txn, body: &[Stmt], commit: bool) -> bool {
        if txn.async_commit && !self.set_synchronous_commit(txn, false).await {
            txn.outcome = Outcome::Aborted;
            txn.note = "connection lost at SET".into();
            return false;
        }
        let alive = self.block(txn, body, commit).await;
        if alive && txn.async_commit {
            return self.set_synchronous_commit(txn, true).await;
        }
        alive
    }

    async fn block(&mut self, txn: &mut Txn, body: &[Stmt], commit: bool) -> bool {
        txn.outcome = Outcome::Aborted;
        match self.exec("BEGIN").await {
            Ok(_) => {}
            Err(Failure::Lost(e)) => {
                txn.note = format!("connection lost at BEGIN: {e}");
                return false;
            }
            Err(Failure::Server { code, message }) => {
                self.server_error(txn, "BEGIN", &code, &message);
                return self.rollback().await;
            }
        }
        for stmt in body {
            match self.exec(&stmt.sql).await {
                Ok(n) if stmt.expect.is_none_or(|e| e == n) => {}
                Ok(n) => {
                    self.error(format!(
                        "{}: `{}` reported {n} rows, expected {:?}",
                        txn.describe(),
                        stmt.sql,
                        stmt.expect
                    ));
                    txn.note = "rolled back after a wrong row count".into();
                    return self.rollback().await;
                }
                Err(Failure::Lost(e)) => {
                    txn.note = format!("connection lost before COMMIT: {e}");
                    return false;
                }
                Err(Failure::Server { code, message }) => {
                    txn.note = format!("rolled back after {code}");
                    self.server_error(txn, &stmt.sql, &code, &message);
                    return self.rollback().await;
                }
            }
        }
        if !commit {
            txn.outcome = Outcome::RolledBack;
            return self.rollback().await;
        }
        match self.exec("COMMIT").await {
            Ok(_) => {
                txn.outcome = Outcome::Acked;
                true
            }
            Err(Failure::Lost(e)) => {
                txn.outcome = Outcome::Unknown;
                txn.note = format!("connection lost at COMMIT: {e}");
                false
            }
            Err(Failure::Server { code, message }) => {
                txn.outcome = Outcome::Unknown;
                txn.note = format!("COMMIT failed: {code} {message}");
                self.server_error(txn, "COMMIT", &code, &message);
                true
            }
        }
    }

    async fn rollback(&mut self) -> bool {
        match self.exec("ROLLBACK").await {
            Ok(_) => true,
            Err(Failure::Lost(_)) => false,
            Err(Failure::Server { code, message }) => {
                self.error(format!("ROLLBACK failed with {code}: {message}"));
                true
            }
        }
    }

    /// (a) An autocommit INSERT of one row.
    async fn single(&mut self) -> bool {
        let mut txn = self.new_txn(Kind::Single);
        let k = self.keys(1)[0];
        txn.rows.push((k, Row::new("single", k, txn.tag, 1)));
        let sql = insert_sql(&txn.rows);
        let alive = self.autocommit(&mut txn, &sql, 1).await;
        if txn.outcome == Outcome::Acked {
            self.shared.targets.lock().unwrap().push(k);
        }
        self.report.txns.push(txn);
        alive
    }

    /// (b) Several rows with one tag: INSERTs (multi-row and single), an UPDATE and a DELETE
    /// of its own rows, an UPDATE by tag, and sometimes a savepoint rolled back.
    async fn batch(&mut self) -> bool {
        let mut txn = self.new_txn(Kind::Batch);
        let tag = txn.tag;
        let n = self.rng.between(2, 6) as usize;
        let mut rows: Vec<(i64, Row)> = self
            .keys(n + 1)
            .into_iter()
            .map(|k| (k, Row::new("batch", k, tag, n as i64)))
            .collect();
        let split = self.rng.between(1, n as u64 + 1) as usize;
        let mut body = vec![Stmt::rows(insert_sql(&rows[..split]), split as u64)];
        for row in &rows[split..] {
            body.push(Stmt::rows(insert_sql(std::slice::from_ref(row)), 1));
        }
        let (first, old) = rows[0].clone();
        let updated = Row {
            v: -old.v,
            payload: format!("{}-upd", old.payload),
            ..old
        };
        body.push(Stmt::rows(
            format!(
                "UPDATE items SET v = {}, payload = '{}' WHERE k = {first}",
                updated.v, updated.payload
            ),
            1,
        ));
        rows[0].1 = updated;
        let (gone, _) = rows.pop().expect("n + 1 rows");
        body.push(Stmt::rows(format!("DELETE FROM items WHERE k = {gone}"), 1));
        txn.ghosts.push(gone);
        if self.rng.percent(50) {
            body.push(Stmt::rows(
                format!("UPDATE items SET v = v + 1 WHERE tag = {tag}"),
                n as u64,
            ));
            for (_, row) in &mut rows {
                row.v += 1;
            }
        }
        if self.rng.percent(30) {
            let ghosts: Vec<(i64, Row)> = self
                .keys(2)
                .into_iter()
                .map(|k| (k, Row::new("savepoint", k, tag, n as i64)))
                .collect();
            body.push(Stmt::any("SAVEPOINT sp"));
            body.push(Stmt::rows(insert_sql(&ghosts), 2));
            body.push(Stmt::rows(
                format!("UPDATE items SET v = 0 WHERE tag = {tag}"),
                n as u64 + 2,
            ));
            body.push(Stmt::any("ROLLBACK TO SAVEPOINT sp"));
            txn.ghosts.extend(ghosts.iter().map(|(k, _)| *k));
        }
        txn.rows = rows;
        let alive = self.transaction(&mut txn, &body, true).await;
        self.report.txns.push(txn);
        alive
    }

    /// A transfer between two accounts (updated in id order, so transfers never deadlock)
    /// plus a marker row: `(account, delta)` pairs and the statements.
    fn transfer_statements(&mut self, txn: &mut Txn) -> Vec<Stmt> {
        let from = self.rng.below(ACCOUNTS as u64) as i64;
        let mut to = self.rng.below(ACCOUNTS as u64 - 1) as i64;
        if to >= from {
            to += 1;
        }
        let amount = self.rng.between(1, 50) as i64;
        let mut deltas = vec![(from, -amount), (to, amount)];
        deltas.sort_unstable();
        let mut body: Vec<Stmt> = deltas
            .iter()
            .map(|(account, delta)| {
                Stmt::rows(
                    format!("UPDATE accounts SET balance = balance + {delta} WHERE id = {account}"),
                    1,
                )
            })
            .collect();
        let k = self.keys(1)[0];
        let marker = (k, Row::new("transfer", k, txn.tag, 1));
        let at = self.rng.below(3) as usize;
        body.insert(at, Stmt::rows(insert_sql(std::slice::from_ref(&marker)), 1));
        txn.rows.push(marker);
        txn.transfer = deltas;
        body
    }

    /// (b) A transfer: the sum of all balances stays constant.
    async fn transfer(&mut self) -> bool {
        let mut txn = self.new_txn(Kind::Transfer);
        let body = self.transfer_statements(&mut txn);
        let alive = self.transaction(&mut txn, &body, true).await;
        self.report.txns.push(txn);
        alive
    }

    /// (b) DELETE or UPDATE of an acknowledged row written by another transaction, plus a
    /// marker row.
    async fn modify(&mut self) -> bool {
        let target = {
            let mut targets = self.shared.targets.lock().unwrap();
            if targets.is_empty() {
                None
            } else {
                let i = self.rng.below(targets.len() as u64) as usize;
                Some(targets.swap_remove(i))
            }
        };
        let Some(x) = target else {
            return self.single().await;
        };
        let mut txn = self.new_txn(Kind::Modify);
        let (change, sql) = if self.rng.percent(50) {
            (Change::Delete, format!("DELETE FROM items WHERE k = {x}"))
        } else {
            let v = -(x * 11);
            let payload = format!("modified-by-t{}", txn.tag);
            let sql = format!("UPDATE items SET v = {v}, payload = '{payload}' WHERE k = {x}");
            (Change::Update { v, payload }, sql)
        };
        let k = self.keys(1)[0];
        let marker = (k, Row::new("modify", k, txn.tag, 1));
        let mut body = vec![Stmt::rows(sql, 1)];
        body.insert(
            self.rng.below(2) as usize,
            Stmt::rows(insert_sql(std::slice::from_ref(&marker)), 1),
        );
        txn.rows.push(marker);
        txn.target = Some((x, change));
        let alive = self.transaction(&mut txn, &body, true).await;
        self.report.txns.push(txn);
        alive
    }

    /// (c) Rows (and sometimes a transfer) written and then rolled back.
    async fn rolled_back(&mut self) -> bool {
        let mut txn = self.new_txn(Kind::Rollback);
        let n = self.rng.between(1, 4) as usize;
        let rows: Vec<(i64, Row)> = self
            .keys(n)
            .into_iter()
            .map(|k| (k, Row::new("rollback", k, txn.tag, n as i64)))
            .collect();
        let mut body = vec![Stmt::rows(insert_sql(&rows), n as u64)];
        txn.rows = rows;
        if self.rng.percent(50) {
            body.extend(self.transfer_statements(&mut txn));
        }
        if self.rng.percent(50) {
            body.push(Stmt::rows(
                format!("UPDATE items SET v = v + 1 WHERE tag = {}", txn.tag),
                txn.rows.len() as u64,
            ));
        }
        let alive = self.transaction(&mut txn, &body, false).await;
        self.report.txns.push(txn);
        alive
    }

    /// A reader: the sum of the balances is the same in every snapshot.
    async fn read(&mut self) -> bool {
        self.report.reads += 1;
        let sql = "SELECT sum(balance), count(*) FROM accounts";
        match self.query(sql).await {
            Ok(rows) => {
                let got: Vec<Option<String>> = rows.into_iter().next().unwrap_or_default();
                let want = vec![
                    Some((ACCOUNTS * INITIAL_BALANCE).to_string()),
                    Some(ACCOUNTS.to_string()),
                ];
                if got != want {
                    self.error(format!(
                        "a reader saw sum(balance), count(*) = {got:?}, expected {want:?} \
                         (a partial transfer is visible)"
                    ));
                }
                true
            }
            Err(Failure::Lost(_)) => false,
            Err(Failure::Server { code, message }) => {
                self.error(format!("`{sql}` failed with {code}: {message}"));
                true
            }
        }
    }

    async fn checkpoint(&mut self) -> bool {
        self.report.checkpoints += 1;
        match self.exec("CHECKPOINT").await {
            Ok(_) => true,
            Err(Failure::Lost(_)) => false,
            Err(Failure::Server { code, message }) => {
                self.error(format!("CHECKPOINT failed with {code}: {message}"));
                true
            }
        }
    }
}

/// Runs the DDL sequence of `iteration` after `delay`, until it ends or the kill cuts it.
async fn run_ddl(
    client: Client,
    iteration: u32,
    delay: Duration,
    killed: Arc<AtomicBool>,
) -> (Ddl, Vec<String>) {
    tokio::time::sleep(delay).await;
    let mut ddl = Ddl {
        iteration,
        acked: 0,
        unknown: false,
    };
    let mut errors = Vec::new();
    for step in 1..=DDL_STEPS {
        let sql = ddl_step(iteration, step);
        match within(&sql, client.simple_query(&sql)).await {
            Ok(_) => ddl.acked = step,
            Err(e) => {
                ddl.unknown = true;
                if e.as_db_error().is_some() || !killed.load(Ordering::SeqCst) {
                    errors.push(format!("iteration {iteration}: DDL `{sql}` failed: {e:?}"));
                }
                break;
            }
        }
    }
    (ddl, errors)
}

fn text_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Rows of a query that must succeed.
async fn must_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = within(sql, client.simple_query(sql))
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed after restart: {e:?}"));
    text_rows(&messages)
}

fn int(field: &Option<String>, sql: &str) -> i64 {
    field
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("`{sql}` returned {field:?} where a bigint was expected"))
}

// ---------------------------------------------------------------------------------------------
// Server lifecycle helpers

/// Writes a SYNC configuration (`logWriteMode` 0) with the given intervals.
fn write_config(dir: &Path, name: &str, checkpoint_interval: &str, gc_interval: &str) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let text = format!(
        r#"{{"dataStore": {{"logWriteMode": 0, "gcInterval": "{gc_interval}"}}, "checkpoint": {{"checkpointInterval": "{checkpoint_interval}"}}}}"#
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn start(data: &Path, config: &Path) -> TestServer {
    let config = config.to_str().expect("UTF-8 temporary path");
    TestServer::start_in(data, &["--config", config])
}

/// Creates the tables on a fresh data directory (all acknowledged, so they must survive).
async fn setup(server: &TestServer) {
    let client = server.connect().await;
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| format!("({i}, {INITIAL_BALANCE})"))
        .collect();
    let insert_accounts = format!("INSERT INTO accounts VALUES {}", accounts.join(", "));
    for sql in [
        CREATE_ITEMS,
        CREATE_ITEMS_TAG,
        CREATE_ACCOUNTS,
        insert_accounts.as_str(),
    ] {
        within(sql, client.batch_execute(sql))
            .await
            .unwrap_or_else(|e| panic!("setup `{sql}`: {e:?}"));
    }
}

/// Checkpoint data files being written (a checkpoint is in progress, or was cut off).
fn partial_checkpoint_files(data: &Path) -> Vec<String> {
    let dir = data.join("checkpoint").join("data");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

#[derive(Debug, Default)]
struct Verified {
    rows: usize,
    /// Rows written by acknowledged commits, and by commits of unknown outcome found applied.
    acked_rows: usize,
    unknown_rows: usize,
    unknown_applied: u64,
    elapsed: Duration,
}

/// Checks every invariant against the restarted server; panics with every violation found.
/// Afterwards the outcome of each unknown transaction is settled to what was found.
async fn verify(server: &TestServer, world: &mut World, context: &str) -> Verified {
    let started = Instant::now();
    let client = server.connect().await;
    let mut problems: Vec<String> = Vec::new();

    let items = read_items(&client, &mut problems).await;
    let keys = KeyIndex::new(&world.txns);
    let applied = applied_transactions(&world.txns, &keys, &items, &mut problems);
    check_outcomes(&world.txns, &applied, &mut problems);
    let expected = expected_rows(&world.txns, &applied);
    let (missing_rows, wrong_rows, unexpected_rows) = compare_rows(
        &world.txns,
        &applied,
        &keys,
        &items,
        &expected,
        &mut problems,
    );
    check_balances(&client, &world.txns, &applied, &mut problems).await;
    probe_indexes(
        &client,
        &mut world.rng,
        &world.txns,
        &applied,
        &items,
        &mut problems,
    )
    .await;
    let ddl_seen = check_ddl(&client, &world.ddl, &mut problems).await;

    if !problems.is_empty() {
        let lost = problems.iter().filter(|p| p.starts_with("LOST")).count();
        let shown = SHOWN_PROBLEMS.min(problems.len());
        panic!(
            "{context}: {} problems ({lost} lost acknowledged commits, {missing_rows} missing, \
             {wrong_rows} wrong and {unexpected_rows} unexpected rows); the table has {} rows, \
             expected {}. Re-run with KURA_CRASH_SEED to repeat the same choices. First {shown}:\n{}",
            problems.len(),
            items.len(),
            expected.len(),
            problems[..shown].join("\n")
        );
    }

    // Settle: from now on every transaction and DDL must stay exactly as found.
    let mut verified = Verified {
        rows: items.len(),
        ..Verified::default()
    };
    for k in items.keys() {
        if let Some((i, _)) = keys.owner.get(k) {
            match world.txns[*i].outcome {
                Outcome::Acked => verified.acked_rows += 1,
                _ => verified.unknown_rows += 1,
            }
        }
    }
    for (t, applied) in world.txns.iter_mut().zip(&applied) {
        if t.outcome == Outcome::Unknown && t.settled.is_none() && *applied {
            verified.unknown_applied += 1;
        }
        t.settled = Some(*applied);
    }
    for (ddl, steps) in world.ddl.iter_mut().zip(ddl_seen) {
        ddl.acked = steps;
        ddl.unknown = false;
    }
    world.totals.unknown_applied += verified.unknown_applied;
    verified.elapsed = started.elapsed();
    verified
}

/// Every row of `items`, by key (a key seen twice is a problem).
async fn read_items(client: &Client, problems: &mut Vec<String>) -> HashMap<i64, Row> {
    let sql = "SELECT k, tag, n, v, payload FROM items";
    let mut items = HashMap::new();
    for r in must_rows(client, sql).await {
        let (k, row) = parse_item(&r, sql);
        if let Some(previous) = items.insert(k, row.clone()) {
            problems.push(format!("DUPLICATE key {k}: both {previous:?} and {row:?}"));
        }
    }
    items
}

fn parse_item(r: &[Option<String>], sql: &str) -> (i64, Row) {
    let row = Row {
        tag: int(&r[1], sql),
        n: int(&r[2], sql),
        v: int(&r[3], sql),
        payload: r[4].clone().unwrap_or_else(|| "NULL".into()),
    };
    (int(&r[0], sql), row)
}

/// Which transaction wrote (or modified) each key, for deciding and explaining.
struct KeyIndex {
    /// Key → (transaction index, the key's role in it).
    owner: HashMap<i64, (usize, &'static str)>,
    /// Key of a `Single` row → the `Modify` transaction that targets it.
    modifier_of: HashMap<i64, usize>,
}

impl KeyIndex {
    fn new(txns: &[Txn]) -> KeyIndex {
        let mut index = KeyIndex {
            owner: HashMap::new(),
            modifier_of: HashMap::new(),
        };
        for (i, t) in txns.iter().enumerate() {
            if let Some((k, _)) = &t.target {
                index.modifier_of.insert(*k, i);
            }
            for (k, _) in &t.rows {
                index.owner.insert(*k, (i, "one of the rows"));
            }
            for k in &t.ghosts {
                index
                    .owner
                    .insert(*k, (i, "a row removed again before COMMIT"));
            }
        }
        index
    }

    /// A `Single` transaction whose row another transaction deletes or updates.
    fn is_targeted(&self, t: &Txn) -> bool {
        t.kind == Kind::Single && self.modifier_of.contains_key(&t.rows[0].0)
    }

    /// Who wrote key `k`, for messages.
    fn whose(&self, k: i64, txns: &[Txn], applied: &[bool]) -> String {
        let found = |i: usize| if applied[i] { "applied" } else { "absent" };
        let mut s = match self.owner.get(&k) {
            Some((i, role)) => format!("{role} of {} (found {})", txns[*i].describe(), found(*i)),
            None => "no transaction of the test wrote this key".into(),
        };
        if let Some(m) = self.modifier_of.get(&k) {
            s.push_str(&format!(
                "; target of {} (found {})",
                txns[*m].describe(),
                found(*m)
            ));
        }
        s
    }
}

/// Whether each transaction's rows are in the table: all of them (applied) or none. A
/// `Single` row deleted by an applied modifier cannot be observed; it was acknowledged before
/// the modifier began, so it counts as applied.
fn applied_transactions(
    txns: &[Txn],
    keys: &KeyIndex,
    items: &HashMap<i64, Row>,
    problems: &mut Vec<String>,
) -> Vec<bool> {
    let mut applied = vec![false; txns.len()];
    for (i, t) in txns.iter().enumerate() {
        if keys.is_targeted(t) {
            continue;
        }
        let missing: Vec<i64> = t
            .keys()
            .into_iter()
            .filter(|k| !items.contains_key(k))
            .collect();
        applied[i] = missing.len() < t.rows.len();
        if applied[i] && !missing.is_empty() {
            problems.push(format!(
                "PARTIAL transaction: {} has {} of its {} rows; missing keys {missing:?}",
                t.describe(),
                t.rows.len() - missing.len(),
                t.rows.len(),
            ));
        }
    }
    for (i, t) in txns.iter().enumerate() {
        if keys.is_targeted(t) {
            let k = t.rows[0].0;
            let m = keys.modifier_of[&k];
            let deleted = applied[m] && matches!(txns[m].target, Some((_, Change::Delete)));
            applied[i] = deleted || items.contains_key(&k);
        }
    }
    applied
}

/// What was found against what the clients were told, and against earlier restarts.
fn check_outcomes(txns: &[Txn], applied: &[bool], problems: &mut Vec<String>) {
    let found = |a: bool| if a { "applied" } else { "absent" };
    for (t, applied) in txns.iter().zip(applied) {
        match t.outcome {
            Outcome::Acked if !applied => problems.push(format!(
                "LOST acknowledged commit: {}: none of its keys {:?} is present",
                t.describe(),
                t.keys()
            )),
            Outcome::RolledBack | Outcome::Aborted if *applied => problems.push(format!(
                "NEVER-COMMITTED transaction visible: {} (keys {:?})",
                t.describe(),
                t.keys()
            )),
            _ => {}
        }
        if let Some(before) = t.settled
            && before != *applied
        {
            problems.push(format!(
                "CHANGED outcome: {} was {} at the previous restart and is {} now",
                t.describe(),
                found(before),
                found(*applied)
            ));
        }
    }
}

/// The exact expected contents of `items`: rows of applied transactions, then the applied
/// modifications of them.
fn expected_rows(txns: &[Txn], applied: &[bool]) -> HashMap<i64, Row> {
    let mut expected: HashMap<i64, Row> = HashMap::new();
    for (t, _) in txns.iter().zip(applied).filter(|(_, a)| **a) {
        expected.extend(t.rows.iter().cloned());
    }
    for (t, _) in txns.iter().zip(applied).filter(|(_, a)| **a) {
        match &t.target {
            Some((k, Change::Delete)) => {
                expected.remove(k);
            }
            Some((k, Change::Update { v, payload })) => {
                if let Some(row) = expected.get_mut(k) {
                    row.v = *v;
                    row.payload = payload.clone();
                }
            }
            None => {}
        }
    }
    expected
}

/// Reports missing, wrong and unexpected rows; returns how many of each.
fn compare_rows(
    txns: &[Txn],
    applied: &[bool],
    keys: &KeyIndex,
    items: &HashMap<i64, Row>,
    expected: &HashMap<i64, Row>,
    problems: &mut Vec<String>,
) -> (usize, usize, usize) {
    let (mut missing, mut wrong, mut unexpected) = (0, 0, 0);
    for (k, want) in expected {
        match items.get(k) {
            None => {
                missing += 1;
                problems.push(format!(
                    "MISSING row {k} = {want:?}: {}",
                    keys.whose(*k, txns, applied)
                ));
            }
            Some(got) if got != want => {
                wrong += 1;
                problems.push(format!(
                    "WRONG row {k}: found {got:?}, expected {want:?}: {}",
                    keys.whose(*k, txns, applied)
                ));
            }
            Some(_) => {}
        }
    }
    for (k, got) in items {
        if !expected.contains_key(k) {
            unexpected += 1;
            problems.push(format!(
                "UNEXPECTED row {k} = {got:?}: {}",
                keys.whose(*k, txns, applied)
            ));
        }
    }
    (missing, wrong, unexpected)
}

/// Balances are the initial ones plus the applied transfers; their sum never changes.
async fn check_balances(
    client: &Client,
    txns: &[Txn],
    applied: &[bool],
    problems: &mut Vec<String>,
) {
    let sql = "SELECT id, balance FROM accounts";
    let balances: HashMap<i64, i64> = must_rows(client, sql)
        .await
        .iter()
        .map(|r| (int(&r[0], sql), int(&r[1], sql)))
        .collect();
    let mut want: HashMap<i64, i64> = (0..ACCOUNTS).map(|a| (a, INITIAL_BALANCE)).collect();
    for (t, _) in txns.iter().zip(applied).filter(|(_, a)| **a) {
        for (account, delta) in &t.transfer {
            *want.get_mut(account).expect("account in range") += delta;
        }
    }
    let mut ids: Vec<i64> = balances.keys().chain(want.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if balances.get(&id) != want.get(&id) {
            problems.push(format!(
                "BALANCE of account {id} is {:?}, expected {:?} from the transfers found applied",
                balances.get(&id),
                want.get(&id)
            ));
        }
    }
    let sum: i64 = balances.values().sum();
    if sum != ACCOUNTS * INITIAL_BALANCE {
        problems.push(format!(
            "SUM of balances is {sum}, expected {} (a partial transfer survived)",
            ACCOUNTS * INITIAL_BALANCE
        ));
    }
}

/// Index lookups agree with the full scan: the primary key for keys that are present and
/// keys that must be absent, the secondary index on `tag`, and the primary key still rejects
/// a duplicate.
async fn probe_indexes(
    client: &Client,
    rng: &mut Rng,
    txns: &[Txn],
    applied: &[bool],
    items: &HashMap<i64, Row>,
    problems: &mut Vec<String>,
) {
    let mut present: Vec<i64> = items.keys().copied().collect();
    present.sort_unstable();
    let (mut absent, mut applied_tags, mut absent_tags) = (Vec::new(), Vec::new(), Vec::new());
    for (t, applied) in txns.iter().zip(applied) {
        if *applied {
            applied_tags.push(t.tag);
        } else {
            absent.extend(t.keys());
            absent_tags.push(t.tag);
        }
        absent.extend(t.ghosts.iter().copied());
    }

    let mut probe = rng.sample(&present, 48);
    probe.extend(rng.sample(&absent, 24));
    if !probe.is_empty() {
        let list: Vec<String> = probe.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT k, tag, n, v, payload FROM items WHERE k IN ({})",
            list.join(", ")
        );
        let found: HashMap<i64, Row> = must_rows(client, &sql)
            .await
            .iter()
            .map(|r| parse_item(r, &sql))
            .collect();
        for k in &probe {
            if found.get(k) != items.get(k) {
                problems.push(format!(
                    "INDEX lookup of key {k} found {:?} but a full scan found {:?}",
                    found.get(k),
                    items.get(k)
                ));
            }
        }
    }

    let mut tags = rng.sample(&applied_tags, 16);
    tags.extend(rng.sample(&absent_tags, 8));
    if !tags.is_empty() {
        let wanted: HashSet<i64> = tags.iter().copied().collect();
        let list: Vec<String> = tags.iter().map(i64::to_string).collect();
        let sql = format!("SELECT k FROM items WHERE tag IN ({})", list.join(", "));
        let mut found: Vec<i64> = must_rows(client, &sql)
            .await
            .iter()
            .map(|r| int(&r[0], &sql))
            .collect();
        found.sort_unstable();
        let mut scanned: Vec<i64> = items
            .iter()
            .filter(|(_, row)| wanted.contains(&row.tag))
            .map(|(k, _)| *k)
            .collect();
        scanned.sort_unstable();
        if found != scanned {
            problems.push(format!(
                "INDEX items_tag lookup of tags {tags:?} found keys {found:?}, a full scan {scanned:?}"
            ));
        }
    }

    if let Some(k) = rng.sample(&present, 1).first() {
        let sql = format!("INSERT INTO items VALUES ({k}, -1, 1, 0, 'duplicate')");
        match within(&sql, client.simple_query(&sql)).await {
            Err(e) if sqlstate(&e) == Some("23505") => {}
            other => problems.push(format!(
                "PRIMARY KEY: inserting existing key {k} gave {other:?}, expected 23505"
            )),
        }
    }
}

/// The DDL of every iteration is in effect up to some prefix of its steps: at least the
/// acknowledged ones, at most one more if that one's outcome is unknown. Returns the steps
/// found, per DDL sequence.
async fn check_ddl(client: &Client, ddls: &[Ddl], problems: &mut Vec<String>) -> Vec<usize> {
    let mut seen = Vec::with_capacity(ddls.len());
    for ddl in ddls {
        let steps = observe_ddl(client, ddl.iteration, problems).await;
        let allowed = steps == ddl.acked || (ddl.unknown && steps == ddl.acked + 1);
        if !allowed {
            problems.push(format!(
                "DDL of iteration {}: found the first {steps} of {DDL_STEPS} steps, but {} were \
                 acknowledged{}",
                ddl.iteration,
                ddl.acked,
                if ddl.unknown {
                    " and the next one had an unknown outcome"
                } else {
                    ""
                }
            ));
        }
        seen.push(steps);
    }
    seen
}

/// How many leading steps of the DDL sequence of `iteration` are in effect.
async fn observe_ddl(client: &Client, iteration: u32, problems: &mut Vec<String>) -> usize {
    let table = format!("ddl_{iteration}");
    let sql = format!("SELECT id, note FROM {table}");
    let rows = match within(&sql, client.simple_query(&sql)).await {
        Ok(messages) => text_rows(&messages),
        Err(e) if sqlstate(&e) == Some("42P01") => return 0,
        Err(e) => {
            problems.push(format!("DDL: `{sql}` failed: {e:?}"));
            return 0;
        }
    };
    let row_present = !rows.is_empty();
    let want_row = vec![
        Some("1".to_string()),
        Some(format!("iteration {iteration}")),
    ];
    if row_present && rows != vec![want_row.clone()] {
        problems.push(format!(
            "DDL: {table} holds {rows:?}, expected only {want_row:?}"
        ));
    }
    let sql = format!("EXPLAIN SELECT id FROM {table} WHERE note = 'iteration {iteration}'");
    let plan = must_rows(client, &sql).await;
    let index_present = format!("{plan:?}").contains(&format!("index {table}_note"));
    let sql = format!("SELECT extra FROM {table}");
    let column_present = match within(&sql, client.simple_query(&sql)).await {
        Ok(messages) => {
            let values = text_rows(&messages);
            if values.iter().any(|r| r[0].as_deref() != Some("7")) {
                problems.push(format!(
                    "DDL: {table}.extra holds {values:?}, expected the default 7"
                ));
            }
            true
        }
        Err(e) if sqlstate(&e) == Some("42703") => false,
        Err(e) => {
            problems.push(format!("DDL: `{sql}` failed: {e:?}"));
            false
        }
    };
    let seen = [true, row_present, index_present, column_present];
    let steps = seen.iter().take_while(|s| **s).count();
    if seen[steps..].iter().any(|s| *s) {
        problems.push(format!(
            "DDL of iteration {iteration}: steps in effect (table, row, index, column) are \
             {seen:?}, not a prefix of the sequence"
        ));
    }
    steps
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Kill the server at random moments under a mixed concurrent load, many times over one
/// growing data directory, with periodic checkpoints and garbage collection running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_repeated_sigkill() {
    let iterations = iterations();
    let base = base_seed();
    println!(
        "crash loop: {iterations} iterations, base seed {base:#x} \
         (KURA_CRASH_ITERATIONS / KURA_CRASH_SEED)"
    );
    let dir = common::temp_dir();
    let data = dir.path().join("data");
    let config_for = |iteration: u32| {
        let mut rng = Rng::new(seed_for(base, iteration) ^ 0xC0F1_6000);
        let checkpoint = ["50ms", "100ms", "250ms", "1s"][rng.below(4) as usize];
        let gc = ["100ms", "1s"][rng.below(2) as usize];
        let path = write_config(
            dir.path(),
            &format!("iteration-{iteration}"),
            checkpoint,
            gc,
        );
        (
            path,
            format!("checkpointInterval {checkpoint}, gcInterval {gc}"),
        )
    };
    let mut world = World::new(base);
    let (config, described) = config_for(1);
    println!("starting on a fresh data directory ({described})");
    let mut server = start(&data, &config);
    setup(&server).await;

    for iteration in 1..=iterations {
        let seed = seed_for(base, iteration);
        let context = format!("iteration {iteration}/{iterations} (seed {seed:#x})");
        let mut rng = Rng::new(seed);
        let run = Duration::from_millis(rng.between(20, 800));
        let ddl_delay = Duration::from_millis(rng.below(run.as_millis() as u64 + 1));
        let killed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(CLIENTS);
        for id in 0..CLIENTS {
            let client = server.connect().await;
            workers.push(Worker::spawn(
                id,
                iteration,
                client,
                seed,
                &world.shared,
                &killed,
                true,
            ));
        }
        let ddl = tokio::spawn(run_ddl(
            server.connect().await,
            iteration,
            ddl_delay,
            killed.clone(),
        ));
        tokio::time::sleep(run).await;
        killed.store(true, Ordering::SeqCst);
        server.kill();

        let mut counts = Totals::default();
        for worker in workers {
            let report = within("a client to stop after the kill", worker)
                .await
                .expect("client task panicked");
            counts.add(&world.absorb(report));
        }
        let (ddl, errors) = within("the DDL client to stop after the kill", ddl)
            .await
            .expect("DDL task panicked");
        counts.add(&world.absorb_ddl(ddl, errors));
        world.print_client_errors(&context);

        let (config, described) = config_for(iteration + 1);
        println!("{context}: killed after {run:?}; restarting ({described})");
        server = start(&data, &config);
        let verified = verify(&server, &mut world, &context).await;
        world.fail_on_client_errors(&context);
        counts.unknown_applied = verified.unknown_applied;
        world.totals.add(&Totals {
            unknown_applied: 0,
            ..counts
        });
        println!(
            "{context}: verified {} rows ({} of acknowledged commits + {} of unknown-outcome \
             commits found applied) in {:?}; {}",
            verified.rows,
            verified.acked_rows,
            verified.unknown_rows,
            verified.elapsed,
            counts.line()
        );
    }

    // A clean shutdown and restart must keep everything too.
    let status = server.terminate();
    assert!(status.success(), "kura exited with {status} on SIGTERM");
    let (config, _) = config_for(iterations + 1);
    server = start(&data, &config);
    let verified = verify(&server, &mut world, "after a clean shutdown").await;
    println!(
        "after a clean shutdown: verified {} rows; totals over {iterations} crashes: {}",
        verified.rows,
        world.totals.line()
    );
    assert!(
        world.totals.acked > 0,
        "no commit was ever acknowledged: the harness tested nothing"
    );
}

/// Load a few hundred thousand rows, then kill the server while a `CHECKPOINT` is writing
/// them out (with writers running), several times; every acknowledged commit must survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_a_crash_during_a_heavy_checkpoint() {
    const LOAD_ROWS: i64 = 200_000;
    const LOAD_PARTS: i64 = 8;
    const WRITERS: usize = 6;
    const MAX_ROUNDS: u32 = 6;
    const WANTED_HITS: u32 = 3;
    let base = base_seed() ^ 0x4845_4156_5921;
    println!("heavy checkpoint: base seed {base:#x}");
    let dir = common::temp_dir();
    let data = dir.path().join("data");
    // Only the explicit CHECKPOINT runs during the test.
    let config = write_config(dir.path(), "heavy", "1h", "1s");
    let mut world = World::new(base);
    let mut server = start(&data, &config);
    setup(&server).await;

    // The load: LOAD_PARTS acknowledged INSERT ... SELECT statements, two at a time.
    let loaded = Instant::now();
    let per_part = LOAD_ROWS / LOAD_PARTS;
    let mut loads = Vec::new();
    for part in 0..LOAD_PARTS {
        let first = world.shared.next_key.fetch_add(per_part, Ordering::SeqCst);
        let tag = world.shared.next_tag.fetch_add(1, Ordering::SeqCst);
        let rows: Vec<(i64, Row)> = (first..first + per_part)
            .map(|k| {
                let row = Row {
                    tag,
                    n: per_part,
                    v: k * 7 + tag,
                    payload: format!("bulk-{k}"),
                };
                (k, row)
            })
            .collect();
        let sql = format!(
            "INSERT INTO items SELECT s, {tag}, {per_part}, s * 7 + {tag}, concat('bulk-', s) \
             FROM generate_series({first}, {}) AS g(s)",
            first + per_part - 1
        );
        let client = server.connect().await;
        loads.push(tokio::spawn(async move {
            let messages = within(&sql, client.simple_query(&sql))
                .await
                .unwrap_or_else(|e| panic!("`{sql}`: {e:?}"));
            let n = messages
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .unwrap_or(0);
            assert_eq!(n, per_part as u64, "`{sql}` inserted {n} rows");
            Txn {
                tag,
                kind: Kind::Bulk,
                outcome: Outcome::Acked,
                settled: None,
                iteration: 0,
                client: part as usize,
                async_commit: false,
                rows,
                ghosts: Vec::new(),
                target: None,
                transfer: Vec::new(),
                note: String::new(),
            }
        }));
        if loads.len() == 2 {
            for load in loads.drain(..) {
                let txn = load.await.expect("load task panicked");
                world.txns.push(txn);
            }
        }
    }
    for load in loads {
        world.txns.push(load.await.expect("load task panicked"));
    }
    println!("loaded {LOAD_ROWS} rows in {:?}", loaded.elapsed());

    let mut estimate: Option<Duration> = None;
    let mut hits = 0;
    for round in 1..=MAX_ROUNDS {
        if hits >= WANTED_HITS {
            break;
        }
        let seed = seed_for(base, round);
        let context = format!("heavy checkpoint round {round} (seed {seed:#x})");
        let mut rng = Rng::new(seed);
        let killed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(WRITERS);
        for id in 0..WRITERS {
            let client = server.connect().await;
            workers.push(Worker::spawn(
                id,
                1000 + round,
                client,
                seed,
                &world.shared,
                &killed,
                false,
            ));
        }
        let checkpoint_client = server.connect().await;
        tokio::time::sleep(Duration::from_millis(rng.between(10, 50))).await;
        let started = Instant::now();
        let mut checkpoint = Some(tokio::spawn(async move {
            let result = checkpoint_client.simple_query("CHECKPOINT").await;
            (result.map(|_| ()), started.elapsed())
        }));
        let mut finished = None;
        let how = match estimate {
            None => {
                // First round: measure how long a checkpoint of this data takes under load,
                // then crash between checkpoints.
                let handle = checkpoint.take().expect("spawned above");
                let (result, took) = within("CHECKPOINT", handle)
                    .await
                    .expect("checkpoint task panicked");
                if let Err(e) = &result {
                    panic!("{context}: CHECKPOINT failed: {e:?}");
                }
                estimate = Some(took);
                finished = Some((result, took));
                tokio::time::sleep(Duration::from_millis(rng.between(5, 100))).await;
                format!("after a {took:?} CHECKPOINT completed")
            }
            Some(estimate) => {
                let handle = checkpoint.as_ref().expect("spawned above");
                let span = estimate.as_millis().max(10) as u64;
                if rng.percent(50) {
                    // As soon as a data file is being written, plus a random part of it.
                    let deadline = Instant::now() + estimate * 3;
                    while partial_checkpoint_files(&data).is_empty()
                        && !handle.is_finished()
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let extra = Duration::from_millis(rng.below(span / 2 + 1));
                    tokio::time::sleep(extra).await;
                    format!("{extra:?} after a checkpoint data file appeared")
                } else {
                    let at = Duration::from_millis(rng.between(span / 20, span * 9 / 10));
                    tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
                    format!("{at:?} into the CHECKPOINT")
                }
            }
        };
        killed.store(true, Ordering::SeqCst);
        server.kill();
        let partial = partial_checkpoint_files(&data);

        let (result, took) = match (finished, checkpoint) {
            (Some(finished), _) => finished,
            (None, Some(handle)) => within("CHECKPOINT to return after the kill", handle)
                .await
                .expect("checkpoint task panicked"),
            (None, None) => unreachable!("the CHECKPOINT is either awaited or pending"),
        };
        match result {
            Ok(()) => {
                if round > 1 {
                    estimate = Some(took);
                }
                println!("{context}: killed {how}; the CHECKPOINT had finished ({took:?})");
            }
            Err(e) => {
                hits += 1;
                println!(
                    "{context}: killed {how}, DURING the CHECKPOINT ({took:?} in: {e}); \
                     partial data files left: {partial:?}"
                );
            }
        }
        let mut counts = Totals::default();
        for worker in workers {
            let report = within("a writer to stop after the kill", worker)
                .await
                .expect("writer task panicked");
            counts.add(&world.absorb(report));
        }
        world.print_client_errors(&context);
        server = start(&data, &config);
        let verified = verify(&server, &mut world, &context).await;
        world.fail_on_client_errors(&context);
        counts.unknown_applied = verified.unknown_applied;
        world.totals.add(&Totals {
            unknown_applied: 0,
            ..counts
        });
        println!(
            "{context}: verified {} rows in {:?}; {}",
            verified.rows,
            verified.elapsed,
            counts.line()
        );
    }
    println!(
        "heavy checkpoint: {hits} crashes hit a CHECKPOINT in progress; totals: {}",
        world.totals.line()
    );
    if hits == 0 {
        println!(
            "NOTE: no kill landed inside a CHECKPOINT on this machine; only crash recovery around checkpoints was exercised"
        );
    }
}
