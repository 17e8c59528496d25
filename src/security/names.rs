//! GridDB's naming rules for users and databases, and the limits on how many there are.
//!
//! - Administrators: `gs#` followed by letters, digits and `_`, or one of the two built-in
//!   names (`admin`, `system`).
//! - General users: letters, digits and `_`, not starting with a digit, never an
//!   administrator's name.
//! - Databases: letters, digits and `_ - . / =`, not starting with a digit; `public` and
//!   `information_schema` are reserved.
//! - Names are at most 64 characters; at most 128 users and 128 databases exist.

use crate::error::{KuraError, Result, sqlstate};

pub const MAX_NAME_LEN: usize = 64;
pub const MAX_USERS: usize = 128;
pub const MAX_DATABASES: usize = 128;
/// GridDB's built-in administrators; general users may not take these names.
pub const BUILTIN_ADMINS: [&str; 2] = ["admin", "system"];
pub const ADMIN_PREFIX: &str = "gs#";
pub const RESERVED_DATABASES: [&str; 2] = ["public", "information_schema"];

/// Fails with 54000 when `count` objects already reach the limit `max` of `what`.
pub fn check_count(count: usize, max: usize, what: &str) -> Result<()> {
    if count >= max {
        return Err(KuraError::new(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("at most {max} {what}"),
        ));
    }
    Ok(())
}

fn invalid(what: &str, name: &str, rule: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid {what} name \"{name}\": {rule}"),
    )
}

fn check_length(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(invalid(what, name, "must have between 1 and 64 characters"));
    }
    Ok(())
}

fn word_chars(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True for a name only administrators may have.
pub fn is_admin_name(name: &str) -> bool {
    BUILTIN_ADMINS.iter().any(|b| b.eq_ignore_ascii_case(name))
        || name
            .get(..ADMIN_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(ADMIN_PREFIX))
}

/// Checks the name of a new administrator (`kura user add`).
pub fn check_admin_name(name: &str) -> Result<()> {
    check_length("administrator", name)?;
    if BUILTIN_ADMINS.iter().any(|b| b.eq_ignore_ascii_case(name)) {
        return Ok(());
    }
    let rest = name
        .get(..ADMIN_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(ADMIN_PREFIX))
        .map(|_| &name[ADMIN_PREFIX.len()..])
        .ok_or_else(|| {
            invalid(
                "administrator",
                name,
                "administrators are named gs#NAME (or admin, system)",
            )
        })?;
    if rest.is_empty() || !word_chars(rest) {
        return Err(invalid(
            "administrator",
            name,
            "only letters, digits and _ may follow gs#",
        ));
    }
    Ok(())
}

/// Checks the name of a new general user (CREATE USER).
pub fn check_user_name(name: &str) -> Result<()> {
    check_length("user", name)?;
    if is_admin_name(name) {
        return Err(KuraError::new(
            sqlstate::RESERVED_NAME,
            format!("user name \"{name}\" is reserved for administrators"),
        )
        .with_hint("administrators are managed with `kura user add`"));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) || !word_chars(name) {
        return Err(invalid(
            "user",
            name,
            "use letters, digits and _, not starting with a digit",
        ));
    }
    Ok(())
}

/// Checks the name of a new database (CREATE DATABASE).
pub fn check_database_name(name: &str) -> Result<()> {
    check_length("database", name)?;
    if RESERVED_DATABASES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(KuraError::new(
            sqlstate::RESERVED_NAME,
            format!("database name \"{name}\" is reserved"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-./=".contains(c);
    if name.starts_with(|c: char| c.is_ascii_digit()) || !name.chars().all(allowed) {
        return Err(invalid(
            "database",
            name,
            "use letters, digits and _ - . / =, not starting with a digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_griddb() {
        assert!(check_admin_name("gs#ops_1").is_ok());
        assert!(check_admin_name("admin").is_ok());
        assert!(check_admin_name("gs#").is_err());
        assert!(check_admin_name("gs#a-b").is_err());
        assert!(check_admin_name("ops").is_err());
        assert!(check_user_name("app_user1").is_ok());
        assert!(check_user_name("1app").is_err());
        assert!(check_user_name("a-b").is_err());
        assert!(check_user_name("System").is_err());
        assert!(check_user_name("GS#x").is_err());
        assert!(check_user_name(&"u".repeat(65)).is_err());
        assert!(check_database_name("sensors/eu-1.v=2").is_ok());
        assert!(check_database_name("Public").is_err());
        assert!(check_database_name("information_schema").is_err());
        assert!(check_database_name("9db").is_err());
        assert!(check_database_name("a b").is_err());
        assert!(is_admin_name("Gs#X"));
        assert!(!is_admin_name("gsx"));
    }
}
