//! COPY FROM / COPY TO: option parsing (`options`) and the text, CSV and binary data formats
//! (`format`). Both submodules are pure: no I/O, no catalog access; the caller resolves
//! tables and columns and moves the bytes.

pub mod format;
pub mod options;
