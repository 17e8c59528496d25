//! Query layer: DataFusion planning and execution over Kura tables.
//!
//! `database` wires a DataFusion session to the catalog; `provider` and `scan` read MVCC
//! snapshots; `access` picks index lookups from pushed-down filters; `context` carries the
//! statement's snapshot and transaction into scans.

pub mod access;
pub mod context;
pub mod database;
pub mod engine;
pub mod functions;
pub mod gap_fill;
pub mod in_array;
pub mod interruptible;
pub mod literal_coercion;
pub mod meta_tables;
pub mod ordinality;
pub mod pg_format;
pub mod provider;
pub mod pruning;
pub mod scan;
pub mod scan_filter;
pub mod series;
pub mod time_functions;
pub mod timeseries_functions;
pub mod type_planner;
pub mod zone_casts;

pub use context::StatementContext;
pub use database::{Database, DatabaseOptions};
pub use engine::Engine;
