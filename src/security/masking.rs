//! Statement text for logs with every password replaced by `********` (CREATE USER / ROLE,
//! ALTER USER / ROLE, SET PASSWORD), so no log ever holds one.

use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, Expr, Password, RoleOption, Statement, Value,
};

const MASK: &str = "********";

fn masked() -> Password {
    Password::Password(Expr::Value(Value::SingleQuotedString(MASK.into()).into()))
}

/// `text` as it may be shown: as written when it holds no password, else its statements
/// with passwords masked, joined by `; `. Text that does not parse is withheld: it ran once,
/// so it parsed then, and unparsed it could hold a password.
pub fn masked_statements(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let Ok(statements) = crate::sql::parse_sql(text) else {
        return "(statement withheld: it does not parse)".to_string();
    };
    let masked: Vec<String> = statements.iter().map(masked_text).collect();
    if masked
        .iter()
        .zip(&statements)
        .all(|(m, s)| *m == s.to_string())
    {
        return text.to_string();
    }
    masked.join("; ")
}

/// The statement's text, passwords masked.
pub fn masked_text(statement: &Statement) -> String {
    match statement {
        Statement::CreateRole(create) if create.password.is_some() => {
            let mut create = create.clone();
            create.password = Some(masked());
            Statement::CreateRole(create).to_string()
        }
        Statement::AlterRole {
            name,
            operation: AlterRoleOperation::WithOptions { options },
        } => {
            let options = options
                .iter()
                .map(|o| match o {
                    RoleOption::Password(_) => RoleOption::Password(masked()),
                    other => other.clone(),
                })
                .collect();
            Statement::AlterRole {
                name: name.clone(),
                operation: AlterRoleOperation::WithOptions { options },
            }
            .to_string()
        }
        Statement::AlterUser(alter) if alter.password.is_some() => {
            let mut alter = alter.clone();
            if let Some(password) = &mut alter.password {
                password.password = Some(MASK.to_string());
            }
            Statement::AlterUser(alter).to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_sql;

    #[test]
    fn passwords_never_show() {
        for sql in [
            "CREATE USER app IDENTIFIED BY 'topsecret'",
            "CREATE ROLE app LOGIN PASSWORD 'topsecret'",
            "ALTER USER app WITH PASSWORD 'topsecret'",
            "ALTER ROLE app PASSWORD 'topsecret'",
            "SET PASSWORD FOR app = 'topsecret'",
        ] {
            let statement = &parse_sql(sql).unwrap()[0];
            let text = masked_text(statement);
            assert!(
                !text.contains("topsecret") && text.contains(MASK),
                "{sql} -> {text}"
            );
        }
        let select = &parse_sql("SELECT 'topsecret'").unwrap()[0];
        assert_eq!(masked_text(select), "SELECT 'topsecret'");
    }

    #[test]
    fn text_shows_as_written_unless_it_holds_a_password() {
        assert_eq!(masked_statements("select  1 ;"), "select  1 ;");
        assert_eq!(
            masked_statements("SELECT 1; ALTER USER app PASSWORD 'topsecret'"),
            "SELECT 1; ALTER USER app PASSWORD '********'"
        );
        assert!(!masked_statements("ALTER USER app PASSWORD 'topsecret").contains("topsecret"));
        assert_eq!(masked_statements(""), "");
    }
}
