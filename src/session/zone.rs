//! The session time zone (`TimeZone`): which names it accepts, and the label Arrow knows it by.
//! Values are stored in UTC; the zone only decides how zone-less text and `timestamp` values
//! are read as instants and how instants are shown (see `query::zone_casts`).
//!
//! Invariants: a zone's `name()` parses back to the same zone, so `SHOW TimeZone` output can be
//! fed to `SET TimeZone`; its `arrow_label()` parses as an Arrow time zone.

use std::str::FromStr;

use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub enum SessionZone {
    Utc,
    /// A fixed offset east of UTC in seconds, written as PostgreSQL shows `SET TIME ZONE 9`
    /// (`<+09>-09`).
    Fixed(i32),
    Named(Tz),
}

impl SessionZone {
    /// Accepts UTC and its aliases, IANA names (in any letter case), and a number of hours
    /// east of UTC (what `SET TIME ZONE 9` or `INTERVAL '9 hours'` leave).
    pub fn parse(text: &str) -> Option<SessionZone> {
        let text = text.trim().trim_matches('\'').trim();
        if [
            "utc",
            "gmt",
            "z",
            "zulu",
            "etc/utc",
            "etc/gmt",
            "universal",
            "default",
            "local",
        ]
        .contains(&text.to_lowercase().as_str())
        {
            return Some(SessionZone::Utc);
        }
        if let Some(seconds) = fixed_offset_seconds(text) {
            return Some(if seconds == 0 {
                SessionZone::Utc
            } else {
                SessionZone::Fixed(seconds)
            });
        }
        if let Ok(tz) = Tz::from_str(text) {
            return Some(SessionZone::Named(tz));
        }
        chrono_tz::TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(text))
            .map(|tz| SessionZone::Named(*tz))
    }

    pub fn name(&self) -> String {
        match self {
            SessionZone::Utc => "UTC".into(),
            SessionZone::Fixed(seconds) => {
                let east = format_offset(*seconds);
                let west = format_offset(-*seconds);
                format!("<{east}>{west}")
            }
            SessionZone::Named(tz) => tz.name().to_string(),
        }
    }

    /// The zone as an Arrow timestamp time-zone label (`+00:00`, the label of stored columns,
    /// for UTC; `+09:00`; `Asia/Tokyo`).
    pub fn arrow_label(&self) -> String {
        match self {
            SessionZone::Utc => crate::types::UTC.into(),
            SessionZone::Fixed(seconds) => {
                let sign = if *seconds < 0 { '-' } else { '+' };
                let abs = seconds.unsigned_abs();
                format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60)
            }
            SessionZone::Named(tz) => tz.name().to_string(),
        }
    }
}

/// `9` and `-3.5` (hours east of UTC, as `SET TIME ZONE 9` means), `<+09>-09` (what `name()`
/// writes for a fixed offset), and POSIX offsets `+05:30` or `UTC+3`, which as in PostgreSQL
/// count hours *west* of UTC.
fn fixed_offset_seconds(text: &str) -> Option<i32> {
    if let Some(rest) = text.strip_prefix('<') {
        let (east, _) = rest.split_once('>')?;
        return parse_hours_minutes(east);
    }
    if let Ok(hours) = text.parse::<f64>() {
        if !(-15.0..=15.0).contains(&hours) {
            return None;
        }
        return Some((hours * 3600.0).round() as i32);
    }
    let upper = text.to_ascii_uppercase();
    let posix = ["UTC", "GMT"]
        .iter()
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    if posix.starts_with(['+', '-']) {
        return parse_hours_minutes(posix).map(|west| -west);
    }
    None
}

fn parse_hours_minutes(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None => (digits.parse::<i32>().ok()?, 0),
    };
    if hours > 15 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// `+09`, `-03:30`, `+05:45`: PostgreSQL's offset suffix of a `timestamptz`.
pub fn format_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (hours, minutes, secs) = (abs / 3600, abs / 60 % 60, abs % 60);
    match (minutes, secs) {
        (0, 0) => format!("{sign}{hours:02}"),
        (_, 0) => format!("{sign}{hours:02}:{minutes:02}"),
        _ => format!("{sign}{hours:02}:{minutes:02}:{secs:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_the_same_zone() {
        for text in [
            "UTC",
            "Asia/Tokyo",
            "america/new_york",
            "9",
            "-3.5",
            "+05:30",
        ] {
            let zone = SessionZone::parse(text).unwrap();
            assert_eq!(SessionZone::parse(&zone.name()), Some(zone), "{text}");
        }
        assert_eq!(SessionZone::parse("etc/utc"), Some(SessionZone::Utc));
        assert_eq!(SessionZone::parse("Mars/Olympus"), None);
        assert_eq!(SessionZone::parse("99"), None);
    }

    #[test]
    fn posix_offsets_count_west_as_in_postgres() {
        assert_eq!(
            SessionZone::parse("+05:30"),
            Some(SessionZone::Fixed(-19_800))
        );
        assert_eq!(
            SessionZone::parse("UTC+3"),
            Some(SessionZone::Fixed(-10_800))
        );
        assert_eq!(SessionZone::parse("'+9'"), Some(SessionZone::Fixed(32_400)));
    }

    #[test]
    fn arrow_labels_parse_as_arrow_zones() {
        use datafusion::arrow::array::timezone::Tz as ArrowTz;
        for text in ["UTC", "Asia/Tokyo", "9", "-3.5", "+05:30"] {
            let label = SessionZone::parse(text).unwrap().arrow_label();
            assert!(label.parse::<ArrowTz>().is_ok(), "{text} -> {label}");
        }
        assert_eq!(SessionZone::parse("-3.5").unwrap().arrow_label(), "-03:30");
    }
}
