//! Index keys as bytes: the values of the indexed columns in Arrow's row format
//! (`arrow::row`), whose byte order is the key order.
//!
//! Invariants: every key of one codec is the concatenation of one self-delimiting encoding per
//! column, so the bytes of a key's first `n` columns are exactly what [`KeyCodec::encode_prefix`]
//! gives for those `n` values, and comparing two keys byte-wise compares them column by column
//! (NULL first, then by value). A NULL column value encodes as a leading 0 byte; a non-NULL one
//! never does.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;

use crate::error::Result;

/// A key as bytes of its index's codec: what transactions use to name keys (locks, their own
/// rows), and what lookups compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexKey(pub Box<[u8]>);

/// The leading byte of a NULL column value in a key.
pub const NULL_BYTE: u8 = 0;

/// Encodes the keys of one index (columns of fixed Arrow types, in index order).
#[derive(Debug)]
pub struct KeyCodec {
    types: Vec<DataType>,
    /// `prefixes[n - 1]` encodes the first `n` columns.
    prefixes: Vec<RowConverter>,
}

impl KeyCodec {
    pub fn new(types: Vec<DataType>) -> Result<KeyCodec> {
        let prefixes = (1..=types.len())
            .map(|n| {
                let fields = types[..n].iter().cloned().map(SortField::new).collect();
                RowConverter::new(fields)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(KeyCodec { types, prefixes })
    }

    /// The codec for `columns` of `batch`.
    pub fn for_columns(batch: &RecordBatch, columns: &[usize]) -> Result<KeyCodec> {
        KeyCodec::new(
            columns
                .iter()
                .map(|c| batch.schema().field(*c).data_type().clone())
                .collect(),
        )
    }

    pub fn types(&self) -> &[DataType] {
        &self.types
    }

    /// The keys of every row of `batch` over `columns` (which have this codec's types).
    pub fn encode_rows(&self, batch: &RecordBatch, columns: &[usize]) -> Result<Rows> {
        let arrays: Vec<ArrayRef> = columns.iter().map(|c| batch.column(*c).clone()).collect();
        let full = self
            .prefixes
            .last()
            .ok_or_else(|| crate::error::KuraError::internal("an index without columns"))?;
        Ok(full.convert_columns(&arrays)?)
    }

    /// The key of every row of `batch` over `columns`.
    pub fn keys(&self, batch: &RecordBatch, columns: &[usize]) -> Result<Vec<IndexKey>> {
        let rows = self.encode_rows(batch, columns)?;
        Ok(rows.iter().map(|row| IndexKey(row.data().into())).collect())
    }

    /// The key of row `row` of `batch` over `columns`.
    pub fn key(&self, batch: &RecordBatch, columns: &[usize], row: usize) -> Result<IndexKey> {
        self.keys(&batch.slice(row, 1), columns)?
            .pop()
            .ok_or_else(|| crate::error::KuraError::internal("a key of no row"))
    }

    /// The key of `values` (one per column), or `None` when one cannot be represented in its
    /// column's type.
    pub fn key_of_values(&self, values: &[ScalarValue]) -> Option<IndexKey> {
        if values.len() != self.types.len() {
            return None;
        }
        self.encode_prefix(values).map(|k| IndexKey(k.into()))
    }

    /// The bytes keys whose leading columns equal `values` start with, or `None` when a value
    /// cannot be represented in its column's type (then no key equals it).
    pub fn encode_prefix(&self, values: &[ScalarValue]) -> Option<Vec<u8>> {
        let converter = self.prefixes.get(values.len().checked_sub(1)?)?;
        let arrays = values
            .iter()
            .zip(&self.types)
            .map(|(value, ty)| value_array(value, ty))
            .collect::<Option<Vec<_>>>()?;
        let rows = converter.convert_columns(&arrays).ok()?;
        Some(rows.row(0).as_ref().to_vec())
    }
}

/// `value` as a one-element array of type `ty`; `None` when it does not convert exactly.
fn value_array(value: &ScalarValue, ty: &DataType) -> Option<ArrayRef> {
    let array = value.to_array_of_size(1).ok()?;
    if array.data_type() == ty {
        return Some(array);
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&array, ty, &strict).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(-5), None, Some(7), Some(7)])),
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("y"),
                    Some(""),
                    Some("zz"),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn byte_order_is_key_order_and_prefixes_match() {
        let b = batch();
        let codec = KeyCodec::for_columns(&b, &[0, 1]).unwrap();
        let rows = codec.encode_rows(&b, &[0, 1]).unwrap();
        let keys: Vec<&[u8]> = (0..4).map(|i| rows.row(i).data()).collect();
        // NULL first, then -5, then 7 with "" before "zz".
        assert!(keys[1] < keys[0] && keys[0] < keys[2] && keys[2] < keys[3]);
        assert_eq!(keys[1][0], NULL_BYTE);
        assert!(
            keys.iter()
                .enumerate()
                .all(|(i, k)| i == 1 || k[0] != NULL_BYTE)
        );
        let seven = codec.encode_prefix(&[ScalarValue::Int32(Some(7))]).unwrap();
        assert!(keys[2].starts_with(&seven) && keys[3].starts_with(&seven));
        assert!(!keys[0].starts_with(&seven));
        let full = codec
            .encode_prefix(&[ScalarValue::Int32(Some(7)), ScalarValue::from("zz")])
            .unwrap();
        assert_eq!(full, keys[3]);
    }

    #[test]
    fn values_of_other_types_convert_only_exactly() {
        let codec = KeyCodec::new(vec![DataType::Int32]).unwrap();
        let wide = codec.encode_prefix(&[ScalarValue::Int64(Some(7))]);
        assert_eq!(wide, codec.encode_prefix(&[ScalarValue::Int32(Some(7))]));
        assert!(
            codec
                .encode_prefix(&[ScalarValue::Int64(Some(1 << 40))])
                .is_none()
        );
        let null = codec.encode_prefix(&[ScalarValue::Int64(None)]).unwrap();
        assert_eq!(null[0], NULL_BYTE);
    }
}
