//! `information_schema._pg_expandarray(array)`: PostgreSQL's set-returning function that
//! yields `(x, n)` per element, `n` counting from 1. pgjdbc (getPrimaryKeys, getIndexInfo,
//! getBestRowIdentifier) and Metabase call it on `pg_index.indkey`.
//!
//! Here it is a scalar function returning the list of `(x, n)` structs; the catalog rewrite
//! turns each call into `unnest(...)` of it, and `(keys).x` into a field access.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The name the rewrite calls.
pub const NAME: &str = "__kura_expandarray";

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

fn element_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [DataType::List(element)] => Ok(list_of(element_fields(element.data_type()))),
            [DataType::Null] => Ok(list_of(element_fields(&DataType::Null))),
            other => exec_err!("_pg_expandarray expects an array, got {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("_pg_expandarray takes one argument");
        };
        let scalar = matches!(arg, ColumnarValue::Scalar(_));
        let array = arg.to_array(if scalar { 1 } else { args.number_rows })?;
        let result = expand(&array)?;
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

fn expand(array: &ArrayRef) -> DfResult<ArrayRef> {
    let Some(lists) = array.as_any().downcast_ref::<ListArray>() else {
        if array.data_type() == &DataType::Null {
            return Ok(datafusion::arrow::array::new_null_array(
                &list_of(element_fields(&DataType::Null)),
                array.len(),
            ));
        }
        return exec_err!(
            "_pg_expandarray expects an array, got {}",
            array.data_type()
        );
    };
    let values = lists.values().clone();
    let mut positions = vec![0i32; values.len()];
    for window in lists.value_offsets().windows(2) {
        let (start, end) = (window[0] as usize, window[1] as usize);
        for (n, slot) in positions[start..end].iter_mut().enumerate() {
            *slot = i32::try_from(n + 1).unwrap_or(i32::MAX);
        }
    }
    let fields = element_fields(values.data_type());
    let structs = StructArray::try_new(
        fields.clone(),
        vec![values, Arc::new(Int32Array::from(positions))],
        None,
    )?;
    let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
    Ok(Arc::new(ListArray::try_new(
        item,
        lists.offsets().clone(),
        Arc::new(structs),
        lists.nulls().cloned(),
    )?))
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int16Array;
    use datafusion::arrow::buffer::OffsetBuffer;

    #[test]
    fn numbers_elements_from_one_per_array() {
        let values = Arc::new(Int16Array::from(vec![5, 7, 9, 2]));
        let field = Arc::new(Field::new("item", DataType::Int16, true));
        let lists: ArrayRef = Arc::new(
            ListArray::try_new(
                field,
                OffsetBuffer::new(vec![0, 2, 2, 4].into()),
                values,
                None,
            )
            .unwrap(),
        );
        let out = expand(&lists).unwrap();
        let out = out.as_any().downcast_ref::<ListArray>().unwrap();
        let second = out.value(2);
        let structs = second.as_any().downcast_ref::<StructArray>().unwrap();
        let n = structs
            .column(1)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(n.values(), &[1, 2]);
        assert_eq!(out.value(1).len(), 0);
        let x = structs
            .column(0)
            .as_any()
            .downcast_ref::<Int16Array>()
            .unwrap();
        assert_eq!(x.values(), &[9, 2]);
    }
}
