//! GridDB's time functions (spec/GRIDDB_SQL.md §8.5) as DataFusion scalar functions:
//! `TIMESTAMP_ADD` (alias `TIMESTAMPADD`), `TIMESTAMP_DIFF` (alias `TIMESTAMPDIFF`),
//! `TIMESTAMP_TRUNC`, `TO_TIMESTAMP_MS`, `TO_EPOCH_MS`, `TIMESTAMP_MS` / `_US` / `_NS`,
//! `MAKE_TIMESTAMP` (and the source's `MAKE_TIMESTAMP_MS` / `_US` / `_NS`), `STRFTIME`, and
//! `griddb_extract`, which GridDB's comma form `EXTRACT(field, ts [, tz])` is parsed into
//! (`sql::time_syntax` also turns the bare unit keyword, `DAY`, into the string `'DAY'` and
//! `TIMESTAMP('...')` into `timestamp_ms('...')`).
//!
//! This module owns the list of functions ([`all`]) and the names the SQL dialect rewrites
//! into. The work is split by concern:
//!
//! | module | owns |
//! |---|---|
//! | `units` | units and fields, time-zone arguments |
//! | `errors` | the errors and their SQLSTATEs |
//! | `values` | Arrow timestamp values ↔ UTC / local date-times, GridDB's range |
//! | `parse` | TIMESTAMP_MS / _US / _NS (timestamp text) |
//! | `arithmetic` | TIMESTAMP_ADD, TIMESTAMP_DIFF |
//! | `trunc_extract` | TIMESTAMP_TRUNC, EXTRACT |
//! | `format` | STRFTIME |
//! | `construct` | MAKE_TIMESTAMP, TO_TIMESTAMP_MS, TO_EPOCH_MS |
//! | `args`, `call` | reading arguments, running an invocation row by row, building results |
//! | `udf` | the DataFusion function: argument shapes, coercion, return types, dispatch |
//!
//! Conventions: a unit or field is a string argument, matched without regard to case. A time
//! zone argument is a fixed offset, `'Z'`, `'±hh:mm'` or `'±hhmm'`; calendar work (YEAR, MONTH
//! and DAY arithmetic, truncation, fields, formatting) happens in that zone, UTC when it is
//! absent. A timestamp value is an instant (its Arrow value counts from the Unix epoch in UTC),
//! whatever time zone its Arrow type carries. TIMESTAMP_ADD and TIMESTAMP_TRUNC keep their
//! input's type; the constructors make GridDB's TIMESTAMP(3)/(6)/(9), which are Arrow
//! millisecond/microsecond/nanosecond timestamps without a zone.
//!
//! GridDB's timestamp range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z) is enforced
//! where GridDB timestamps are made (TIMESTAMP_MS/US/NS, MAKE_TIMESTAMP, TO_TIMESTAMP_MS); the
//! other functions accept any timestamp Kura can store, since Kura's `timestamp` is PostgreSQL's.
//!
//! Invariants: no input makes these functions panic; a NULL argument gives NULL; every failure
//! is a [`KuraError`](crate::error::KuraError) (inside a `DataFusionError`) named after the SQL
//! function, with SQLSTATE 22007 for unreadable timestamp text, 22008 for values out of range
//! and 22023 for a bad unit, field, zone or format.

mod args;
mod arithmetic;
mod call;
mod construct;
mod errors;
mod format;
mod parse;
#[cfg(test)]
mod testing;
mod trunc_extract;
mod udf;
mod units;
mod values;

use datafusion::arrow::datatypes::TimeUnit;
use datafusion::logical_expr::ScalarUDF;

use udf::{Kind, TimeFunction};

/// The function GridDB's `EXTRACT(field, ts [, tz])` is parsed into.
pub const EXTRACT_FUNCTION: &str = "griddb_extract";

/// The function GridDB's `TIMESTAMP(s [, tz])` is parsed into.
pub const TIMESTAMP_FUNCTION: &str = "timestamp_ms";

/// All of GridDB's time functions, to register in a session.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        TimeFunction::udf("timestamp_add", &["timestampadd"], Kind::Add),
        TimeFunction::udf("timestamp_diff", &["timestampdiff"], Kind::Diff),
        TimeFunction::udf("timestamp_trunc", &[], Kind::Trunc),
        TimeFunction::udf("to_timestamp_ms", &[], Kind::ToTimestampMs),
        TimeFunction::udf("to_epoch_ms", &[], Kind::ToEpochMs),
        TimeFunction::udf(TIMESTAMP_FUNCTION, &[], Kind::Parse(TimeUnit::Millisecond)),
        TimeFunction::udf("timestamp_us", &[], Kind::Parse(TimeUnit::Microsecond)),
        TimeFunction::udf("timestamp_ns", &[], Kind::Parse(TimeUnit::Nanosecond)),
        TimeFunction::udf(
            "make_timestamp",
            &["make_timestamp_ms"],
            Kind::Make(TimeUnit::Millisecond),
        ),
        TimeFunction::udf("make_timestamp_us", &[], Kind::Make(TimeUnit::Microsecond)),
        TimeFunction::udf("make_timestamp_ns", &[], Kind::Make(TimeUnit::Nanosecond)),
        TimeFunction::udf(EXTRACT_FUNCTION, &[], Kind::Extract),
        TimeFunction::udf("strftime", &[], Kind::Strftime),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    use datafusion::arrow::array::{Array, AsArray, RecordBatch};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::prelude::SessionContext;

    use crate::error::{KuraError, sqlstate};

    async fn run(sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
        let ctx = SessionContext::new();
        for f in all() {
            ctx.register_udf(f);
        }
        ctx.sql(sql).await?.collect().await
    }

    async fn column(sql: &str) -> Vec<String> {
        let batches = run(sql).await.unwrap();
        let mut out = Vec::new();
        for batch in batches {
            let text = cast(batch.column(0), &DataType::Utf8).unwrap();
            let text = text.as_string::<i32>();
            out.extend((0..text.len()).map(|i| {
                if text.is_null(i) {
                    "NULL".to_string()
                } else {
                    text.value(i).to_string()
                }
            }));
        }
        out
    }

    #[tokio::test]
    async fn runs_in_datafusion() {
        assert_eq!(
            column("SELECT timestamp_add('DAY', timestamp_ms('2018-12-01T11:22:33.444Z'), 10)")
                .await,
            ["2018-12-11T11:22:33.444"]
        );
        assert_eq!(
            column("SELECT timestampadd('month', timestamp_ms('2019-05-31T01:23:45.678Z'), 1, '-02:00')")
                .await,
            ["2019-07-01T01:23:45.678"]
        );
        // Columns, NULLs, and per-row units and zones.
        let rows = "(VALUES (timestamp_ms('2018-12-01T10:30:02.392Z'), 'HOUR', '+09:00'), \
                    (NULL, 'HOUR', 'Z'), (timestamp_ms('2018-12-01T10:30:02.392Z'), 'MILLISECOND', NULL), \
                    (timestamp_ms('2018-12-01T10:30:02.392Z'), 'DAY_OF_YEAR', '-11:00')) AS t(ts, f, tz)";
        assert_eq!(
            column(&format!("SELECT griddb_extract(f, ts, tz) FROM {rows}")).await,
            ["19", "NULL", "NULL", "334"]
        );
        assert_eq!(
            column(&format!(
                "SELECT griddb_extract('MILLISECOND', ts) FROM {rows}"
            ))
            .await,
            ["392", "NULL", "392", "392"]
        );
        assert_eq!(
            column(&format!(
                "SELECT strftime('%H:%M%z', ts, '+01:00') FROM {rows}"
            ))
            .await,
            ["11:30+01:00", "NULL", "11:30+01:00", "11:30+01:00"]
        );
        assert_eq!(
            column(&format!("SELECT timestamp_trunc('HOUR', ts) FROM {rows}")).await,
            [
                "2018-12-01T10:00:00",
                "NULL",
                "2018-12-01T10:00:00",
                "2018-12-01T10:00:00"
            ]
        );
        assert_eq!(
            column(&format!(
                "SELECT timestamp_diff('MINUTE', ts, timestamp_ms('2018-12-01')) FROM {rows}"
            ))
            .await,
            ["630", "NULL", "630", "630"]
        );
        assert_eq!(
            column(&format!("SELECT to_epoch_ms(ts) FROM {rows}")).await,
            ["1543660202392", "NULL", "1543660202392", "1543660202392"]
        );
        assert_eq!(
            column("SELECT make_timestamp(2019, 9, 19, 10, 30, 15.123, '+09:00')").await,
            ["2019-09-19T01:30:15.123"]
        );
        assert_eq!(
            column("SELECT make_timestamp(2019, 9, 19, 10, 30, 15)").await,
            ["2019-09-19T10:30:15"]
        );
        assert_eq!(
            column("SELECT to_timestamp_ms(1609459199999)").await,
            ["2020-12-31T23:59:59.999"]
        );
        assert_eq!(
            column("SELECT timestamp_ns('2018-12-01T10:30:02.123456789Z')").await,
            ["2018-12-01T10:30:02.123456789"]
        );
        assert_eq!(
            column("SELECT timestamp_add('DAY', NULL, 1)").await,
            ["NULL"]
        );
        assert_eq!(column("SELECT timestamp_ms(NULL)").await, ["NULL"]);
        // Errors carry the function name and a SQLSTATE.
        let e = run("SELECT timestamp_ms('1969-12-31T00:00:00Z')")
            .await
            .unwrap_err();
        let k = KuraError::from(e);
        assert_eq!(k.code, sqlstate::DATETIME_FIELD_OVERFLOW);
        assert!(k.message.starts_with("TIMESTAMP_MS: "), "{}", k.message);
        let e = run("SELECT timestamp_add('WEEK', timestamp_ms('2018-12-01'), 1)")
            .await
            .unwrap_err();
        assert_eq!(KuraError::from(e).code, sqlstate::INVALID_PARAMETER_VALUE);
        let e = run("SELECT timestamp_add('DAY', '2018-12-01', 1)")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("argument 2 must be a TIMESTAMP"),
            "{e}"
        );
        let e = run("SELECT timestamp_trunc('DAY')").await.unwrap_err();
        assert!(e.to_string().contains("takes 2 or 3 arguments"), "{e}");
    }
}
