//! PostgreSQL's maintenance statements `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE]
//! [table [(columns)], ...]` and `ANALYZE [VERBOSE] [table [(columns)], ...]` (pgbench -i runs
//! both), read as the procedure call `CALL kura_vacuum('vacuum' | 'analyze', 'table', ...)`
//! with each table's folded name. sqlparser reads Redshift's VACUUM instead.
//!
//! What they do in Kura: VACUUM runs a garbage-collection pass now (the pass `gc.rs` runs
//! every `/dataStore/gcInterval`, over every table); ANALYZE has nothing to gather, because
//! the planner's statistics (row counts) are read from the data as each statement plans.
//! Both check that the named tables exist.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// The procedure VACUUM and ANALYZE become.
pub const VACUUM_PROCEDURE: &str = "kura_vacuum";

fn next_word_is(parser: &Parser, word: &str) -> bool {
    matches!(&parser.peek_token().token, Token::Word(w)
        if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// `VACUUM ...` or `ANALYZE ...`, or `None` (nothing consumed) for any other statement.
pub fn parse_vacuum(
    parser: &mut Parser,
    dialect: &dyn Dialect,
) -> Option<Result<Statement, ParserError>> {
    let command = if next_word_is(parser, "VACUUM") {
        "vacuum"
    } else if next_word_is(parser, "ANALYZE") || next_word_is(parser, "ANALYSE") {
        "analyze"
    } else {
        return None;
    };
    parser.next_token();
    Some(vacuum(parser, dialect, command))
}

fn vacuum(
    parser: &mut Parser,
    dialect: &dyn Dialect,
    command: &str,
) -> Result<Statement, ParserError> {
    // `(option [value], ...)`: PostgreSQL's options change how the work is done, not what.
    if parser.consume_token(&Token::LParen) {
        let mut depth = 1;
        while depth > 0 {
            match parser.next_token().token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::EOF => return parser.expected(")", parser.peek_token()),
                _ => {}
            }
        }
    }
    while ["FULL", "FREEZE", "VERBOSE", "ANALYZE", "ANALYSE"]
        .iter()
        .any(|w| next_word_is(parser, w))
    {
        parser.next_token();
    }
    let mut tables = Vec::new();
    if !matches!(parser.peek_token().token, Token::EOF | Token::SemiColon) {
        loop {
            let name = parser.parse_object_name(false)?;
            let name = crate::sql::names::relation_name(&name)
                .map_err(|e| ParserError::ParserError(e.message))?;
            if parser.consume_token(&Token::LParen) {
                parser.parse_comma_separated(|p| p.parse_identifier())?;
                parser.expect_token(&Token::RParen)?;
            }
            tables.push(name);
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
    }
    let quote = |text: &str| format!("'{}'", text.replace('\'', "''"));
    let mut args = vec![quote(command)];
    args.extend(tables.iter().map(|t| quote(t)));
    let call = format!("CALL {VACUUM_PROCEDURE}({})", args.join(", "));
    Parser::new(dialect).try_with_sql(&call)?.parse_statement()
}

/// The function of `CALL kura_vacuum(...)`; its text arguments are the command (`vacuum` or
/// `analyze`) and the tables.
pub fn vacuum_call(statement: &Statement) -> Option<&datafusion::sql::sqlparser::ast::Function> {
    super::dialect::procedure_call(statement, VACUUM_PROCEDURE)
}

#[cfg(test)]
mod tests {
    use crate::sql::dialect::parse_sql;

    #[test]
    fn vacuum_and_analyze_become_calls() {
        for (sql, command, tables) in [
            ("VACUUM", "vacuum", vec![]),
            (
                "vacuum analyze pgbench_branches",
                "vacuum",
                vec!["pgbench_branches"],
            ),
            (
                "VACUUM (VERBOSE, INDEX_CLEANUP off) FULL \"Mixed\", t (a, b)",
                "vacuum",
                vec!["Mixed", "t"],
            ),
            ("ANALYZE", "analyze", vec![]),
            ("analyse verbose T1", "analyze", vec!["t1"]),
        ] {
            let statement = parse_sql(sql).unwrap().remove(0);
            let call = super::vacuum_call(&statement).expect(sql);
            let args = crate::session::functions::call_text_args(call, None).unwrap();
            let c = args[0].clone().unwrap();
            let t: Vec<String> = args[1..].iter().flatten().cloned().collect();
            assert_eq!(
                (c.as_str(), t),
                (command, tables.iter().map(|s| s.to_string()).collect())
            );
        }
        assert!(parse_sql("VACUUM (VERBOSE").is_err());
        assert!(parse_sql("VACUUM t,").is_err());
    }
}
