//! PostgreSQL's `format(formatstr, args...)`: `%s` (text, NULL as nothing), `%I` (quoted
//! identifier), `%L` (quoted literal, NULL as `NULL`), `%%`, argument positions (`%2$s`), and
//! widths with the `-` flag (`%-10s`). Metabase builds qualified names with it.
//!
//! Invariant: a format string PostgreSQL rejects is rejected with its SQLSTATE (22023, or 22004
//! for a NULL identifier); nothing is guessed.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{KuraError, Result, sqlstate};
use crate::pg_catalog::relations::quote_ident;

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Format {
        signature: Signature::variadic_any(Volatility::Stable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let columns: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let values: Vec<ScalarValue> = columns
                .iter()
                .map(|c| ScalarValue::try_from_array(c, row))
                .collect::<DfResult<_>>()?;
            match values.split_first() {
                Some((template, rest)) => match text_of(template) {
                    Some(template) => out.append_value(format(&template, rest)?),
                    None => out.append_null(),
                },
                None => {
                    return Err(KuraError::new(
                        sqlstate::UNDEFINED_FUNCTION,
                        "function format() does not exist",
                    )
                    .into());
                }
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// A value's text as `%s` shows it; `None` for NULL.
fn text_of(value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return None;
    }
    Some(match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        ScalarValue::Boolean(Some(b)) => if *b { "t" } else { "f" }.to_string(),
        other => {
            let array = other.to_array().ok()?;
            crate::server::text::text_values(
                &array,
                None,
                &crate::query::zone_casts::stored_tz().ok()?,
            )
            .ok()?
            .pop()
            .flatten()?
        }
    })
}

fn invalid(message: impl Into<String>) -> KuraError {
    KuraError::new(sqlstate::INVALID_PARAMETER_VALUE, message)
}

fn quote_literal(text: &str) -> String {
    let escaped = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// Reads a decimal number at `chars[*i..]`, advancing past it.
fn number(chars: &[char], i: &mut usize) -> Option<usize> {
    let start = *i;
    while *i < chars.len() && chars[*i].is_ascii_digit() {
        *i += 1;
    }
    chars[start..*i].iter().collect::<String>().parse().ok()
}

/// `template` with its conversions replaced by `args`.
pub fn format(template: &str, args: &[ScalarValue]) -> Result<String> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut next_arg = 0usize;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let unterminated = || invalid("unterminated format() type specifier");
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        // An optional position `n$`, then flags, then a width.
        let mut position = None;
        let mark = i;
        if let Some(n) = number(&chars, &mut i) {
            if chars.get(i) == Some(&'$') {
                if n == 0 {
                    return Err(invalid(
                        "format specifies argument 0, but arguments are numbered from 1",
                    ));
                }
                position = Some(n - 1);
                i += 1;
            } else {
                i = mark;
            }
        }
        let mut left = false;
        while chars.get(i) == Some(&'-') {
            left = true;
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            return Err(KuraError::unsupported(
                "format() widths taken from arguments (*) are not supported",
            ));
        }
        let width = number(&chars, &mut i).unwrap_or(0);
        let kind = *chars.get(i).ok_or_else(unterminated)?;
        i += 1;
        let index = position.unwrap_or(next_arg);
        next_arg = index + 1;
        let value = args
            .get(index)
            .ok_or_else(|| invalid("too few arguments for format()"))?;
        let text = match kind {
            's' => text_of(value).unwrap_or_default(),
            'I' => match text_of(value) {
                Some(t) => quote_ident(&t),
                None => {
                    return Err(KuraError::new(
                        sqlstate::NULL_VALUE_NOT_ALLOWED,
                        "null values cannot be formatted as an SQL identifier",
                    ));
                }
            },
            'L' => text_of(value).map_or_else(|| "NULL".to_string(), |t| quote_literal(&t)),
            other => {
                return Err(invalid(format!(
                    "unrecognized format() type specifier \"{other}\""
                )));
            }
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.into()))
    }

    #[test]
    fn formats_like_postgres() {
        assert_eq!(
            format("%s.%I", &[s("public"), s("My Table")]).unwrap(),
            "public.\"My Table\""
        );
        assert_eq!(
            format("%L, %L", &[s("it's"), ScalarValue::Utf8(None)]).unwrap(),
            "'it''s', NULL"
        );
        assert_eq!(format("%2$s %1$s", &[s("a"), s("b")]).unwrap(), "b a");
        assert_eq!(
            format("[%-4s|%4s]", &[s("x"), s("y")]).unwrap(),
            "[x   |   y]"
        );
        assert_eq!(
            format("100%% %s", &[ScalarValue::Int64(Some(7))]).unwrap(),
            "100% 7"
        );
        assert_eq!(
            format("%s", &[ScalarValue::Boolean(Some(true))]).unwrap(),
            "t"
        );
        assert_eq!(format("%L", &[s("a\\b")]).unwrap(), "E'a\\\\b'");
        assert_eq!(format("%s %s", &[s("a")]).unwrap_err().code, "22023");
        assert_eq!(
            format("%I", &[ScalarValue::Utf8(None)]).unwrap_err().code,
            "22004"
        );
        assert_eq!(format("%x", &[s("a")]).unwrap_err().code, "22023");
    }
}
