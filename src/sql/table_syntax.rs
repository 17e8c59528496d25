//! GridDB's table syntax, parsed as part of [`KuraDialect`](super::dialect::KuraDialect):
//!
//! ```text
//! CREATE TABLE [IF NOT EXISTS] t (columns) [USING TIMESERIES] [WITH (options)]
//!     [PARTITION BY HASH (c) PARTITIONS m
//!     | PARTITION BY {RANGE | INTERVAL} (c) EVERY (n [, unit])
//!         [SUBPARTITION BY HASH (c2) SUBPARTITIONS m]]
//! ALTER TABLE t DROP PARTITION FOR (value)
//! ```
//!
//! sqlparser has no nodes for these clauses, so they are carried in the standard
//! `CreateTable` fields that mean the same elsewhere: `USING TIMESERIES` is Spark's
//! `USING <format>` (`hive_formats.storage`), `WITH (...)` is PostgreSQL's storage options,
//! and the partitioning is a [`PartitionClause`] encoded as a function call in `partition_by`
//! (`HASH(c, m)` or `RANGE(c, n, unit, c2, m)`), which [`PartitionClause::from_expr`] reads
//! back. `DROP PARTITION FOR (v)` becomes Hive's `DROP PARTITION (v)`.
//!
//! Invariant: a CREATE TABLE is taken over here only when it uses a GridDB clause;
//! everything else is left to sqlparser's PostgreSQL grammar, untouched.

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, CreateTableOptions, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, HiveFormat, HiveIOFormat, Ident, Statement, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::template::function_call;
use crate::error::{KuraError, Result};

/// The storage format name `USING TIMESERIES` is recorded as.
pub const TIMESERIES: &str = "TIMESERIES";

/// A parsed `PARTITION BY` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionClause {
    Hash {
        column: Ident,
        count: u64,
    },
    Range {
        column: Ident,
        width: i64,
        unit: Option<String>,
        subpartition: Option<(Ident, u64)>,
    },
}

type Parsed<T> = std::result::Result<T, ParserError>;

/// Consumes the unquoted word `word` (any case) if it comes next.
fn parse_word(parser: &mut Parser, word: &str) -> bool {
    if peek_word(parser, 0, word) {
        parser.next_token();
        return true;
    }
    false
}

fn peek_word(parser: &Parser, n: usize, word: &str) -> bool {
    matches!(&parser.peek_nth_token_ref(n).token,
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn expect_word(parser: &mut Parser, word: &str) -> Parsed<()> {
    if parse_word(parser, word) {
        return Ok(());
    }
    parser.expected(word, parser.peek_token())
}

/// Moves the parser back to token position `start`. `prev_token` steps back over
/// whitespace too, so the target is the first token at or after `start` that is not
/// whitespace: stepping back from there would run off the start of a statement that follows
/// whitespace (a panic in sqlparser).
fn rewind(parser: &mut Parser, start: usize) {
    let mut target = start;
    while target < parser.index() && matches!(parser.token_at(target).token, Token::Whitespace(_)) {
        target += 1;
    }
    while parser.index() > target {
        parser.prev_token();
    }
}

/// `key` or `(key)`.
fn parse_key(parser: &mut Parser) -> Parsed<Ident> {
    if parser.consume_token(&Token::LParen) {
        let ident = parser.parse_identifier()?;
        parser.expect_token(&Token::RParen)?;
        return Ok(ident);
    }
    parser.parse_identifier()
}

fn parse_signed(parser: &mut Parser) -> Parsed<i64> {
    let negative = parser.consume_token(&Token::Minus);
    let value = parser.parse_literal_uint()?;
    let value = i64::try_from(value)
        .map_err(|_| ParserError::ParserError(format!("{value} is out of range")))?;
    Ok(if negative { -value } else { value })
}

impl PartitionClause {
    fn parse(parser: &mut Parser) -> Parsed<PartitionClause> {
        if parser.parse_keyword(Keyword::HASH) {
            let column = parse_key(parser)?;
            expect_word(parser, "PARTITIONS")?;
            let count = parser.parse_literal_uint()?;
            return Ok(PartitionClause::Hash { column, count });
        }
        if !parser.parse_keyword(Keyword::RANGE) && !parser.parse_keyword(Keyword::INTERVAL) {
            return parser.expected("HASH, RANGE or INTERVAL", parser.peek_token());
        }
        let column = parse_key(parser)?;
        expect_word(parser, "EVERY")?;
        parser.expect_token(&Token::LParen)?;
        let width = parse_signed(parser)?;
        let unit = if parser.consume_token(&Token::Comma) {
            Some(parser.parse_identifier()?.value.to_ascii_uppercase())
        } else {
            None
        };
        parser.expect_token(&Token::RParen)?;
        let subpartition = if parse_word(parser, "SUBPARTITION") {
            parser.expect_keywords(&[Keyword::BY, Keyword::HASH])?;
            let column = parse_key(parser)?;
            expect_word(parser, "SUBPARTITIONS")?;
            Some((column, parser.parse_literal_uint()?))
        } else {
            None
        };
        Ok(PartitionClause::Range {
            column,
            width,
            unit,
            subpartition,
        })
    }

    /// The clause as the function call it is carried as.
    pub fn to_expr(&self) -> Expr {
        let number = |n: String| Expr::value(Value::Number(n, false));
        let (name, args) = match self {
            PartitionClause::Hash { column, count } => (
                "HASH",
                vec![Expr::Identifier(column.clone()), number(count.to_string())],
            ),
            PartitionClause::Range {
                column,
                width,
                unit,
                subpartition,
            } => {
                let mut args = vec![
                    Expr::Identifier(column.clone()),
                    number(width.to_string()),
                    unit.as_ref().map_or(Expr::value(Value::Null), |u| {
                        Expr::value(Value::SingleQuotedString(u.clone()))
                    }),
                ];
                if let Some((column, count)) = subpartition {
                    args.push(Expr::Identifier(column.clone()));
                    args.push(number(count.to_string()));
                }
                ("RANGE", args)
            }
        };
        function_call(name, args)
    }

    /// Reads back what [`to_expr`](Self::to_expr) wrote; any other expression (PostgreSQL's
    /// declarative partitioning, say) is not supported.
    pub fn from_expr(expr: &Expr) -> Result<PartitionClause> {
        let unsupported = || {
            KuraError::unsupported(format!(
                "PARTITION BY {expr} is not supported; use GridDB's PARTITION BY HASH (c) PARTITIONS n or PARTITION BY RANGE (c) EVERY (n[, unit])"
            ))
        };
        let Expr::Function(function) = expr else {
            return Err(unsupported());
        };
        let FunctionArguments::List(list) = &function.args else {
            return Err(unsupported());
        };
        let args: Vec<&Expr> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(unsupported)?;
        let ident = |e: &Expr| match e {
            Expr::Identifier(i) => Some(i.clone()),
            _ => None,
        };
        let number = |e: &Expr| match e {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<i64>().ok(),
                _ => None,
            },
            _ => None,
        };
        let name = function.name.to_string().to_ascii_uppercase();
        let clause = match (name.as_str(), args.as_slice()) {
            ("HASH", [column, count]) => PartitionClause::Hash {
                column: ident(column).ok_or_else(unsupported)?,
                count: number(count)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(unsupported)?,
            },
            ("RANGE", [column, width, unit, rest @ ..]) => PartitionClause::Range {
                column: ident(column).ok_or_else(unsupported)?,
                width: number(width).ok_or_else(unsupported)?,
                unit: match unit {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(u) => Some(u.clone()),
                        Value::Null => None,
                        _ => return Err(unsupported()),
                    },
                    _ => return Err(unsupported()),
                },
                subpartition: match rest {
                    [] => None,
                    [column, count] => Some((
                        ident(column).ok_or_else(unsupported)?,
                        number(count)
                            .and_then(|n| u64::try_from(n).ok())
                            .ok_or_else(unsupported)?,
                    )),
                    _ => return Err(unsupported()),
                },
            },
            _ => return Err(unsupported()),
        };
        Ok(clause)
    }
}

/// True when the statement after `CREATE TABLE` ends here.
fn at_statement_end(parser: &Parser) -> bool {
    matches!(parser.peek_token_ref().token, Token::EOF | Token::SemiColon)
}

/// `CREATE TABLE` with GridDB clauses; `None` (parser untouched) for any other CREATE.
pub fn parse_create_table(parser: &mut Parser) -> Option<Parsed<Statement>> {
    if !(parser.peek_keyword(Keyword::CREATE)
        && matches!(&parser.peek_nth_token_ref(1).token, Token::Word(w) if w.keyword == Keyword::TABLE))
    {
        return None;
    }
    let start = parser.index();
    match try_create_table(parser) {
        Ok(Some(statement)) => Some(Ok(statement)),
        Ok(None) => {
            rewind(parser, start);
            None
        }
        Err(e) => Some(Err(e)),
    }
}

fn try_create_table(parser: &mut Parser) -> Parsed<Option<Statement>> {
    parser.expect_keywords(&[Keyword::CREATE, Keyword::TABLE])?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    if parser.peek_token_ref().token != Token::LParen {
        return Ok(None);
    }
    let (columns, constraints) = parser.parse_columns()?;
    let timeseries = if parser.parse_keyword(Keyword::USING) {
        expect_word(parser, TIMESERIES)?;
        true
    } else {
        false
    };
    let options = parser.parse_options(Keyword::WITH)?;
    let partition = if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        Some(PartitionClause::parse(parser)?)
    } else {
        None
    };
    if !timeseries && partition.is_none() {
        // Plain PostgreSQL CREATE TABLE: sqlparser's grammar handles it.
        return Ok(None);
    }
    if !at_statement_end(parser) {
        return parser.expected("end of CREATE TABLE", parser.peek_token());
    }
    let builder = CreateTableBuilder::new(name)
        .if_not_exists(if_not_exists)
        .columns(columns)
        .constraints(constraints)
        .hive_formats(timeseries.then(|| HiveFormat {
            row_format: None,
            serde_properties: None,
            storage: Some(HiveIOFormat::Using {
                format: Ident::new(TIMESERIES),
            }),
            location: None,
        }))
        .table_options(if options.is_empty() {
            CreateTableOptions::None
        } else {
            CreateTableOptions::With(options)
        })
        .partition_by(partition.map(|p| Box::new(p.to_expr())));
    Ok(Some(Statement::CreateTable(builder.build())))
}

/// `ALTER TABLE t DROP PARTITION FOR (value)`; `None` (parser untouched) for other ALTERs.
pub fn parse_drop_partition(parser: &mut Parser) -> Option<Parsed<Statement>> {
    if !(parser.peek_keyword(Keyword::ALTER)
        && matches!(&parser.peek_nth_token_ref(1).token, Token::Word(w) if w.keyword == Keyword::TABLE))
    {
        return None;
    }
    let start = parser.index();
    match try_drop_partition(parser) {
        Ok(Some(statement)) => Some(Ok(statement)),
        Ok(None) => {
            rewind(parser, start);
            None
        }
        Err(e) => Some(Err(e)),
    }
}

fn try_drop_partition(parser: &mut Parser) -> Parsed<Option<Statement>> {
    parser.expect_keywords(&[Keyword::ALTER, Keyword::TABLE])?;
    let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    if !parser.parse_keywords(&[Keyword::DROP, Keyword::PARTITION, Keyword::FOR]) {
        return Ok(None);
    }
    parser.expect_token(&Token::LParen)?;
    let value = parser.parse_expr()?;
    parser.expect_token(&Token::RParen)?;
    Ok(Some(Statement::AlterTable(AlterTable {
        name,
        if_exists,
        only: false,
        operations: vec![AlterTableOperation::DropPartitions {
            partitions: vec![value],
            if_exists: false,
        }],
        location: None,
        on_cluster: None,
        table_type: None,
        end_token: AttachedToken::empty(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::dialect::parse_sql;

    fn create(sql: &str) -> datafusion::sql::sqlparser::ast::CreateTable {
        match parse_sql(sql).unwrap().remove(0) {
            Statement::CreateTable(c) => c,
            other => panic!("not a CREATE TABLE: {other}"),
        }
    }

    #[test]
    fn griddb_clauses_round_trip_through_the_ast() {
        let c = create(
            "CREATE TABLE IF NOT EXISTS s (ts TIMESTAMP PRIMARY KEY, v DOUBLE) USING TIMESERIES \
             WITH (expiration_type='PARTITION', expiration_time=90, expiration_time_unit='DAY') \
             PARTITION BY RANGE (ts) EVERY (30, DAY)",
        );
        assert!(c.if_not_exists);
        assert!(matches!(
            c.hive_formats.as_ref().and_then(|h| h.storage.as_ref()),
            Some(HiveIOFormat::Using { format }) if format.value == TIMESERIES
        ));
        assert!(matches!(&c.table_options, CreateTableOptions::With(o) if o.len() == 3));
        let clause = PartitionClause::from_expr(c.partition_by.as_deref().unwrap()).unwrap();
        assert_eq!(
            clause,
            PartitionClause::Range {
                column: Ident::new("ts"),
                width: 30,
                unit: Some("DAY".into()),
                subpartition: None
            }
        );
        let c = create(
            "CREATE TABLE h (id INTEGER PRIMARY KEY, s STRING) PARTITION BY HASH id PARTITIONS 128",
        );
        assert_eq!(
            PartitionClause::from_expr(c.partition_by.as_deref().unwrap()).unwrap(),
            PartitionClause::Hash {
                column: Ident::new("id"),
                count: 128
            }
        );
        let c = create(
            "CREATE TABLE ih (d TIMESTAMP, s STRING, PRIMARY KEY (d, s)) \
             PARTITION BY INTERVAL (d) EVERY (60, DAY) SUBPARTITION BY HASH (s) SUBPARTITIONS 64",
        );
        assert!(matches!(
            PartitionClause::from_expr(c.partition_by.as_deref().unwrap()).unwrap(),
            PartitionClause::Range { subpartition: Some((ref c, 64)), .. } if c.value == "s"
        ));
    }

    #[test]
    fn other_create_tables_are_left_to_sqlparser() {
        let c = create("CREATE TABLE t (a int) WITH (fillfactor = 70)");
        assert!(c.partition_by.is_none());
        assert!(parse_sql("CREATE TABLE t AS SELECT 1").is_ok());
        assert!(parse_sql("CREATE TABLE t (a int) PARTITION BY HASH (a)").is_err());
        assert!(parse_sql("CREATE TABLE t (a int) USING TIMESERIES garbage").is_err());
    }

    #[test]
    fn drop_partition_for_value() {
        let statement = parse_sql("ALTER TABLE s DROP PARTITION FOR ('2017-01-10T13:00:00Z')")
            .unwrap()
            .remove(0);
        let Statement::AlterTable(alter) = statement else {
            panic!("not an ALTER TABLE")
        };
        assert!(matches!(
            &alter.operations[..],
            [AlterTableOperation::DropPartitions { partitions, .. }] if partitions.len() == 1
        ));
        assert!(parse_sql("ALTER TABLE s ADD COLUMN c int").is_ok());
    }
}
