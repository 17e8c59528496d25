//! GridDB's backup as a statement: `BACKUP DATABASE TO 'name' [MODE mode]`, read as the
//! procedure call `CALL kura_backup('name', 'mode')` (which clients may send as well), and
//! the recognition of that call.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The procedure that takes a backup.
pub const BACKUP_PROCEDURE: &str = "kura_backup";

/// `BACKUP DATABASE TO ...`, or `None` (nothing consumed) for any other statement.
pub fn parse_backup(
    parser: &mut Parser,
    dialect: &dyn Dialect,
) -> Option<Result<Statement, ParserError>> {
    match &parser.peek_token().token {
        Token::Word(word)
            if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("BACKUP") => {}
        _ => return None,
    }
    parser.next_token();
    Some(backup(parser, dialect))
}

fn backup(parser: &mut Parser, dialect: &dyn Dialect) -> Result<Statement, ParserError> {
    parser.expect_keyword(Keyword::DATABASE)?;
    parser.expect_keyword(Keyword::TO)?;
    let name = parser.parse_literal_string()?;
    let mode = match &parser.peek_token().token {
        Token::Word(word) if word.value.eq_ignore_ascii_case("MODE") => {
            parser.next_token();
            match parser.next_token().token {
                Token::Word(word) => word.value,
                Token::SingleQuotedString(text) => text,
                other => {
                    return Err(ParserError::ParserError(format!(
                        "Expected: a backup mode after MODE, found: {other}"
                    )));
                }
            }
        }
        _ => "full".to_string(),
    };
    let quote = |text: &str| text.replace('\'', "''");
    let call = format!(
        "CALL {BACKUP_PROCEDURE}('{}', '{}')",
        quote(&name),
        quote(&mode)
    );
    Parser::new(dialect).try_with_sql(&call)?.parse_statement()
}

/// The function of `CALL kura_backup(...)`.
pub fn backup_call(statement: &Statement) -> Option<&datafusion::sql::sqlparser::ast::Function> {
    super::dialect::procedure_call(statement, BACKUP_PROCEDURE)
}

#[cfg(test)]
mod tests {
    use crate::sql::dialect::parse_sql;

    #[test]
    fn backup_statements_become_calls() {
        for (sql, expected) in [
            ("BACKUP DATABASE TO 'b1'", "CALL kura_backup('b1', 'full')"),
            (
                "backup database to 'b1' mode incremental",
                "CALL kura_backup('b1', 'incremental')",
            ),
            (
                "BACKUP DATABASE TO 'it''s' MODE 'auto'",
                "CALL kura_backup('it''s', 'auto')",
            ),
        ] {
            let statement = parse_sql(sql).unwrap().remove(0);
            assert_eq!(statement.to_string(), expected);
            assert!(super::backup_call(&statement).is_some());
        }
        assert!(parse_sql("BACKUP TABLE x").is_err());
        let other = parse_sql("CALL other_proc()").unwrap().remove(0);
        assert!(super::backup_call(&other).is_none());
    }
}
