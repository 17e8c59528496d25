//! Users, databases' privileges and authentication.
//!
//! Two kinds of users, as in GridDB: *administrators*, kept in a file beside the server
//! (`admins`), who may do everything; and *general users*, created with SQL and logged like
//! any catalog change, who reach `public` and the databases granted to them (`directory`).
//! Passwords are kept only as salted verifiers (`verifier`); `scram` runs the
//! SCRAM-SHA-256 exchange against them and `names` holds the naming rules.
//!
//! Invariants: no plaintext password is ever stored or logged; a user holds at most one
//! privilege per database; user names are unique ignoring ASCII case.

pub mod admins;
pub mod directory;
pub mod masking;
pub mod names;
pub mod scram;
pub mod verifier;

/// Writes `text` to `path` with permission bits `mode` (0600 for secrets) and syncs it.
pub fn write_file(path: &std::path::Path, text: &str, mode: u32) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| {
        crate::KuraError::io(format!("cannot write {}: {e}", path.display()), &e)
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)
}

pub use directory::{Directory, Privilege, StoredGrant, StoredUser};

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The name as stored (names are matched ignoring case).
    pub user: String,
    pub admin: bool,
}
