//! COPY FROM / COPY TO: option parsing (`options`), the text, CSV and binary data formats
//! (`format`), binary field values (`binary_values`) and Parquet files (`parquet`). The
//! submodules are pure: no I/O, no catalog access; the caller resolves tables and columns and
//! moves the bytes.

pub mod binary_values;
pub mod format;
pub mod options;
pub mod parquet;
