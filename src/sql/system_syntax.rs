//! PostgreSQL's `ALTER SYSTEM SET name { = | TO } { value | DEFAULT }` and `ALTER SYSTEM
//! RESET name`, read as `SET GLOBAL name = value` (DEFAULT for a reset), which the session
//! runs as an online change of a server setting (`config/live.rs`).

use datafusion::sql::sqlparser::ast::{ContextModifier, Expr, Ident, ObjectName, Set, Statement};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// `ALTER SYSTEM ...`, or `None` (nothing consumed).
pub fn parse_alter_system(parser: &mut Parser) -> Option<Result<Statement, ParserError>> {
    if !parser.parse_keywords(&[Keyword::ALTER, Keyword::SYSTEM]) {
        return None;
    }
    Some(alter_system(parser))
}

fn default_value() -> Expr {
    Expr::Identifier(Ident::new("DEFAULT"))
}

fn alter_system(parser: &mut Parser) -> Result<Statement, ParserError> {
    let (variable, value) = if parser.parse_keyword(Keyword::RESET) {
        (parser.parse_object_name(false)?, default_value())
    } else {
        parser.expect_keyword(Keyword::SET)?;
        let variable = parser.parse_object_name(false)?;
        if !parser.consume_token(&Token::Eq) {
            parser.expect_keyword(Keyword::TO)?;
        }
        let value = if parser.parse_keyword(Keyword::DEFAULT) {
            default_value()
        } else {
            parser.parse_expr()?
        };
        (variable, value)
    };
    Ok(Statement::Set(Set::SingleAssignment {
        scope: Some(ContextModifier::Global),
        hivevar: false,
        variable,
        values: vec![value],
    }))
}

/// The setting and value of a server-setting change (`None`: back to the startup value).
pub fn system_change(statement: &Statement) -> Option<(&ObjectName, &Expr)> {
    match statement {
        Statement::Set(Set::SingleAssignment {
            scope: Some(ContextModifier::Global),
            variable,
            values,
            ..
        }) if values.len() == 1 => Some((variable, &values[0])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::sql::dialect::parse_sql;

    #[test]
    fn alter_system_becomes_a_global_set() {
        for (sql, expected) in [
            (
                "ALTER SYSTEM SET \"/dataStore/storeMemoryLimit\" = '2GB'",
                "SET GLOBAL \"/dataStore/storeMemoryLimit\" = '2GB'",
            ),
            (
                "alter system set sql.traceLimitQuerySize to 500",
                "SET GLOBAL sql.traceLimitQuerySize = 500",
            ),
            (
                "ALTER SYSTEM RESET \"/sql/traceLimitQuerySize\"",
                "SET GLOBAL \"/sql/traceLimitQuerySize\" = DEFAULT",
            ),
        ] {
            let statement = parse_sql(sql).unwrap().remove(0);
            assert_eq!(statement.to_string(), expected);
            assert!(super::system_change(&statement).is_some());
        }
        assert!(parse_sql("ALTER SYSTEM FLUSH").is_err());
    }
}
