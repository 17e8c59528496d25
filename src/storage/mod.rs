//! In-memory MVCC column store: catalog → tables → data partitions → column chunks with
//! per-row version stamps, plus tree indexes per data partition.
//!
//! Invariants kept by this layer: committed data only enters through the commit pipeline
//! (`txn`), which appends rows and sets `end` stamps; everything else reads snapshots.

pub mod catalog;
pub mod chunk;
pub mod index;
pub mod key_codec;
pub mod partition;
pub mod partitioning;
pub mod residency;
pub mod schema;
pub mod stored;
pub mod swap;
pub mod table;

pub use catalog::{Catalog, ViewDef};
pub use chunk::{RowId, TS_LIVE, Ts};
pub use partitioning::PartitionKey;
pub use schema::{ColumnDef, IndexDef, Placement, TableDef, TableId};
pub use table::Table;
