//! PostgreSQL's `FETCH` and `MOVE` grammar:
//! `{FETCH | MOVE} [direction] [FROM | IN] cursor`, where a count may be negative
//! (`MOVE -3 FROM c`, `FETCH ABSOLUTE -1 FROM c`) and the cursor may follow the direction
//! directly. sqlparser's own FETCH takes neither, nor has MOVE; a MOVE is a FETCH marked as
//! [`super::dialect::is_move`] says.

use datafusion::sql::sqlparser::ast::{
    FetchDirection, FetchPosition, Ident, ObjectName, Statement, Value, ValueWithSpan,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

/// Parses a FETCH or MOVE if the parser is at one.
pub fn parse_fetch_or_move(
    parser: &mut Parser,
    move_marker: &str,
) -> Option<Result<Statement, ParserError>> {
    let is_move = match &parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::FETCH => false,
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("MOVE") => true,
        _ => return None,
    };
    parser.next_token();
    Some(
        parse_rest(parser).map(|(name, direction, position)| Statement::Fetch {
            name,
            direction,
            position,
            into: is_move.then(|| ObjectName::from(vec![Ident::new(move_marker)])),
        }),
    )
}

/// A possibly signed count.
fn signed_count(parser: &mut Parser) -> Result<ValueWithSpan, ParserError> {
    let negative = parser.consume_token(&Token::Minus);
    let value = parser.parse_number_value()?;
    if !negative {
        return Ok(value);
    }
    match value.value {
        Value::Number(n, long) => Ok(Value::Number(format!("-{n}"), long).into()),
        other => Err(ParserError::ParserError(format!(
            "expected a count, found {other}"
        ))),
    }
}

fn at_count(parser: &Parser) -> bool {
    matches!(parser.peek_token().token, Token::Number(..) | Token::Minus)
}

fn parse_rest(parser: &mut Parser) -> Result<(Ident, FetchDirection, FetchPosition), ParserError> {
    let direction = if parser.parse_keyword(Keyword::NEXT) {
        FetchDirection::Next
    } else if parser.parse_keyword(Keyword::PRIOR) {
        FetchDirection::Prior
    } else if parser.parse_keyword(Keyword::FIRST) {
        FetchDirection::First
    } else if parser.parse_keyword(Keyword::LAST) {
        FetchDirection::Last
    } else if parser.parse_keyword(Keyword::ABSOLUTE) {
        FetchDirection::Absolute {
            limit: signed_count(parser)?,
        }
    } else if parser.parse_keyword(Keyword::RELATIVE) {
        FetchDirection::Relative {
            limit: signed_count(parser)?,
        }
    } else if parser.parse_keyword(Keyword::ALL) {
        FetchDirection::All
    } else if parser.parse_keyword(Keyword::FORWARD) {
        if parser.parse_keyword(Keyword::ALL) {
            FetchDirection::ForwardAll
        } else if at_count(parser) {
            FetchDirection::Forward {
                limit: Some(signed_count(parser)?),
            }
        } else {
            FetchDirection::Forward { limit: None }
        }
    } else if parser.parse_keyword(Keyword::BACKWARD) {
        if parser.parse_keyword(Keyword::ALL) {
            FetchDirection::BackwardAll
        } else if at_count(parser) {
            FetchDirection::Backward {
                limit: Some(signed_count(parser)?),
            }
        } else {
            FetchDirection::Backward { limit: None }
        }
    } else if at_count(parser) {
        FetchDirection::Count {
            limit: signed_count(parser)?,
        }
    } else {
        FetchDirection::Next
    };
    let position = if parser.parse_keyword(Keyword::IN) {
        FetchPosition::In
    } else {
        let _ = parser.parse_keyword(Keyword::FROM);
        FetchPosition::From
    };
    let name = parser.parse_identifier()?;
    Ok((name, direction, position))
}

#[cfg(test)]
mod tests {
    use crate::sql::parse_sql;

    fn round_trip(sql: &str) -> String {
        parse_sql(sql).unwrap().remove(0).to_string()
    }

    #[test]
    fn postgres_forms_parse() {
        assert_eq!(round_trip("FETCH 3 FROM c"), "FETCH 3 FROM c");
        assert_eq!(round_trip("FETCH c"), "FETCH NEXT FROM c");
        assert_eq!(
            round_trip("fetch backward 2 in \"C\""),
            "FETCH BACKWARD 2 IN \"C\""
        );
        assert_eq!(
            round_trip("FETCH ABSOLUTE -1 FROM c"),
            "FETCH ABSOLUTE -1 FROM c"
        );
        assert_eq!(
            round_trip("MOVE -3 FROM c"),
            "FETCH -3 FROM c INTO __kura_move"
        );
        assert!(crate::sql::dialect::is_move(
            &parse_sql("MOVE FORWARD ALL IN c").unwrap()[0]
        ));
        assert!(parse_sql("FETCH FROM").is_err());
    }
}
