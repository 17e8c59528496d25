//! `pg_get_keywords()`: the keywords of Kura's SQL parser with PostgreSQL's categories, which
//! clients read to decide what to quote and to highlight (pgjdbc's `getSQLKeywords`, DBeaver).
//!
//! Invariant: every word is a keyword of the parser Kura runs (sqlparser's list); its category
//! is PostgreSQL 15's for the words PostgreSQL reserves in some way, and unreserved otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// PostgreSQL's fully reserved keywords.
const RESERVED: &[&str] = &[
    "ALL",
    "ANALYSE",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "ASYMMETRIC",
    "BOTH",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "CONSTRAINT",
    "CREATE",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_ROLE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DEFAULT",
    "DEFERRABLE",
    "DESC",
    "DISTINCT",
    "DO",
    "ELSE",
    "END",
    "EXCEPT",
    "FALSE",
    "FETCH",
    "FOR",
    "FOREIGN",
    "FROM",
    "GRANT",
    "GROUP",
    "HAVING",
    "IN",
    "INITIALLY",
    "INTERSECT",
    "INTO",
    "LATERAL",
    "LEADING",
    "LIMIT",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "PLACING",
    "PRIMARY",
    "REFERENCES",
    "RETURNING",
    "SELECT",
    "SESSION_USER",
    "SOME",
    "SYMMETRIC",
    "SYSTEM_USER",
    "TABLE",
    "THEN",
    "TO",
    "TRAILING",
    "TRUE",
    "UNION",
    "UNIQUE",
    "USER",
    "USING",
    "VARIADIC",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// Reserved, but allowed as function or type names.
const TYPE_FUNC_NAME: &[&str] = &[
    "AUTHORIZATION",
    "BINARY",
    "COLLATION",
    "CONCURRENTLY",
    "CROSS",
    "CURRENT_SCHEMA",
    "FREEZE",
    "FULL",
    "ILIKE",
    "INNER",
    "IS",
    "ISNULL",
    "JOIN",
    "LEFT",
    "LIKE",
    "NATURAL",
    "NOTNULL",
    "OUTER",
    "OVERLAPS",
    "RIGHT",
    "SIMILAR",
    "TABLESAMPLE",
    "VERBOSE",
];

/// Unreserved, but not allowed as function or type names.
const COL_NAME: &[&str] = &[
    "BETWEEN",
    "BIGINT",
    "BIT",
    "BOOLEAN",
    "CHAR",
    "CHARACTER",
    "COALESCE",
    "DEC",
    "DECIMAL",
    "EXISTS",
    "EXTRACT",
    "FLOAT",
    "GREATEST",
    "GROUPING",
    "INOUT",
    "INT",
    "INTEGER",
    "INTERVAL",
    "LEAST",
    "NATIONAL",
    "NCHAR",
    "NONE",
    "NORMALIZE",
    "NULLIF",
    "NUMERIC",
    "OUT",
    "OVERLAY",
    "POSITION",
    "PRECISION",
    "REAL",
    "ROW",
    "SETOF",
    "SMALLINT",
    "SUBSTRING",
    "TIME",
    "TIMESTAMP",
    "TREAT",
    "TRIM",
    "VALUES",
    "VARCHAR",
    "XMLATTRIBUTES",
    "XMLCONCAT",
    "XMLELEMENT",
    "XMLEXISTS",
    "XMLFOREST",
    "XMLNAMESPACES",
    "XMLPARSE",
    "XMLPI",
    "XMLROOT",
    "XMLSERIALIZE",
    "XMLTABLE",
];

/// True when `word` is a keyword PostgreSQL's `quote_ident` quotes: any but the unreserved
/// ones (`select`, `check`, `user`, `between`, ...).
pub fn is_reserved(word: &str) -> bool {
    category(&word.to_ascii_uppercase()).0 != "U"
}

/// PostgreSQL's category code and description of `word` (upper case).
fn category(word: &str) -> (&'static str, &'static str) {
    if RESERVED.contains(&word) {
        ("R", "reserved")
    } else if TYPE_FUNC_NAME.contains(&word) {
        ("T", "reserved (can be function or type name)")
    } else if COL_NAME.contains(&word) {
        ("C", "unreserved (cannot be function or type name)")
    } else {
        ("U", "unreserved")
    }
}

fn keywords() -> DfResult<RecordBatch> {
    let mut words: Vec<&str> = ALL_KEYWORDS
        .iter()
        .copied()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    words.sort_unstable();
    words.dedup();
    let categories: Vec<_> = words.iter().map(|w| category(w)).collect();
    // Only unreserved words are certain to be usable as a column label without AS.
    let bare: Vec<bool> = categories.iter().map(|(code, _)| *code == "U").collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("word", DataType::Utf8, false),
        Field::new("catcode", DataType::Utf8, false),
        Field::new("barelabel", DataType::Boolean, false),
        Field::new("catdesc", DataType::Utf8, false),
        Field::new("baredesc", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                words.iter().map(|w| w.to_ascii_lowercase()),
            )),
            Arc::new(StringArray::from_iter_values(
                categories.iter().map(|c| c.0),
            )),
            Arc::new(BooleanArray::from(bare.clone())),
            Arc::new(StringArray::from_iter_values(
                categories.iter().map(|c| c.1),
            )),
            Arc::new(StringArray::from_iter_values(bare.iter().map(|b| {
                if *b {
                    "can be bare label"
                } else {
                    "requires AS"
                }
            }))),
        ],
    )?)
}

#[derive(Debug)]
struct GetKeywords;

impl TableFunctionImpl for GetKeywords {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return Err(datafusion::error::DataFusionError::Plan(
                "pg_get_keywords() takes no arguments".into(),
            ));
        }
        let batch = keywords()?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

pub fn register(ctx: &SessionContext) {
    ctx.register_udtf("pg_get_keywords", Arc::new(GetKeywords));
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    #[test]
    fn keywords_carry_postgres_categories() {
        let batch = keywords().unwrap();
        let words = batch.column(0).as_string::<i32>();
        let codes = batch.column(1).as_string::<i32>();
        let code_of = |word: &str| {
            (0..batch.num_rows())
                .find(|i| words.value(*i) == word)
                .map(|i| codes.value(i).to_string())
        };
        assert_eq!(code_of("select").as_deref(), Some("R"));
        assert_eq!(code_of("join").as_deref(), Some("T"));
        assert_eq!(code_of("integer").as_deref(), Some("C"));
        assert_eq!(code_of("abort").as_deref(), Some("U"));
        assert!(batch.num_rows() > 400);
    }
}
