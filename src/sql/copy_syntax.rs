//! COPY's boolean options as PostgreSQL spells them: `FREEZE on`, `HEADER off`, `FREEZE 1`
//! (`pgbench -i` sends `COPY ... WITH (FREEZE ON)`). sqlparser reads only TRUE or FALSE after
//! FREEZE and HEADER, so in COPY statements the value after them is rewritten to one of those
//! before parsing.
//!
//! Invariant: only the token right after an unquoted FREEZE or HEADER inside a COPY statement
//! changes, and only when it spells a boolean as PostgreSQL's `boolin` reads it.

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::query::literal_coercion::parse_bool;

/// True when `sql` may hold a COPY statement (the tokens are only rewritten then).
pub fn may_hold_copy(sql: &str) -> bool {
    sql.as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"copy"))
}

/// `tokens` with the boolean after FREEZE or HEADER of each COPY statement as TRUE or FALSE.
pub fn normalize_copy_booleans(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let unquoted = |token: &Token, word: &str| matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    let mut statement_start = true;
    let mut in_copy = false;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i].token;
        if matches!(token, Token::Whitespace(_)) {
            i += 1;
            continue;
        }
        if matches!(token, Token::SemiColon) {
            statement_start = true;
            in_copy = false;
            i += 1;
            continue;
        }
        if statement_start {
            in_copy = unquoted(token, "COPY");
            statement_start = false;
        } else if in_copy && (unquoted(token, "FREEZE") || unquoted(token, "HEADER")) {
            let next =
                (i + 1..tokens.len()).find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)));
            if let Some(j) = next {
                let spelled = match &tokens[j].token {
                    Token::Word(w) if w.quote_style.is_none() => Some(w.value.clone()),
                    Token::Number(n, _) => Some(n.clone()),
                    Token::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                };
                let value = spelled
                    .filter(|s| !s.eq_ignore_ascii_case("match"))
                    .and_then(|s| parse_bool(&s));
                if let Some(value) = value {
                    tokens[j].token = Token::make_keyword(if value { "TRUE" } else { "FALSE" });
                }
            }
        }
        i += 1;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use crate::sql::parse_sql;
    use datafusion::sql::sqlparser::ast::{CopyOption, Statement};

    fn options(sql: &str) -> Vec<CopyOption> {
        match parse_sql(sql).unwrap().remove(0) {
            Statement::Copy { options, .. } => options,
            other => panic!("not a COPY: {other}"),
        }
    }

    #[test]
    fn booleans_after_freeze_and_header_read_as_postgresql_reads_them() {
        assert_eq!(
            options("copy pgbench_accounts from stdin with (freeze on)"),
            vec![CopyOption::Freeze(true)]
        );
        assert_eq!(
            options("COPY t FROM STDIN (FORMAT csv, HEADER off, FREEZE 0)"),
            vec![
                CopyOption::Format("csv".into()),
                CopyOption::Header(false),
                CopyOption::Freeze(false)
            ]
        );
        assert_eq!(
            options("COPY t TO STDOUT (HEADER 'yes')"),
            vec![CopyOption::Header(true)]
        );
    }

    #[test]
    fn other_statements_keep_their_tokens() {
        // `header` as an alias before ON is not a COPY option.
        let statements = parse_sql(
            "SELECT 1; SELECT * FROM a JOIN b AS header ON true; COPY t FROM STDIN (FREEZE on)",
        )
        .unwrap();
        assert_eq!(statements.len(), 3);
        assert!(statements[1].to_string().contains("AS header ON true"));
    }
}
