//! GridDB's time-function call syntax, parsed as part of [`KuraDialect`](super::dialect::KuraDialect)
//! (its `Dialect::parse_prefix` calls [`parse_time_function`]):
//!
//! ```text
//! TIMESTAMP_ADD(unit, ts, k [, tz])        TIMESTAMPADD(...)
//! TIMESTAMP_DIFF(unit, ts1, ts2 [, tz])    TIMESTAMPDIFF(...)
//! TIMESTAMP_TRUNC(field, ts [, tz])
//! EXTRACT(field, ts [, tz])                → griddb_extract('FIELD', ts [, tz])
//! TIMESTAMP(s [, tz])                      → timestamp_ms(s [, tz])
//! ```
//!
//! GridDB writes the unit or field as a bare keyword (`DAY`), which DataFusion would resolve as
//! a column; here it becomes the string literal `'DAY'`, the first argument of an ordinary
//! function call that `query::time_functions` evaluates. `EXTRACT` with a comma is not
//! PostgreSQL's `EXTRACT(field FROM ts)`, so it calls `griddb_extract`; `TIMESTAMP(` followed by
//! anything but a precision is GridDB's string-to-timestamp function, `timestamp_ms`.
//!
//! Invariant: a call is taken over only when the tokens ahead (peeked, never consumed) have one
//! of these shapes; everything else, such as `EXTRACT(hour FROM ts)`, `TIMESTAMP '...'`,
//! `TIMESTAMP(3) '...'` or `CAST(x AS TIMESTAMP(3))`, is left to sqlparser with nothing consumed.
//! SQL text is never rewritten: the result is an AST node, which prints as SQL that parses back
//! to the same call.

use datafusion::sql::sqlparser::ast::{Expr, Value};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::template::function_call;
use crate::query::time_functions::{EXTRACT_FUNCTION, TIMESTAMP_FUNCTION};

/// Functions whose first argument is a bare unit or field keyword.
const UNIT_FUNCTIONS: [&str; 6] = [
    "TIMESTAMP_ADD",
    "TIMESTAMPADD",
    "TIMESTAMP_DIFF",
    "TIMESTAMPDIFF",
    "TIMESTAMP_TRUNC",
    "EXTRACT",
];

/// The unquoted word that comes next, when it names one of GridDB's time functions.
fn peek_function_name(parser: &Parser) -> Option<String> {
    match &parser.peek_nth_token_ref(0).token {
        Token::Word(w)
            if w.quote_style.is_none()
                && (w.value.eq_ignore_ascii_case("TIMESTAMP")
                    || UNIT_FUNCTIONS
                        .iter()
                        .any(|f| w.value.eq_ignore_ascii_case(f))) =>
        {
            Some(w.value.clone())
        }
        _ => None,
    }
}

fn peek_is(parser: &Parser, n: usize, token: &Token) -> bool {
    parser.peek_nth_token_ref(n).token == *token
}

/// Parses a GridDB time-function call if one comes next (see the module documentation);
/// returns `None`, having consumed nothing, otherwise.
pub fn parse_time_function(parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
    let name = peek_function_name(parser)?;
    if !peek_is(parser, 1, &Token::LParen) {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    if upper == "TIMESTAMP" {
        // `TIMESTAMP(3) '...'` is PostgreSQL's typed literal with a precision; `TIMESTAMP()` is
        // nothing GridDB has.
        if matches!(
            parser.peek_nth_token_ref(2).token,
            Token::Number(..) | Token::RParen | Token::EOF
        ) {
            return None;
        }
        parser.next_token(); // TIMESTAMP
        parser.next_token(); // (
        return Some(
            parse_arguments(parser, Vec::new()).map(|args| function_call(TIMESTAMP_FUNCTION, args)),
        );
    }
    if !UNIT_FUNCTIONS.contains(&upper.as_str()) {
        return None;
    }
    let unit = match &parser.peek_nth_token_ref(2).token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        // `EXTRACT('hour', ts)`: sqlparser's EXTRACT would reject the comma.
        Token::SingleQuotedString(s) if upper == "EXTRACT" => s.clone(),
        _ => return None,
    };
    if !peek_is(parser, 3, &Token::Comma) {
        return None;
    }
    for _ in 0..4 {
        parser.next_token(); // name ( unit ,
    }
    let function = if upper == "EXTRACT" {
        EXTRACT_FUNCTION.to_string()
    } else {
        name
    };
    let unit = Expr::value(Value::SingleQuotedString(unit));
    Some(parse_arguments(parser, vec![unit]).map(|args| function_call(&function, args)))
}

/// The rest of an argument list, `expr [, expr ...] )`, after `first`.
fn parse_arguments(parser: &mut Parser, first: Vec<Expr>) -> Result<Vec<Expr>, ParserError> {
    let mut args = first;
    loop {
        args.push(parser.parse_expr()?);
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    Ok(args)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, Statement};

    use crate::sql::dialect::parse_sql;

    /// The single select item of `SELECT <expr>`, printed back as SQL.
    fn expr(sql: &str) -> String {
        let statement = parse_sql(&format!("SELECT {sql}")).unwrap().remove(0);
        let Statement::Query(query) = statement else {
            panic!("not a query: {statement}");
        };
        let SetExpr::Select(select) = *query.body else {
            panic!("not a select");
        };
        match &select.projection[..] {
            [SelectItem::UnnamedExpr(e)] => e.to_string(),
            other => panic!("unexpected projection {other:?}"),
        }
    }

    #[test]
    fn griddb_calls_become_function_calls() {
        assert_eq!(
            expr("TIMESTAMP_ADD(DAY, TIMESTAMP('2018-12-01T11:22:33.444Z'), 10)"),
            "TIMESTAMP_ADD('DAY', timestamp_ms('2018-12-01T11:22:33.444Z'), 10)"
        );
        assert_eq!(
            expr("timestampadd(month, ts, -1, '-02:00')"),
            "timestampadd('MONTH', ts, -1, '-02:00')"
        );
        assert_eq!(
            expr("TIMESTAMP_DIFF(MONTH, a, b)"),
            "TIMESTAMP_DIFF('MONTH', a, b)"
        );
        assert_eq!(
            expr("TIMESTAMPDIFF(YEAR, a, b, 'Z')"),
            "TIMESTAMPDIFF('YEAR', a, b, 'Z')"
        );
        assert_eq!(
            expr("TIMESTAMP_TRUNC(HOUR, TIMESTAMP_ADD(HOUR, NOW(), -1))"),
            "TIMESTAMP_TRUNC('HOUR', TIMESTAMP_ADD('HOUR', NOW(), -1))"
        );
        assert_eq!(
            expr("EXTRACT(HOUR, TIMESTAMP('2018-12-01T10:30:02.392Z'), '+09:00')"),
            "griddb_extract('HOUR', timestamp_ms('2018-12-01T10:30:02.392Z'), '+09:00')"
        );
        assert_eq!(
            expr("extract(day_of_week, ts)"),
            "griddb_extract('DAY_OF_WEEK', ts)"
        );
        assert_eq!(expr("EXTRACT('hour', ts)"), "griddb_extract('hour', ts)");
        assert_eq!(expr("TIMESTAMP($1)"), "timestamp_ms($1)");
        assert_eq!(expr("timestamp(s, '+09:00')"), "timestamp_ms(s, '+09:00')");
        // Inside larger expressions, and followed by operators.
        assert_eq!(
            expr("TIMESTAMP_DIFF(DAY, a, b) + 1 > 2"),
            "TIMESTAMP_DIFF('DAY', a, b) + 1 > 2"
        );
        // Units that are not GridDB's still parse; the function rejects them when it runs.
        assert_eq!(
            expr("TIMESTAMP_ADD(WEEK, ts, 1)"),
            "TIMESTAMP_ADD('WEEK', ts, 1)"
        );
    }

    #[test]
    fn the_printed_call_parses_back_to_itself() {
        for sql in [
            "TIMESTAMP_ADD(DAY, ts, 10, '+09:00')",
            "EXTRACT(HOUR, ts)",
            "TIMESTAMP('2018-12-01T10:30:00Z')",
        ] {
            let printed = expr(sql);
            assert_eq!(expr(&printed), printed);
        }
    }

    #[test]
    fn postgresql_forms_are_left_alone() {
        assert_eq!(expr("EXTRACT(HOUR FROM ts)"), "EXTRACT(HOUR FROM ts)");
        assert_eq!(
            expr("TIMESTAMP '2024-01-01 10:00:00'"),
            "TIMESTAMP '2024-01-01 10:00:00'"
        );
        assert_eq!(
            expr("TIMESTAMP(3) '2024-01-01 10:00:00.123'"),
            "TIMESTAMP(3) '2024-01-01 10:00:00.123'"
        );
        assert_eq!(expr("CAST(x AS TIMESTAMP)"), "CAST(x AS TIMESTAMP)");
        assert_eq!(expr("CAST(x AS TIMESTAMP(3))"), "CAST(x AS TIMESTAMP(3))");
        assert_eq!(expr("x::timestamp(9)"), "x::TIMESTAMP(9)");
        assert_eq!(expr("timestamp"), "timestamp");
        assert_eq!(expr("date_trunc('hour', ts)"), "date_trunc('hour', ts)");
        // A quoted name is an identifier, not GridDB's keyword.
        assert_eq!(
            expr("TIMESTAMP_ADD(\"DAY\", ts, 1)"),
            "TIMESTAMP_ADD(\"DAY\", ts, 1)"
        );
        assert_eq!(
            expr("TIMESTAMP_ADD('DAY', ts, 1)"),
            "TIMESTAMP_ADD('DAY', ts, 1)"
        );
        // Qualified column as first argument: not a unit.
        assert_eq!(expr("TIMESTAMP_TRUNC(t.f, ts)"), "TIMESTAMP_TRUNC(t.f, ts)");
        let create = parse_sql(
            "CREATE TABLE t (a TIMESTAMP, b TIMESTAMP(3), c TIMESTAMP(9) DEFAULT TIMESTAMP('2024-01-01'))",
        )
        .unwrap();
        assert_eq!(
            create[0].to_string(),
            "CREATE TABLE t (a TIMESTAMP, b TIMESTAMP(3), c TIMESTAMP(9) DEFAULT timestamp_ms('2024-01-01'))"
        );
    }

    #[test]
    fn malformed_calls_are_syntax_errors() {
        for sql in [
            "SELECT TIMESTAMP_ADD(DAY, ts, 1",
            "SELECT TIMESTAMP_ADD(DAY, )",
            "SELECT EXTRACT(HOUR, )",
            "SELECT TIMESTAMP('x',)",
        ] {
            assert!(parse_sql(sql).is_err(), "{sql}");
        }
    }
}
