//! `__kura_ordinals(array)`: the list `[1, 2, ..., cardinality(array)]`, NULL for a NULL
//! array. Unnested beside the array itself it numbers the elements, which is how
//! `unnest(...) WITH ORDINALITY` runs (`sql/lateral.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the rewrite calls.
pub const NAME: &str = "__kura_ordinals";

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Ordinals {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Ordinals {
    signature: Signature,
}

fn ordinal_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}

impl ScalarUDFImpl for Ordinals {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(ordinal_list())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [argument] = args.args.as_slice() else {
            return exec_err!("{NAME} takes one argument");
        };
        let arrays = argument.to_array(args.number_rows)?;
        let lengths: Vec<Option<usize>> = match arrays.data_type() {
            DataType::List(_) => list_lengths(arrays.as_list::<i32>()),
            DataType::LargeList(_) => list_lengths(arrays.as_list::<i64>()),
            DataType::FixedSizeList(_, size) => {
                let size = usize::try_from(*size).unwrap_or(0);
                (0..arrays.len())
                    .map(|row| arrays.is_valid(row).then_some(size))
                    .collect()
            }
            DataType::Null => vec![None; arrays.len()],
            other => return exec_err!("{NAME} of a non-array value of type {other}"),
        };
        let mut builder = ListBuilder::new(Int64Builder::new());
        for length in lengths {
            match length {
                Some(length) => {
                    for ordinal in 1..=length {
                        builder
                            .values()
                            .append_value(i64::try_from(ordinal).unwrap_or(i64::MAX));
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        let ordinals: ArrayRef = Arc::new(builder.finish());
        Ok(ColumnarValue::Array(ordinals))
    }
}

fn list_lengths<O: datafusion::arrow::array::OffsetSizeTrait>(
    lists: &datafusion::arrow::array::GenericListArray<O>,
) -> Vec<Option<usize>> {
    (0..lists.len())
        .map(|row| {
            lists
                .is_valid(row)
                .then(|| lists.value_length(row).as_usize())
        })
        .collect()
}
