//! The general users and their privileges on databases: a logged part of the catalog (changed
//! only through `CatalogChange`s, so replay, checkpoints and standbys see the same users).
//!
//! Invariants: user names are unique ignoring ASCII case; a grant names an existing user and
//! an existing database (dropping either drops its grants); one privilege per user and database.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::verifier::Verifier;
use crate::error::Result;

/// GridDB's two database privileges. `Read` is PostgreSQL's SELECT; `All` adds writes and DDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Privilege {
    Read,
    All,
}

impl Privilege {
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Read => "READ",
            Privilege::All => "ALL",
        }
    }
}

/// A general user as logged: the name and the verifier's text form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    pub name: String,
    pub verifier: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGrant {
    pub user: String,
    pub database: String,
    pub privilege: Privilege,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub verifier: Verifier,
}

#[derive(Debug, Default)]
struct State {
    /// By lower-cased name.
    users: BTreeMap<String, User>,
    /// By (lower-cased user, lower-cased database).
    grants: BTreeMap<(String, String), (String, Privilege)>,
}

#[derive(Debug, Default)]
pub struct Directory {
    state: RwLock<State>,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Directory {
    pub fn user(&self, name: &str) -> Option<User> {
        self.state.read().users.get(&key(name)).cloned()
    }

    pub fn user_count(&self) -> usize {
        self.state.read().users.len()
    }

    /// Every general user, by name.
    pub fn users(&self) -> Vec<User> {
        self.state.read().users.values().cloned().collect()
    }

    /// The privilege `user` holds on `database`, if any.
    pub fn privilege(&self, user: &str, database: &str) -> Option<Privilege> {
        self.state
            .read()
            .grants
            .get(&(key(user), key(database)))
            .map(|(_, p)| *p)
    }

    /// Every grant, as stored.
    pub fn grants(&self) -> Vec<StoredGrant> {
        let state = self.state.read();
        state
            .grants
            .iter()
            .filter_map(|((user, _), (database, privilege))| {
                state.users.get(user).map(|u| StoredGrant {
                    user: u.name.clone(),
                    database: database.clone(),
                    privilege: *privilege,
                })
            })
            .collect()
    }

    pub fn stored_users(&self) -> Vec<StoredUser> {
        self.users()
            .into_iter()
            .map(|u| StoredUser {
                verifier: u.verifier.to_text(),
                name: u.name,
            })
            .collect()
    }

    /// Adds or replaces a user (a new password keeps the user's grants).
    pub fn put_user(&self, stored: &StoredUser) -> Result<()> {
        let verifier = Verifier::parse(&stored.verifier)?;
        self.state.write().users.insert(
            key(&stored.name),
            User {
                name: stored.name.clone(),
                verifier,
            },
        );
        Ok(())
    }

    /// Removes a user and its grants.
    pub fn drop_user(&self, name: &str) {
        let mut state = self.state.write();
        let user = key(name);
        state.users.remove(&user);
        state.grants.retain(|(u, _), _| *u != user);
    }

    /// Grants (`Some`) or revokes (`None`) on one database.
    pub fn set_grant(&self, user: &str, database: &str, privilege: Option<Privilege>) {
        let mut state = self.state.write();
        let k = (key(user), key(database));
        match privilege {
            Some(p) => {
                state.grants.insert(k, (database.to_string(), p));
            }
            None => {
                state.grants.remove(&k);
            }
        }
    }

    /// Removes every grant on a dropped database.
    pub fn drop_database(&self, database: &str) {
        let database = key(database);
        self.state.write().grants.retain(|(_, d), _| *d != database);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::verifier::{Encryption, Verifier};

    fn stored(name: &str) -> StoredUser {
        StoredUser {
            name: name.into(),
            verifier: Verifier::for_password("pw", name, Encryption::ScramSha256)
                .unwrap()
                .to_text(),
        }
    }

    #[test]
    fn users_and_grants_ignore_case_and_go_together() {
        let d = Directory::default();
        d.put_user(&stored("App")).unwrap();
        d.set_grant("app", "Sensors", Some(Privilege::Read));
        assert_eq!(d.privilege("APP", "sensors"), Some(Privilege::Read));
        d.set_grant("app", "sensors", Some(Privilege::All));
        assert_eq!(d.grants().len(), 1);
        assert_eq!(d.grants()[0].privilege, Privilege::All);
        d.put_user(&stored("app")).unwrap();
        assert_eq!(d.privilege("app", "sensors"), Some(Privilege::All));
        d.drop_database("SENSORS");
        assert_eq!(d.privilege("app", "sensors"), None);
        d.set_grant("app", "x", Some(Privilege::Read));
        d.drop_user("APP");
        assert!(d.grants().is_empty());
        assert!(d.user("app").is_none());
    }
}
