//! The administrators' file (`/security/passwordFile`, `conf/password` in the data directory):
//! one administrator per line, `NAME,VERIFIER`, managed with `kura user add|del|passwd`.
//! Lines starting with `#` and blank lines are ignored.
//!
//! The server reads the file again when it changes on disk (looking at most once a second),
//! so an administrator added while the server runs can log in a moment later (GridDB needs
//! a restart).
//!
//! Invariants: the file only ever holds verifiers; it is replaced atomically (written beside,
//! synced, renamed) with mode 0600; names are unique ignoring ASCII case.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::names::{self, check_admin_name};
use super::verifier::{Encryption, Verifier, random_bytes};
use crate::error::{KuraError, Result, sqlstate};

/// The default administrator created on first start (GridDB's built-in `admin`).
pub const DEFAULT_ADMIN: &str = "admin";
/// Environment variable holding the default administrator's first password.
pub const PASSWORD_ENV: &str = "KURA_ADMIN_PASSWORD";

const HEADER: &str =
    "# Kura administrators: NAME,VERIFIER per line. Edit with `kura user add|del|passwd`.\n";

#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
    pub verifier: Verifier,
}

fn io(path: &Path, e: std::io::Error) -> KuraError {
    KuraError::new(
        sqlstate::IO_ERROR,
        format!("administrators' file {}: {e}", path.display()),
    )
}

/// Parses the file's text; by lower-cased name.
fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, Admin>> {
    let mut out = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: String| {
            KuraError::new(
                sqlstate::IO_ERROR,
                format!(
                    "administrators' file {} line {}: {what}",
                    path.display(),
                    number + 1
                ),
            )
        };
        let (name, verifier) = line
            .split_once(',')
            .ok_or_else(|| bad("expected NAME,VERIFIER".into()))?;
        check_admin_name(name).map_err(|e| bad(e.message))?;
        let verifier = Verifier::parse(verifier).map_err(|e| bad(e.message))?;
        let admin = Admin {
            name: name.to_string(),
            verifier,
        };
        if out.insert(name.to_ascii_lowercase(), admin).is_some() {
            return Err(bad(format!("administrator \"{name}\" appears twice")));
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<BTreeMap<String, Admin>> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    parse(path, &text)
}

fn write(path: &Path, admins: &BTreeMap<String, Admin>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let mut text = HEADER.to_string();
    for admin in admins.values() {
        text.push_str(&format!("{},{}\n", admin.name, admin.verifier.to_text()));
    }
    let tmp = path.with_extension("tmp");
    super::write_file(&tmp, &text, 0o600)?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent() {
        crate::wal::sync_dir(dir)?;
    }
    Ok(())
}

/// A random password of 20 letters and digits.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    random_bytes(20)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// What [`ensure_file`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstStart {
    /// The file existed.
    Existing,
    /// The default administrator was created with the password from [`PASSWORD_ENV`].
    FromEnvironment,
    /// The default administrator was created with this generated password (shown once).
    Generated(String),
}

/// Creates the file with the default administrator unless it exists.
pub fn ensure_file(path: &Path, password_from_env: Option<String>) -> Result<FirstStart> {
    if path.exists() {
        return Ok(FirstStart::Existing);
    }
    let (password, outcome) = match password_from_env.filter(|p| !p.is_empty()) {
        Some(password) => (password, FirstStart::FromEnvironment),
        None => {
            let password = generate_password();
            (password.clone(), FirstStart::Generated(password))
        }
    };
    let admin = Admin {
        name: DEFAULT_ADMIN.to_string(),
        verifier: Verifier::for_password(&password, DEFAULT_ADMIN, Encryption::ScramSha256)?,
    };
    write(path, &BTreeMap::from([(DEFAULT_ADMIN.to_string(), admin)]))?;
    Ok(outcome)
}

/// `kura user add`: a new administrator.
pub fn add(path: &Path, name: &str, password: &str, encryption: Encryption) -> Result<()> {
    check_admin_name(name)?;
    let mut admins = if path.exists() {
        read(path)?
    } else {
        BTreeMap::new()
    };
    let key = name.to_ascii_lowercase();
    if admins.contains_key(&key) {
        return Err(KuraError::new(
            sqlstate::DUPLICATE_OBJECT,
            format!("administrator \"{name}\" already exists"),
        ));
    }
    names::check_count(admins.len(), names::MAX_USERS, "administrators")?;
    let verifier = Verifier::for_password(password, name, encryption)?;
    admins.insert(
        key,
        Admin {
            name: name.to_string(),
            verifier,
        },
    );
    write(path, &admins)
}

fn no_such(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("administrator \"{name}\" does not exist"),
    )
}

/// `kura user del`.
pub fn delete(path: &Path, name: &str) -> Result<()> {
    let mut admins = read(path)?;
    admins
        .remove(&name.to_ascii_lowercase())
        .ok_or_else(|| no_such(name))?;
    if admins.is_empty() {
        return Err(KuraError::new(
            sqlstate::OBJECT_IN_USE,
            "the last administrator cannot be removed",
        ));
    }
    write(path, &admins)
}

/// `kura user passwd`.
pub fn set_password(path: &Path, name: &str, password: &str, encryption: Encryption) -> Result<()> {
    let mut admins = read(path)?;
    let admin = admins
        .get_mut(&name.to_ascii_lowercase())
        .ok_or_else(|| no_such(name))?;
    admin.verifier = Verifier::for_password(password, &admin.name, encryption)?;
    write(path, &admins)
}

/// How often the server looks at the file's modification time: every statement checks that
/// its administrator still exists, and a `stat` per statement is not free.
const RECHECK: Duration = Duration::from_secs(1);

/// The running server's view of the file, read again when it changes.
#[derive(Debug)]
pub struct Admins {
    path: PathBuf,
    cached: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    admins: BTreeMap<String, Admin>,
}

impl Admins {
    pub fn open(path: PathBuf) -> Result<Admins> {
        let admins = Admins {
            path,
            cached: Mutex::new(Cached::default()),
        };
        admins.refresh()?;
        Ok(admins)
    }

    /// No administrators at all (sessions made inside the library, tests).
    pub fn none() -> Admins {
        Admins {
            path: PathBuf::new(),
            cached: Mutex::new(Cached::default()),
        }
    }

    fn refresh(&self) -> Result<()> {
        self.refresh_within(RECHECK)
    }

    /// Reads the file again if it changed, unless it was looked at less than `age` ago.
    fn refresh_within(&self, age: Duration) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let mut cached = self.cached.lock();
        if cached.checked.is_some_and(|at| at.elapsed() < age) {
            return Ok(());
        }
        cached.checked = Some(Instant::now());
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(|e| io(&self.path, e))?;
        if cached.modified != Some(modified) {
            cached.admins = read(&self.path)?;
            cached.modified = Some(modified);
        }
        Ok(())
    }

    /// The administrator called `name` as the file says now (logins).
    pub fn get_now(&self, name: &str) -> Option<Admin> {
        self.lookup(name, Duration::ZERO)
    }

    /// The administrator called `name` as the file said at most a second ago (the check before
    /// each statement).
    pub fn get(&self, name: &str) -> Option<Admin> {
        self.lookup(name, RECHECK)
    }

    /// A file that cannot be read keeps the last good copy (the failure is logged).
    fn lookup(&self, name: &str, age: Duration) -> Option<Admin> {
        if let Err(e) = self.refresh_within(age) {
            tracing::warn!("keeping the administrators read before: {e}");
        }
        self.cached
            .lock()
            .admins
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Every administrator's name.
    pub fn names(&self) -> Vec<String> {
        let _ = self.refresh();
        self.cached
            .lock()
            .admins
            .values()
            .map(|a| a.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_created_once_and_managed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/password");
        let first = ensure_file(&path, None).unwrap();
        let FirstStart::Generated(password) = first else {
            panic!("a password is generated: {first:?}");
        };
        assert_eq!(
            ensure_file(&path, Some("x".into())).unwrap(),
            FirstStart::Existing
        );
        let admins = Admins::open(path.clone()).unwrap();
        assert!(
            admins
                .get("ADMIN")
                .unwrap()
                .verifier
                .matches(&password, "admin")
        );
        add(&path, "gs#ops", "pw1", Encryption::ScramSha256).unwrap();
        assert!(add(&path, "GS#OPS", "pw", Encryption::ScramSha256).is_err());
        assert!(add(&path, "ops", "pw", Encryption::ScramSha256).is_err());
        set_password(&path, "gs#ops", "pw2", Encryption::ScramSha256).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("pw2") && text.contains("gs#ops,SCRAM-SHA-256$"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        delete(&path, "admin").unwrap();
        assert!(delete(&path, "gs#ops").is_err(), "the last one stays");
        assert!(delete(&path, "nobody").is_err());
        std::fs::write(&path, "gs#x,not-a-verifier\n").unwrap();
        assert!(read(&path).unwrap_err().message.contains("line 1"));
    }
}
