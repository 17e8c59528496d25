//! Kura's SQL dialect: PostgreSQL's grammar, extended through this type with GridDB's syntax
//! (`INSERT OR REPLACE` is already part of sqlparser's INSERT grammar).
//!
//! Invariants: statements are only ever parsed here, never rewritten as strings. The dialect
//! reports PostgreSQL's type id, so every PostgreSQL-specific rule in the parser applies; each
//! PostgreSQL dialect method is delegated so nothing silently falls back to generic rules.

use std::any::TypeId;

use datafusion::sql::sqlparser::ast::{FlushType, SqliteOnConflict, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{KuraError, Result};

/// Most nested expressions a statement may have before parsing is refused.
const RECURSION_LIMIT: usize = 200;

/// The statement `CHECKPOINT` parses to.
pub fn checkpoint_statement() -> Statement {
    Statement::Flush {
        object_type: FlushType::Tables,
        location: None,
        channel: None,
        read_lock: false,
        export: false,
        tables: Vec::new(),
    }
}

/// True for the statement `CHECKPOINT` parses to.
pub fn is_checkpoint(statement: &Statement) -> bool {
    *statement == checkpoint_statement()
}

/// The function of `CALL procedure(...)` when `statement` calls `procedure` (one of Kura's
/// procedures, which statements such as BACKUP and VACUUM are read as).
pub fn procedure_call<'a>(
    statement: &'a Statement,
    procedure: &str,
) -> Option<&'a datafusion::sql::sqlparser::ast::Function> {
    let Statement::Call(function) = statement else {
        return None;
    };
    let [datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(name)] = &function.name.0[..]
    else {
        return None;
    };
    name.value
        .eq_ignore_ascii_case(procedure)
        .then_some(function)
}

/// The `INTO` target marking a FETCH as PostgreSQL's `MOVE` (same grammar, no rows sent);
/// sqlparser has no MOVE node, and SQL-level `FETCH ... INTO` does not exist in PostgreSQL.
const MOVE_MARKER: &str = "__kura_move";

/// True for the statement `MOVE ...` parses to.
pub fn is_move(statement: &Statement) -> bool {
    matches!(statement, Statement::Fetch { into: Some(into), .. } if into.to_string() == MOVE_MARKER)
}

#[derive(Debug, Default)]
pub struct KuraDialect {
    pg: PostgreSqlDialect,
}

impl Dialect for KuraDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.pg.identifier_quote_style(identifier)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.pg.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.pg.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.pg.is_identifier_part(ch)
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.pg.is_reserved_for_identifier(kw)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.pg.is_custom_operator_part(ch)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<std::result::Result<u8, ParserError>> {
        self.pg.get_next_precedence(parser)
    }

    /// GridDB's `RANGE(key) EVERY (...) [FILL (...)]` in GROUP BY (`range_group.rs`).
    fn parse_prefix(
        &self,
        parser: &mut Parser,
    ) -> Option<std::result::Result<datafusion::sql::sqlparser::ast::Expr, ParserError>> {
        if let Some(expr) = super::range_group::parse_range_group(parser) {
            return Some(expr);
        }
        if let Some(expr) = super::time_syntax::parse_time_function(parser) {
            return Some(expr);
        }
        self.pg.parse_prefix(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.pg.prec_value(prec)
    }

    /// GridDB's table clauses (`table_syntax.rs`); CREATE USER and SET PASSWORD
    /// (`user_syntax.rs`); `BACKUP DATABASE TO 'name'` (`backup_syntax.rs`); `ALTER SYSTEM` (`system_syntax.rs`); `REPLACE INTO t ...`, the same as
    /// `INSERT OR REPLACE INTO t ...`; PostgreSQL's `FETCH` and `MOVE` (`cursor_syntax.rs`); and
    /// PostgreSQL's `CHECKPOINT`, which sqlparser has no node for: it becomes the node of
    /// MySQL's `FLUSH TABLES` (write every table to disk), which PostgreSQL does not have.
    fn parse_statement(
        &self,
        parser: &mut Parser,
    ) -> Option<std::result::Result<Statement, ParserError>> {
        if let Token::Word(word) = &parser.peek_token().token
            && word.quote_style.is_none()
            && word.value.eq_ignore_ascii_case("CHECKPOINT")
        {
            parser.next_token();
            return Some(Ok(checkpoint_statement()));
        }
        if let Some(statement) = super::cursor_syntax::parse_fetch_or_move(parser, MOVE_MARKER) {
            return Some(statement);
        }
        if let Some(statement) = super::table_syntax::parse_create_table(parser) {
            return Some(statement);
        }
        if let Some(statement) = super::table_syntax::parse_drop_partition(parser) {
            return Some(statement);
        }
        if let Some(statement) = super::user_syntax::parse_create_user(parser) {
            return Some(statement);
        }
        if let Some(statement) = super::user_syntax::parse_set_password(parser) {
            return Some(statement);
        }
        if let Some(statement) = super::backup_syntax::parse_backup(parser, self) {
            return Some(statement);
        }
        if let Some(statement) = super::vacuum_syntax::parse_vacuum(parser, self) {
            return Some(statement);
        }
        if let Some(statement) = super::system_syntax::parse_alter_system(parser) {
            return Some(statement);
        }
        if !parser.peek_keyword(Keyword::REPLACE) {
            return None;
        }
        let token = parser.next_token();
        Some(parser.parse_insert(token).map(|statement| match statement {
            Statement::Insert(mut insert) => {
                insert.or = Some(SqliteOnConflict::Replace);
                Statement::Insert(insert)
            }
            other => other,
        }))
    }

    fn supports_unicode_string_literal(&self) -> bool {
        self.pg.supports_unicode_string_literal()
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        self.pg.supports_filter_during_aggregation()
    }

    fn supports_group_by_expr(&self) -> bool {
        self.pg.supports_group_by_expr()
    }

    fn allow_extract_custom(&self) -> bool {
        self.pg.allow_extract_custom()
    }

    fn allow_extract_single_quotes(&self) -> bool {
        self.pg.allow_extract_single_quotes()
    }

    fn supports_create_index_with_clause(&self) -> bool {
        self.pg.supports_create_index_with_clause()
    }

    fn supports_explain_with_utility_options(&self) -> bool {
        self.pg.supports_explain_with_utility_options()
    }

    fn supports_listen_notify(&self) -> bool {
        self.pg.supports_listen_notify()
    }

    fn supports_factorial_operator(&self) -> bool {
        self.pg.supports_factorial_operator()
    }

    fn supports_bitwise_shift_operators(&self) -> bool {
        self.pg.supports_bitwise_shift_operators()
    }

    fn supports_comment_on(&self) -> bool {
        self.pg.supports_comment_on()
    }

    fn supports_load_extension(&self) -> bool {
        self.pg.supports_load_extension()
    }

    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        self.pg.supports_named_fn_args_with_colon_operator()
    }

    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        self.pg.supports_named_fn_args_with_expr_name()
    }

    fn supports_empty_projections(&self) -> bool {
        self.pg.supports_empty_projections()
    }

    fn supports_nested_comments(&self) -> bool {
        self.pg.supports_nested_comments()
    }

    fn supports_string_escape_constant(&self) -> bool {
        self.pg.supports_string_escape_constant()
    }

    fn supports_numeric_literal_underscores(&self) -> bool {
        self.pg.supports_numeric_literal_underscores()
    }

    fn supports_array_typedef_with_brackets(&self) -> bool {
        self.pg.supports_array_typedef_with_brackets()
    }

    fn supports_geometric_types(&self) -> bool {
        self.pg.supports_geometric_types()
    }

    fn supports_set_names(&self) -> bool {
        self.pg.supports_set_names()
    }

    fn supports_alter_column_type_using(&self) -> bool {
        self.pg.supports_alter_column_type_using()
    }

    fn supports_notnull_operator(&self) -> bool {
        self.pg.supports_notnull_operator()
    }

    fn supports_interval_options(&self) -> bool {
        self.pg.supports_interval_options()
    }

    fn supports_insert_table_alias(&self) -> bool {
        self.pg.supports_insert_table_alias()
    }

    fn supports_create_table_like_parenthesized(&self) -> bool {
        self.pg.supports_create_table_like_parenthesized()
    }

    fn supports_select_wildcard_with_alias(&self) -> bool {
        self.pg.supports_select_wildcard_with_alias()
    }

    fn supports_comma_separated_trim(&self) -> bool {
        self.pg.supports_comma_separated_trim()
    }

    fn supports_xml_expressions(&self) -> bool {
        self.pg.supports_xml_expressions()
    }

    fn supports_comment_optimizer_hint(&self) -> bool {
        self.pg.supports_comment_optimizer_hint()
    }
}

/// Parses one or more `;`-separated statements.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>> {
    let dialect = KuraDialect::default();
    let parser = Parser::new(&dialect).with_recursion_limit(RECURSION_LIMIT);
    let parser = if super::copy_syntax::may_hold_copy(sql) {
        let tokens = Tokenizer::new(&dialect, sql)
            .with_unescape(true)
            .tokenize_with_location()
            .map_err(ParserError::from)?;
        parser.with_tokens_with_locations(super::copy_syntax::normalize_copy_booleans(tokens))
    } else {
        parser.try_with_sql(sql)?
    };
    let mut parser = parser;
    parser.parse_statements().map_err(KuraError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg_and_griddb_forms() {
        let stmts = parse_sql(
            "INSERT OR REPLACE INTO t VALUES (1); SELECT $1::int; REPLACE INTO t VALUES (2)",
        )
        .unwrap();
        assert_eq!(stmts.len(), 3);
        assert!(
            matches!(&stmts[2], Statement::Insert(i) if i.or == Some(SqliteOnConflict::Replace))
        );
        assert!(parse_sql("SELEC 1").is_err());
    }

    #[test]
    fn plain_create_tables_after_whitespace_and_other_statements_parse() {
        let stmts = parse_sql(
            "\n    CREATE TABLE t1 (id integer PRIMARY KEY);\n    DROP TABLE IF EXISTS t; CREATE TABLE t2 (id int)",
        )
        .unwrap();
        assert_eq!(stmts.len(), 3);
    }
}
