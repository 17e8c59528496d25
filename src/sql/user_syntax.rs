//! The user statements sqlparser does not read the way GridDB and PostgreSQL write them,
//! carried in PostgreSQL's nodes:
//!
//! - `CREATE USER name [WITH] [IDENTIFIED BY 'pw' | [ENCRYPTED] PASSWORD 'pw' | LOGIN]...`
//!   → `CREATE ROLE name LOGIN PASSWORD 'pw'` (in PostgreSQL, CREATE USER is exactly that);
//! - `SET PASSWORD [FOR name] = 'pw'` → `ALTER ROLE name WITH PASSWORD 'pw'`, the session's own
//!   user (`CURRENT_USER`) without FOR.

use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, Ident, ObjectName, Password, RoleOption, Statement, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The name standing for the session's own user.
pub const CURRENT_USER: &str = "CURRENT_USER";

fn password(parser: &mut Parser) -> Result<Password, ParserError> {
    let text = parser.parse_literal_string()?;
    Ok(Password::Password(Expr::Value(
        Value::SingleQuotedString(text).into(),
    )))
}

/// `CREATE USER ...`, or `None` (nothing consumed) for any other statement.
pub fn parse_create_user(parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
    if !parser.parse_keywords(&[Keyword::CREATE, Keyword::USER]) {
        return None;
    }
    Some(create_user(parser))
}

fn create_user(parser: &mut Parser) -> Result<Statement, ParserError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_identifier()?;
    let _ = parser.parse_keyword(Keyword::WITH);
    let mut secret = None;
    loop {
        if parser.parse_keywords(&[Keyword::IDENTIFIED, Keyword::BY]) {
            secret = Some(password(parser)?);
        } else if parser.parse_keyword(Keyword::ENCRYPTED) {
            parser.expect_keyword(Keyword::PASSWORD)?;
            secret = Some(password(parser)?);
        } else if parser.parse_keyword(Keyword::PASSWORD) {
            secret = Some(password(parser)?);
        } else if parser.parse_keyword(Keyword::LOGIN) {
        } else {
            break;
        }
    }
    Ok(Statement::CreateRole(CreateRole {
        names: vec![ObjectName::from(vec![name])],
        if_not_exists,
        login: Some(true),
        inherit: None,
        bypassrls: None,
        password: secret,
        superuser: None,
        create_db: None,
        create_role: None,
        replication: None,
        connection_limit: None,
        valid_until: None,
        in_role: Vec::new(),
        in_group: Vec::new(),
        role: Vec::new(),
        user: Vec::new(),
        admin: Vec::new(),
        authorization_owner: None,
    }))
}

/// `SET PASSWORD ...`, or `None` (nothing consumed).
pub fn parse_set_password(parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
    if !parser.parse_keywords(&[Keyword::SET, Keyword::PASSWORD]) {
        return None;
    }
    Some(set_password(parser))
}

fn set_password(parser: &mut Parser) -> Result<Statement, ParserError> {
    let name = if parser.parse_keyword(Keyword::FOR) {
        parser.parse_identifier()?
    } else {
        Ident::new(CURRENT_USER)
    };
    parser.expect_token(&Token::Eq)?;
    let secret = password(parser)?;
    Ok(Statement::AlterRole {
        name,
        operation: AlterRoleOperation::WithOptions {
            options: vec![RoleOption::Password(secret)],
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::sql::parse_sql;

    #[test]
    fn griddb_and_postgres_user_statements_read_as_roles() {
        let cases = [
            (
                "CREATE USER app IDENTIFIED BY 'x'",
                "CREATE ROLE app LOGIN PASSWORD 'x'",
            ),
            (
                "CREATE USER app WITH PASSWORD 'x'",
                "CREATE ROLE app LOGIN PASSWORD 'x'",
            ),
            (
                "create user App encrypted password 'x' login",
                "CREATE ROLE App LOGIN PASSWORD 'x'",
            ),
            ("CREATE USER app", "CREATE ROLE app LOGIN"),
            (
                "SET PASSWORD = 'n'",
                "ALTER ROLE CURRENT_USER WITH PASSWORD 'n'",
            ),
            (
                "SET PASSWORD FOR app = 'n'",
                "ALTER ROLE app WITH PASSWORD 'n'",
            ),
        ];
        for (sql, expected) in cases {
            let parsed = parse_sql(sql).unwrap();
            assert_eq!(parsed[0].to_string(), expected, "{sql}");
        }
        assert!(parse_sql("CREATE USER app IDENTIFIED BY").is_err());
        assert!(parse_sql("SET PASSWORD FOR = 'x'").is_err());
        assert_eq!(
            parse_sql("SET search_path = public").unwrap()[0].to_string(),
            "SET search_path = public"
        );
    }
}
