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

pub use directory::{Directory, Privilege, StoredGrant, StoredUser};

/// Who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The name as stored (names are matched ignoring case).
    pub user: String,
    pub admin: bool,
}
