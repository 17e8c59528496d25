//! `__kura_in_array(values, x)`: `x IN (values...)` with SQL's three-valued result, for the
//! values a subquery collected into an array (`sql/in_subquery.rs`): false when there are none
//! (a NULL array: `array_agg` of no rows), NULL when `x` is NULL, true when one equals `x`,
//! NULL when none does but one is NULL, false otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Scalar};
use datafusion::arrow::compute::kernels::cmp;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the rewrite calls.
pub const NAME: &str = "__kura_in_array";

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(InArray {
        signature: Signature::array_and_element(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct InArray {
    signature: Signature,
}

impl ScalarUDFImpl for InArray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [lists, needles] = args.args.as_slice() else {
            return exec_err!("{NAME} takes two arguments");
        };
        let rows = args.number_rows;
        let lists = lists.to_array(rows)?;
        let needles = needles.to_array(rows)?;
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            out.append_option(contains(&lists, &needles, row)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Row `row`'s answer.
fn contains(lists: &ArrayRef, needles: &ArrayRef, row: usize) -> DfResult<Option<bool>> {
    let values = match lists.data_type() {
        DataType::List(_) => list_values(lists.as_list::<i32>(), row),
        DataType::LargeList(_) => list_values(lists.as_list::<i64>(), row),
        DataType::Null => None,
        other => return exec_err!("{NAME} of a non-array value of type {other}"),
    };
    let Some(values) = values else {
        return Ok(Some(false));
    };
    if values.is_empty() {
        return Ok(Some(false));
    }
    if needles.is_null(row) {
        return Ok(None);
    }
    let needle = Scalar::new(needles.slice(row, 1));
    let equal = cmp::eq(&values, &needle)?;
    if equal.true_count() > 0 {
        Ok(Some(true))
    } else if values.null_count() > 0 {
        Ok(None)
    } else {
        Ok(Some(false))
    }
}

fn list_values<O: datafusion::arrow::array::OffsetSizeTrait>(
    lists: &datafusion::arrow::array::GenericListArray<O>,
    row: usize,
) -> Option<ArrayRef> {
    lists.is_valid(row).then(|| lists.value(row))
}
