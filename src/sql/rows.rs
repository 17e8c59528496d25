//! Conforming rows to a table definition before they enter a transaction's writes: casting to
//! the column types, NOT NULL, character lengths and `char(n)` padding.
//!
//! Invariant: every batch a transaction stores has exactly the table's schema and satisfies
//! its column constraints.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::FormatOptions;

use crate::error::{KuraError, Result, sqlstate};
use crate::storage::TableDef;
use crate::types::SqlType;

const STRICT: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: FormatOptions::new(),
};

/// Casts and checks `columns` (one per table column, in table order) into a stored batch.
pub fn conform(def: &TableDef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    if columns.len() != def.columns.len() {
        return Err(KuraError::internal(format!(
            "expected {} columns for \"{}\", got {}",
            def.columns.len(),
            def.name,
            columns.len()
        )));
    }
    let mut out = Vec::with_capacity(columns.len());
    for (column, array) in def.columns.iter().zip(columns) {
        let target = column.ty.arrow_type();
        let array = if array.data_type() == &target {
            array
        } else {
            cast_with_options(&array, &target, &STRICT).map_err(|e| {
                let mut k = KuraError::from(e);
                k.message = format!("column \"{}\": {}", column.name, k.message);
                k
            })?
        };
        if !column.nullable && array.null_count() > 0 {
            return Err(KuraError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    column.name, def.name
                ),
            ));
        }
        let array = match &column.ty {
            SqlType::Text { max_len: Some(n), padded } => check_length(array, *n as usize, *padded, &column.ty)?,
            _ => array,
        };
        out.push(array);
    }
    let options = datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(def.schema().clone(), out, &options)?)
}

/// Rejects values longer than `n` characters; pads `char(n)` values with spaces.
fn check_length(array: ArrayRef, n: usize, padded: bool, ty: &SqlType) -> Result<ArrayRef> {
    let strings = array.as_string::<i32>();
    for value in strings.iter().flatten() {
        if value.chars().count() > n && value.trim_end_matches(' ').chars().count() > n {
            return Err(KuraError::new(
                sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type {ty}"),
            ));
        }
    }
    let needs_change = strings.iter().flatten().any(|v| {
        let len = v.chars().count();
        len > n || (padded && len < n)
    });
    if !needs_change {
        return Ok(array);
    }
    let fixed: StringArray = strings
        .iter()
        .map(|v| {
            v.map(|v| {
                let trimmed: String = v.chars().take(n).collect();
                if padded {
                    format!("{trimmed:<n$}")
                } else {
                    trimmed
                }
            })
        })
        .collect();
    Ok(Arc::new(fixed))
}
