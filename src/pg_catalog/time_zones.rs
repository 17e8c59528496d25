//! `pg_timezone_names` and `pg_timezone_abbrevs`: the zones `SET TIME ZONE` accepts, with
//! their offset and abbreviation at the moment of the query (DataGrip and pgAdmin list them).
//!
//! Invariant: every name listed is accepted by `SET TIME ZONE`; offsets and daylight-saving
//! flags are those in force now, as PostgreSQL reports them.

use chrono::{Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName, TZ_VARIANTS};

use super::Source;
use super::table::{Kind, Rows};
use crate::error::Result;

use Kind::*;

pub const NAMES: &[(&str, Kind)] = &[
    ("name", Text),
    ("abbrev", Text),
    ("utc_offset", Interval),
    ("is_dst", Bool),
];

pub const ABBREVS: &[(&str, Kind)] =
    &[("abbrev", Text), ("utc_offset", Interval), ("is_dst", Bool)];

/// Each zone now: name, abbreviation, offset east of UTC in microseconds, daylight saving.
fn zones_now() -> impl Iterator<Item = (&'static str, String, i64, bool)> {
    let now = Utc::now().naive_utc();
    TZ_VARIANTS.iter().map(move |tz| {
        let offset = tz.offset_from_utc_datetime(&now);
        let micros = i64::from(offset.fix().local_minus_utc()) * 1_000_000;
        let abbrev = offset.abbreviation().unwrap_or_default().to_string();
        let dst = !offset.dst_offset().is_zero();
        (tz.name(), abbrev, micros, dst)
    })
}

pub fn names(_: &Source) -> Result<Rows> {
    let mut rows = Rows::new(NAMES);
    for (name, abbrev, micros, dst) in zones_now() {
        rows.push(vec![
            ("name", name.into()),
            ("abbrev", abbrev.into()),
            ("utc_offset", super::table::V::Micros(micros)),
            ("is_dst", dst.into()),
        ]);
    }
    Ok(rows)
}

/// Alphabetic abbreviations in use now (numeric ones like `+09` are offsets, not names), each
/// once.
pub fn abbrevs(_: &Source) -> Result<Rows> {
    let mut seen = std::collections::BTreeMap::new();
    for (_, abbrev, micros, dst) in zones_now() {
        if abbrev.chars().all(|c| c.is_ascii_alphabetic()) && !abbrev.is_empty() {
            seen.entry(abbrev).or_insert((micros, dst));
        }
    }
    let mut rows = Rows::new(ABBREVS);
    for (abbrev, (micros, dst)) in seen {
        rows.push(vec![
            ("abbrev", abbrev.into()),
            ("utc_offset", super::table::V::Micros(micros)),
            ("is_dst", dst.into()),
        ]);
    }
    Ok(rows)
}
