//! Kura: a SQL-first NewSQL database server that speaks the PostgreSQL wire protocol.
//!
//! Layers, top to bottom: `server` (pgwire front end) → `session` (transaction blocks,
//! settings) → `sql` (parsing, DDL, DML) → `query` (DataFusion over Kura tables) → `txn`
//! (snapshots, locks, commit pipeline) → `storage` (MVCC column chunks and indexes).
//! Durability: `wal` (transaction log, group commit), `checkpoint` (consistent snapshots on
//! disk), `recovery` (checkpoint + log replay at start, the data-directory lock).
//! `security`: users, privileges and authentication. `replication`: log streaming to standbys,
//! hot standby, promotion. `backup`: online backups, continuous log archiving, restore.
//! See docs/ARCHITECTURE.md for the flow of a query.

pub mod audit;
pub mod backup;
pub mod check;
pub mod checkpoint;
pub mod client;
pub mod clock;
pub mod config;
pub mod copy;
pub mod error;
pub mod expiry;
pub mod gc;
pub mod interrupt;
pub mod logs;
pub mod memory;
pub mod pg_catalog;
pub mod query;
pub mod recovery;
pub mod replication;
pub mod security;
pub mod server;
pub mod session;
pub mod sql;
pub mod stats;
pub mod storage;
pub mod transfer;
pub mod txn;
pub mod types;
pub mod wal;

pub use error::{KuraError, Result};
