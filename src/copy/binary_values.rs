//! Binary COPY field values (PostgreSQL's `send`/`recv` forms) read into the text form of a
//! column's type, so that binary COPY FROM shares the text path's conversion, defaults and
//! error reporting.
//!
//! Invariant: a field whose length does not fit its type, or whose content is not a value of
//! it, is 22P03 (invalid_binary_representation), never a panic.

use chrono::{Duration, NaiveDate};

use crate::error::{KuraError, Result, sqlstate};
use crate::types::SqlType;

fn bad(what: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_BINARY_REPRESENTATION,
        format!("incorrect binary data format for {what}"),
    )
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| bad(what))
}

/// PostgreSQL's epoch for dates and timestamps.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

fn timestamp_text(bytes: &[u8]) -> Result<String> {
    let micros = i64::from_be_bytes(fixed(bytes, "timestamp")?);
    match micros {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let at = epoch()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.checked_add_signed(Duration::microseconds(micros)))
        .ok_or_else(|| bad("timestamp"))?;
    Ok(at.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// `numeric`'s binary form: digit count, weight, sign, display scale, base-10000 digits.
fn numeric_text(bytes: &[u8]) -> Result<String> {
    let word = |i: usize| -> Result<u16> {
        bytes
            .get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("numeric"))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    if bytes.len() != 8 + 2 * ndigits {
        return Err(bad("numeric"));
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => return Err(bad("numeric")),
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Result<_>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return Err(bad("numeric"));
    }
    // Digit group i stands for digits[i] * 10000^(weight - i).
    let group = |i: i32| -> u16 {
        usize::try_from(weight - i)
            .ok()
            .and_then(|index| digits.get(index).copied())
            .unwrap_or(0)
    };
    let mut integer = String::new();
    for power in (0..=weight.max(0)).rev() {
        let g = group(power);
        if integer.is_empty() {
            if g != 0 {
                integer = g.to_string();
            }
        } else {
            integer.push_str(&format!("{g:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }
    let mut fraction = String::new();
    let mut power = -1;
    while fraction.len() < dscale {
        fraction.push_str(&format!("{:04}", group(power)));
        power -= 1;
    }
    fraction.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Ok(if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    })
}

/// The text form of binary field `bytes` for a column of type `ty`.
pub fn text_of(ty: &SqlType, bytes: &[u8]) -> Result<String> {
    Ok(match ty {
        SqlType::Bool => match bytes {
            [0] => "f".into(),
            [1] => "t".into(),
            _ => return Err(bad("boolean")),
        },
        // Kura's BYTE travels as int2, like its other small integers.
        SqlType::Byte | SqlType::Short => i16::from_be_bytes(fixed(bytes, "smallint")?).to_string(),
        SqlType::Integer => i32::from_be_bytes(fixed(bytes, "integer")?).to_string(),
        SqlType::Long => i64::from_be_bytes(fixed(bytes, "bigint")?).to_string(),
        SqlType::Float => {
            let v = f32::from_be_bytes(fixed(bytes, "real")?);
            if v.is_nan() {
                "NaN".into()
            } else {
                v.to_string()
            }
        }
        SqlType::Double => {
            let v = f64::from_be_bytes(fixed(bytes, "double precision")?);
            if v.is_nan() {
                "NaN".into()
            } else {
                v.to_string()
            }
        }
        SqlType::Numeric { .. } => numeric_text(bytes)?,
        SqlType::Text { .. } => String::from_utf8(bytes.to_vec()).map_err(|_| {
            KuraError::new(
                sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "invalid byte sequence for encoding \"UTF8\"",
            )
        })?,
        SqlType::Blob => {
            let mut text = String::with_capacity(2 + 2 * bytes.len());
            text.push_str("\\x");
            for b in bytes {
                text.push_str(&format!("{b:02x}"));
            }
            text
        }
        SqlType::Timestamp { .. } => timestamp_text(bytes)?,
        SqlType::TimestampTz => {
            let text = timestamp_text(bytes)?;
            if text.ends_with("infinity") {
                text
            } else {
                text + "+00"
            }
        }
        SqlType::Date => {
            let days = i32::from_be_bytes(fixed(bytes, "date")?);
            match days {
                i32::MAX => "infinity".into(),
                i32::MIN => "-infinity".into(),
                _ => epoch()
                    .checked_add_signed(Duration::days(i64::from(days)))
                    .ok_or_else(|| bad("date"))?
                    .format("%Y-%m-%d")
                    .to_string(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn fixed_width_values() {
        assert_eq!(
            text_of(&SqlType::Integer, &(-7i32).to_be_bytes()).unwrap(),
            "-7"
        );
        assert_eq!(text_of(&SqlType::Bool, &[1]).unwrap(), "t");
        assert_eq!(
            text_of(&SqlType::Date, &(-1i32).to_be_bytes()).unwrap(),
            "1999-12-31"
        );
        let micros: i64 = 86_400_000_000 + 1_500_000;
        assert_eq!(
            text_of(&SqlType::TimestampTz, &micros.to_be_bytes()).unwrap(),
            "2000-01-02 00:00:01.500000+00"
        );
        assert_eq!(text_of(&SqlType::Blob, &[0, 255]).unwrap(), "\\x00ff");
        assert_eq!(
            text_of(&SqlType::Integer, &[1, 2]).unwrap_err().code,
            "22P03"
        );
    }

    #[test]
    fn numerics() {
        // 123456789.125 = [1][2345][6789] . [1250], weight 2, dscale 3.
        let bytes = numeric(4, 2, 0, 3, &[1, 2345, 6789, 1250]);
        let ty = SqlType::Numeric {
            precision: 20,
            scale: 3,
        };
        assert_eq!(text_of(&ty, &bytes).unwrap(), "123456789.125");
        // -0.001: weight -1, one digit 10 (0.0010), dscale 3.
        assert_eq!(
            text_of(&ty, &numeric(1, -1, 0x4000, 3, &[10])).unwrap(),
            "-0.001"
        );
        assert_eq!(text_of(&ty, &numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        // 10000 = [1] with weight 1.
        assert_eq!(text_of(&ty, &numeric(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(
            text_of(&ty, &numeric(2, 0, 0, 0, &[1])).unwrap_err().code,
            "22P03"
        );
    }
}
