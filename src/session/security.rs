//! Who may run what, and the statements that manage databases, users and privileges.
//!
//! - Administrators may do everything.
//! - A general user works in `public` (open to every user, as in GridDB) and in the databases
//!   granted to it: READ lets it read; ALL also lets it write and change tables, views and
//!   indexes. Databases, users and grants are the administrators'; a general user may only
//!   change its own password.
//!
//! Invariants: the check runs before every statement, so a REVOKE or DROP USER takes effect at
//! the affected sessions' next statement; each change is one logged catalog change, validated
//! again with DDL paused.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CopyTarget, CreateRole, Expr, GrantObjects, Grantee, GranteeName,
    ObjectName, ObjectType, Password, Privileges, RoleOption, Statement, Value,
};

use super::Session;
use crate::error::{KuraError, Result, sqlstate};
use crate::query::Database;
use crate::security::names::{self, MAX_DATABASES, MAX_USERS};
use crate::security::verifier::{Encryption, Verifier};
use crate::security::{Login, Privilege, StoredUser};
use crate::sql::Outcome;
use crate::sql::names::normalize;
use crate::sql::user_syntax::CURRENT_USER;
use crate::storage::stored::PUBLIC_DATABASE;
use crate::wal::{CatalogChange, StoredDatabase};

/// What a statement needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
    Admin(&'static str),
}

fn denied(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INSUFFICIENT_PRIVILEGE, message)
}

fn need(statement: &Statement) -> Need {
    match statement {
        Statement::CreateDatabase { .. } => Need::Admin("create databases"),
        Statement::Drop {
            object_type: ObjectType::Database,
            ..
        } => Need::Admin("drop databases"),
        Statement::Drop {
            object_type: ObjectType::User | ObjectType::Role,
            ..
        }
        | Statement::CreateRole(_) => Need::Admin("manage users"),
        Statement::Grant(_) | Statement::Revoke(_) => Need::Admin("grant privileges"),
        checkpoint if crate::sql::dialect::is_checkpoint(checkpoint) => {
            Need::Admin("run CHECKPOINT")
        }
        backup if crate::sql::backup_syntax::backup_call(backup).is_some() => {
            Need::Admin("take backups")
        }
        system if crate::sql::system_syntax::system_change(system).is_some() => {
            Need::Admin("change server settings")
        }
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_)
        | Statement::CreateTable(_)
        | Statement::AlterTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::Drop { .. }
        | Statement::Truncate(_) => Need::Write,
        Statement::Copy {
            target: CopyTarget::File { .. } | CopyTarget::Program { .. },
            ..
        } => Need::Admin("COPY to or from a server file"),
        Statement::Copy { to: false, .. } => Need::Write,
        Statement::Explain {
            analyze: true,
            statement,
            ..
        } => need(statement),
        _ => Need::Read,
    }
}

fn single_name(name: &ObjectName, what: &str) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(normalize)
            .ok_or_else(|| KuraError::syntax(format!("invalid {what} name {name}"))),
        _ => Err(KuraError::syntax(format!("invalid {what} name {name}"))),
    }
}

fn password_text(password: &Password) -> Result<String> {
    match password {
        Password::Password(Expr::Value(v)) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Ok(s.clone()),
            _ => Err(KuraError::syntax("a password is a string literal")),
        },
        Password::Password(_) => Err(KuraError::syntax("a password is a string literal")),
        Password::NullPassword => Err(KuraError::unsupported(
            "users without a password are not supported",
        )),
    }
}

fn undefined_user(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("role \"{name}\" does not exist"),
    )
}

fn admin_managed(name: &str) -> KuraError {
    denied(format!(
        "\"{name}\" is an administrator; administrators are managed with `kura user`"
    ))
}

impl Session {
    /// Binds the session to `login` and its database; general users need a grant on it.
    pub fn log_in(&mut self, login: &Login, db: Arc<Database>) -> Result<()> {
        self.identity.user = login.user.clone();
        self.identity.admin = login.admin;
        self.db = db;
        self.database_privilege()
            .map_err(|e| e.with_detail("User does not have CONNECT privilege."))?;
        Ok(())
    }

    /// What the session's user holds on the session's database.
    fn database_privilege(&self) -> Result<Privilege> {
        let directory = &self.engine.directory;
        let exists = if self.identity.admin {
            self.engine.admin_exists(&self.identity.user) != Some(false)
        } else {
            directory.user(&self.identity.user).is_some()
        };
        if !exists {
            return Err(KuraError::new(
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                format!("user \"{}\" no longer exists", self.identity.user),
            ));
        }
        if self.identity.admin || self.db.name == PUBLIC_DATABASE {
            return Ok(Privilege::All);
        }
        directory
            .privilege(&self.identity.user, &self.db.name)
            .ok_or_else(|| {
                denied(format!(
                    "permission denied for database \"{}\"",
                    self.db.name
                ))
            })
    }

    /// Fails with 42501 unless the session's user may run `statement` now.
    pub(super) fn check_allowed(&self, statement: &Statement) -> Result<()> {
        let statement = super::prepared_target(&self.sql_prepared, statement);
        let privilege = self.database_privilege()?;
        if self.identity.admin {
            return Ok(());
        }
        match need(statement) {
            Need::Admin(what) => Err(denied(format!(
                "permission denied: only administrators may {what}"
            ))),
            Need::Write if privilege == Privilege::Read => Err(denied(format!(
                "permission denied: user \"{}\" may only read database \"{}\"",
                self.identity.user, self.db.name
            ))),
            _ => Ok(()),
        }
    }

    /// Runs `statement` if it manages databases, users or privileges.
    pub(super) async fn execute_security(
        &mut self,
        statement: &Statement,
    ) -> Option<Result<Outcome>> {
        let result = match statement {
            // GridDB's CREATE DATABASE does nothing for an existing database, so IF NOT EXISTS
            // changes nothing.
            Statement::CreateDatabase { db_name, .. } => self.create_database(db_name).await,
            Statement::Drop {
                object_type: ObjectType::Database,
                if_exists,
                names,
                ..
            } => self.drop_databases(names, *if_exists).await,
            Statement::Drop {
                object_type: ObjectType::User | ObjectType::Role,
                if_exists,
                names,
                ..
            } => self.drop_users(names, *if_exists).await,
            Statement::CreateRole(create) => self.create_users(create).await,
            Statement::AlterRole { name, operation } => match operation {
                AlterRoleOperation::WithOptions { options } => match options.as_slice() {
                    [RoleOption::Password(password)] => match password_text(password) {
                        Ok(text) => self.change_password(&normalize(name), &text).await,
                        Err(e) => Err(e),
                    },
                    _ => Err(KuraError::unsupported("ALTER USER supports PASSWORD only")),
                },
                _ => Err(KuraError::unsupported("ALTER USER supports PASSWORD only")),
            },
            Statement::AlterUser(alter) => match alter.password.as_ref().map(|p| &p.password) {
                Some(Some(text)) => self.change_password(&normalize(&alter.name), text).await,
                Some(None) => Err(KuraError::unsupported(
                    "users without a password are not supported",
                )),
                None => Err(KuraError::unsupported("ALTER USER supports PASSWORD only")),
            },
            Statement::Grant(grant) => {
                if grant.with_grant_option {
                    Err(KuraError::unsupported("WITH GRANT OPTION is not supported"))
                } else {
                    self.set_grants(
                        &grant.privileges,
                        grant.objects.as_ref(),
                        &grant.grantees,
                        true,
                    )
                    .await
                }
            }
            Statement::Revoke(revoke) => {
                self.set_grants(
                    &revoke.privileges,
                    revoke.objects.as_ref(),
                    &revoke.grantees,
                    false,
                )
                .await
            }
            _ => return None,
        };
        Some(result)
    }

    fn outside_block(&self, what: &str) -> Result<()> {
        if self.block.is_some() {
            return Err(KuraError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                format!("{what} cannot run inside a transaction block"),
            ));
        }
        Ok(())
    }

    async fn create_database(&mut self, name: &ObjectName) -> Result<Outcome> {
        self.outside_block("CREATE DATABASE")?;
        let name = single_name(name, "database")?;
        let engine = self.engine.clone();
        if let Some(existing) = engine.database(&name) {
            return Ok(Outcome::done("CREATE DATABASE").with_notice(format!(
                "database \"{}\" already exists, skipping",
                existing.name
            )));
        }
        names::check_database_name(&name)?;
        engine
            .change_catalog(|| {
                if engine.database(&name).is_some() {
                    return Err(KuraError::new(
                        sqlstate::DUPLICATE_DATABASE,
                        format!("database \"{name}\" already exists"),
                    ));
                }
                names::check_count(engine.databases().len(), MAX_DATABASES, "databases")?;
                Ok(CatalogChange::PutDatabase(StoredDatabase {
                    name: name.clone(),
                    id: engine.next_database_id(),
                }))
            })
            .await?;
        Ok(Outcome::done("CREATE DATABASE"))
    }

    async fn drop_databases(&mut self, names: &[ObjectName], if_exists: bool) -> Result<Outcome> {
        self.outside_block("DROP DATABASE")?;
        let mut outcome = Outcome::done("DROP DATABASE");
        for name in names {
            let name = single_name(name, "database")?;
            if self.engine.database(&name).is_none() && if_exists {
                outcome =
                    outcome.with_notice(format!("database \"{name}\" does not exist, skipping"));
                continue;
            }
            let db = self.engine.check_droppable(&name)?;
            if Arc::ptr_eq(&db, &self.db) {
                return Err(KuraError::new(
                    sqlstate::OBJECT_IN_USE,
                    "cannot drop the currently open database",
                ));
            }
            let others = self
                .backends
                .as_ref()
                .map(|b| b.activities())
                .unwrap_or_default()
                .iter()
                .filter(|a| a.database == db.name)
                .count();
            if others > 0 {
                return Err(KuraError::new(
                    sqlstate::OBJECT_IN_USE,
                    format!("database \"{}\" is being accessed by other users", db.name),
                )
                .with_detail(format!(
                    "There {} {others} other session{} using the database.",
                    if others == 1 { "is" } else { "are" },
                    if others == 1 { "" } else { "s" }
                )));
            }
            let engine = self.engine.clone();
            engine
                .change_catalog(|| {
                    engine.check_droppable(&db.name)?;
                    Ok(CatalogChange::DropDatabase {
                        name: db.name.clone(),
                    })
                })
                .await?;
        }
        Ok(outcome)
    }

    async fn create_users(&mut self, create: &CreateRole) -> Result<Outcome> {
        let unsupported = [
            (create.superuser == Some(true), "SUPERUSER"),
            (create.create_db == Some(true), "CREATEDB"),
            (create.create_role == Some(true), "CREATEROLE"),
            (create.replication == Some(true), "REPLICATION"),
            (create.bypassrls == Some(true), "BYPASSRLS"),
            (create.connection_limit.is_some(), "CONNECTION LIMIT"),
            (create.valid_until.is_some(), "VALID UNTIL"),
            (
                !(create.in_role.is_empty()
                    && create.in_group.is_empty()
                    && create.role.is_empty()
                    && create.user.is_empty()
                    && create.admin.is_empty()),
                "role membership",
            ),
        ];
        if let Some((_, option)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(KuraError::unsupported(format!(
                "role option {option} is not supported: administrators are kept in the administrators' file, general users hold privileges per database"
            )));
        }
        if create.login != Some(true) {
            return Err(KuraError::unsupported(
                "roles that cannot log in are not supported; use CREATE USER",
            ));
        }
        let password = create.password.as_ref().ok_or_else(|| {
            KuraError::syntax("CREATE USER needs a password")
                .with_hint("CREATE USER name IDENTIFIED BY 'password'")
        })?;
        let password = password_text(password)?;
        let mut outcome = Outcome::done("CREATE ROLE");
        for name in &create.names {
            let name = single_name(name, "user")?;
            names::check_user_name(&name)?;
            let engine = self.engine.clone();
            if create.if_not_exists && engine.directory.user(&name).is_some() {
                outcome = outcome.with_notice(format!("role \"{name}\" already exists, skipping"));
                continue;
            }
            let verifier = Verifier::for_password(&password, &name, self.password_encryption())?;
            engine
                .change_catalog(|| {
                    if engine.directory.user(&name).is_some() {
                        return Err(KuraError::new(
                            sqlstate::DUPLICATE_OBJECT,
                            format!("role \"{name}\" already exists"),
                        ));
                    }
                    names::check_count(engine.directory.user_count(), MAX_USERS, "users")?;
                    Ok(CatalogChange::PutUser(StoredUser {
                        name: name.clone(),
                        verifier: verifier.to_text(),
                    }))
                })
                .await?;
        }
        Ok(outcome)
    }

    fn password_encryption(&self) -> Encryption {
        self.limits.password_encryption.into()
    }

    async fn drop_users(&mut self, names: &[ObjectName], if_exists: bool) -> Result<Outcome> {
        let mut outcome = Outcome::done("DROP ROLE");
        for name in names {
            let name = single_name(name, "user")?;
            if names::is_admin_name(&name) {
                return Err(admin_managed(&name));
            }
            if name.eq_ignore_ascii_case(&self.identity.user) {
                return Err(KuraError::new(
                    sqlstate::OBJECT_IN_USE,
                    "current user cannot be dropped",
                ));
            }
            let engine = self.engine.clone();
            let Some(user) = engine.directory.user(&name) else {
                if if_exists {
                    outcome =
                        outcome.with_notice(format!("role \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(undefined_user(&name));
            };
            engine
                .change_catalog(|| {
                    engine
                        .directory
                        .user(&user.name)
                        .ok_or_else(|| undefined_user(&user.name))?;
                    Ok(CatalogChange::DropUser {
                        name: user.name.clone(),
                    })
                })
                .await?;
        }
        Ok(outcome)
    }

    async fn change_password(&mut self, name: &str, password: &str) -> Result<Outcome> {
        let target = if name.eq_ignore_ascii_case(CURRENT_USER) {
            self.identity.user.clone()
        } else {
            name.to_string()
        };
        let own = target.eq_ignore_ascii_case(&self.identity.user);
        if !own && !self.identity.admin {
            return Err(denied(
                "permission denied: only administrators may change another user's password",
            ));
        }
        if names::is_admin_name(&target) {
            return Err(admin_managed(&target));
        }
        let engine = self.engine.clone();
        let user = engine
            .directory
            .user(&target)
            .ok_or_else(|| undefined_user(&target))?;
        let verifier = Verifier::for_password(password, &user.name, self.password_encryption())?;
        engine
            .change_catalog(|| {
                engine
                    .directory
                    .user(&user.name)
                    .ok_or_else(|| undefined_user(&user.name))?;
                Ok(CatalogChange::PutUser(StoredUser {
                    name: user.name.clone(),
                    verifier: verifier.to_text(),
                }))
            })
            .await?;
        Ok(Outcome::done("ALTER ROLE"))
    }

    async fn set_grants(
        &mut self,
        privileges: &Privileges,
        objects: Option<&GrantObjects>,
        grantees: &[Grantee],
        grant: bool,
    ) -> Result<Outcome> {
        let privilege = granted_privilege(privileges)?;
        let databases = self.granted_databases(objects)?;
        let tag = if grant { "GRANT" } else { "REVOKE" };
        let mut outcome = Outcome::done(tag);
        for grantee in grantees {
            let name = match &grantee.name {
                Some(GranteeName::ObjectName(name)) => single_name(name, "user")?,
                _ => return Err(KuraError::unsupported("grantees are user names")),
            };
            if names::is_admin_name(&name) {
                return Err(KuraError::new(
                    sqlstate::INVALID_GRANT_OPERATION,
                    format!("\"{name}\" is an administrator, which holds every privilege"),
                ));
            }
            let engine = self.engine.clone();
            let user = engine
                .directory
                .user(&name)
                .ok_or_else(|| undefined_user(&name))?;
            for db in &databases {
                if !grant && engine.directory.privilege(&user.name, &db.name).is_none() {
                    outcome = outcome.with_notice(format!(
                        "no privileges could be revoked from \"{}\" on database \"{}\"",
                        user.name, db.name
                    ));
                    continue;
                }
                engine
                    .change_catalog(|| {
                        engine.existing_database(&db.name)?;
                        engine
                            .directory
                            .user(&user.name)
                            .ok_or_else(|| undefined_user(&user.name))?;
                        Ok(CatalogChange::SetGrant {
                            user: user.name.clone(),
                            database: db.name.clone(),
                            privilege: grant.then_some(privilege),
                        })
                    })
                    .await?;
            }
        }
        Ok(outcome)
    }

    /// The databases of a GRANT or REVOKE: `ON DATABASE d`, or GridDB's `ON d`.
    fn granted_databases(&self, objects: Option<&GrantObjects>) -> Result<Vec<Arc<Database>>> {
        let names = match objects {
            Some(GrantObjects::Databases(names)) => names,
            // GridDB writes `GRANT ALL ON db TO user`; sqlparser reads the name as a table.
            Some(GrantObjects::Tables(names)) => names,
            _ => {
                return Err(KuraError::unsupported(
                    "privileges are granted per database: GRANT {ALL | SELECT} ON [DATABASE] name TO user",
                ));
            }
        };
        names
            .iter()
            .map(|name| {
                let name = single_name(name, "database")?;
                let db = self.engine.database(&name).ok_or_else(|| {
                    let error = KuraError::new(
                        sqlstate::INVALID_CATALOG_NAME,
                        format!("database \"{name}\" does not exist"),
                    );
                    if self.db.catalog.relation_exists(&name) {
                        error.with_hint("Kura grants privileges per database, not per table")
                    } else {
                        error
                    }
                })?;
                if db.name == PUBLIC_DATABASE {
                    return Err(KuraError::new(
                        sqlstate::INVALID_GRANT_OPERATION,
                        "database \"public\" is open to every user; its privileges cannot change",
                    ));
                }
                Ok(db)
            })
            .collect()
    }
}

/// `ALL [PRIVILEGES]` or `SELECT` (GridDB's READ).
fn granted_privilege(privileges: &Privileges) -> Result<Privilege> {
    use datafusion::sql::sqlparser::ast::Action;
    match privileges {
        Privileges::All { .. } => Ok(Privilege::All),
        Privileges::Actions(actions) => match actions.as_slice() {
            [Action::Select { columns: None }] => Ok(Privilege::Read),
            _ => Err(KuraError::unsupported(
                "privileges are ALL or SELECT (GridDB's READ), per database",
            )),
        },
    }
}
