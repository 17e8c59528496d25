//! Which audit category a statement belongs to, what GridDB calls its operation, and the
//! tables it touches.
//!
//! Invariant: every statement has a category, so that turning every category on records
//! every statement.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CopySource, Expr, ObjectName, ObjectType, Statement, visit_expressions, visit_relations,
};

use super::Category;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub category: Category,
    /// SELECT, DML, DDL, DCL, or the command's name for AUDIT_SYSTEM.
    pub name: &'static str,
    pub tables: Vec<String>,
}

/// The functions that act on other connections: operations commands, audited as SYSTEM.
const SIGNAL_FUNCTIONS: &[&str] = &["pg_cancel_backend", "pg_terminate_backend"];

pub fn classify(statement: &Statement) -> Operation {
    let (category, name) = category_of(statement);
    Operation {
        category,
        name,
        tables: tables(statement),
    }
}

fn category_of(statement: &Statement) -> (Category, &'static str) {
    use Category::*;
    match statement {
        s if crate::sql::dialect::is_checkpoint(s) => (System, "CHECKPOINT"),
        s if crate::sql::backup_syntax::backup_call(s).is_some() => (System, "BACKUP"),
        s if crate::sql::vacuum_syntax::vacuum_call(s).is_some() => (System, "VACUUM"),
        s if crate::sql::system_syntax::system_change(s).is_some() => (System, "ALTER SYSTEM"),
        Statement::Explain {
            analyze: true,
            statement,
            ..
        } => category_of(statement),
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::Copy { to: true, .. } => read_category(statement),
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_)
        | Statement::Truncate(_)
        | Statement::Copy { to: false, .. } => (SqlWrite, "DML"),
        Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::AlterUser(_)
        | Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Drop {
            object_type: ObjectType::User | ObjectType::Role,
            ..
        } => (Dcl, "DCL"),
        Statement::CreateDatabase { .. }
        | Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::CreateSchema { .. }
        | Statement::AlterTable(_)
        | Statement::AlterView { .. }
        | Statement::AlterIndex { .. }
        | Statement::Drop { .. } => (Ddl, "DDL"),
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => (System, "TRANSACTION"),
        Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. } => {
            (System, "PREPARE")
        }
        _ => (System, "SESSION"),
    }
}

/// A query of statistics views only is STAT; one that signals other connections is SYSTEM;
/// any other read is SQL_READ.
fn read_category(statement: &Statement) -> (Category, &'static str) {
    if calls_signal_function(statement) {
        return (Category::System, "SIGNAL");
    }
    let tables = relations(statement);
    let statistics = !tables.is_empty()
        && tables
            .iter()
            .all(|t| last_part(t).is_some_and(|n| n.starts_with("pg_stat")));
    if statistics {
        (Category::Stat, "SELECT")
    } else {
        (Category::SqlRead, "SELECT")
    }
}

fn calls_signal_function(statement: &Statement) -> bool {
    visit_expressions(statement, |expr| match expr {
        Expr::Function(f)
            if last_part(&f.name)
                .is_some_and(|n| SIGNAL_FUNCTIONS.contains(&n.to_ascii_lowercase().as_str())) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
}

fn relations(statement: &Statement) -> Vec<ObjectName> {
    let mut names = Vec::new();
    let _ = visit_relations(statement, |name| {
        names.push(name.clone());
        ControlFlow::<()>::Continue(())
    });
    names
}

/// The tables and views the statement names, in order of first mention.
fn tables(statement: &Statement) -> Vec<String> {
    let mut names = relations(statement);
    match statement {
        Statement::CreateView(view) => names.push(view.name.clone()),
        Statement::Drop {
            object_type: ObjectType::Table | ObjectType::View | ObjectType::Index,
            names: dropped,
            ..
        } => names.extend(dropped.iter().cloned()),
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            ..
        } => names.push(table_name.clone()),
        _ => {}
    }
    let mut tables: Vec<String> = Vec::new();
    for name in names {
        let text = name.to_string();
        if !tables.contains(&text) {
            tables.push(text);
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_sql;

    fn of(sql: &str) -> (Category, &'static str, Vec<String>) {
        let statement = parse_sql(sql).unwrap().remove(0);
        let operation = classify(&statement);
        (operation.category, operation.name, operation.tables)
    }

    #[test]
    fn statements_fall_in_griddb_categories() {
        use Category::*;
        let cases: &[(&str, Category, &str, &[&str])] = &[
            (
                "SELECT * FROM t JOIN u ON true",
                SqlRead,
                "SELECT",
                &["t", "u"],
            ),
            ("COPY t TO STDOUT", SqlRead, "SELECT", &["t"]),
            (
                "INSERT INTO t SELECT * FROM s",
                SqlWrite,
                "DML",
                &["t", "s"],
            ),
            ("UPDATE t SET a = 1", SqlWrite, "DML", &["t"]),
            ("DELETE FROM t", SqlWrite, "DML", &["t"]),
            ("COPY t FROM STDIN", SqlWrite, "DML", &["t"]),
            ("TRUNCATE t", SqlWrite, "DML", &["t"]),
            ("EXPLAIN ANALYZE DELETE FROM t", SqlWrite, "DML", &["t"]),
            ("CREATE TABLE t (a int)", Ddl, "DDL", &["t"]),
            ("CREATE VIEW v AS SELECT * FROM t", Ddl, "DDL", &["t", "v"]),
            ("DROP TABLE t, u", Ddl, "DDL", &["t", "u"]),
            ("CREATE DATABASE d", Ddl, "DDL", &[]),
            ("CREATE USER u IDENTIFIED BY 'x'", Dcl, "DCL", &[]),
            ("DROP USER u", Dcl, "DCL", &[]),
            ("GRANT ALL ON DATABASE d TO u", Dcl, "DCL", &[]),
            ("CHECKPOINT", System, "CHECKPOINT", &[]),
            ("BEGIN", System, "TRANSACTION", &[]),
            ("SET search_path = public", System, "SESSION", &[]),
            ("SELECT pg_terminate_backend(12)", System, "SIGNAL", &[]),
            (
                "SELECT * FROM pg_stat_activity",
                Stat,
                "SELECT",
                &["pg_stat_activity"],
            ),
            (
                "SELECT * FROM pg_catalog.pg_stat_ssl",
                Stat,
                "SELECT",
                &["pg_catalog.pg_stat_ssl"],
            ),
        ];
        for (sql, category, name, tables) in cases {
            let (c, n, t) = of(sql);
            assert_eq!((c, n), (*category, *name), "{sql}");
            assert_eq!(t, *tables, "{sql}");
        }
    }
}
