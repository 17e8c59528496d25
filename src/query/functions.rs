//! SQL functions Kura adds to DataFusion's: GridDB's `TYPEOF`, and PostgreSQL's `version()`
//! (clients parse its text, so it must read like PostgreSQL's), `format()`,
//! `txid_current()` and `age(xid)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// All functions to register in a database's session.
pub fn all() -> Vec<ScalarUDF> {
    let mut functions = vec![
        ScalarUDF::from(TypeOf::new()),
        ScalarUDF::from(Version::new()),
        super::pg_format::udf(),
        ScalarUDF::from(TransactionId::current()),
        ScalarUDF::from(TransactionId::catalog_xmin()),
        ScalarUDF::from(TransactionAge::new()),
        super::ordinality::udf(),
        super::in_array::udf(),
    ];
    functions.extend(session_function_signatures());
    functions.extend(super::time_functions::all());
    functions
}

/// The text of `version()`: PostgreSQL's shape, naming Kura.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {} on {}-{}, compiled by rustc",
        crate::session::settings::SERVER_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// `version()`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
}

impl Version {
    fn new() -> Version {
        Version {
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_text(),
        ))))
    }
}

/// Which transaction id a [`TransactionId`] function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum XidSource {
    /// The transaction the statement runs in.
    Statement,
    /// The catalog rows' `xmin` (`TxnManager::catalog_xid`).
    Catalog,
}

/// `txid_current()` (alias `pg_current_xact_id()`): the id of the transaction the statement
/// runs in; and [`CATALOG_XMIN`], which the catalog rewrite puts for a catalog row's `xmin`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TransactionId {
    signature: Signature,
    name: &'static str,
    aliases: Vec<String>,
    source: XidSource,
}

/// The function standing for the `xmin` system column of catalog relations.
pub const CATALOG_XMIN: &str = "__kura_catalog_xmin";

impl TransactionId {
    fn current() -> TransactionId {
        TransactionId {
            signature: Signature::nullary(Volatility::Stable),
            name: "txid_current",
            aliases: vec!["pg_current_xact_id".into()],
            source: XidSource::Statement,
        }
    }

    fn catalog_xmin() -> TransactionId {
        TransactionId {
            signature: Signature::nullary(Volatility::Stable),
            name: CATALOG_XMIN,
            aliases: Vec::new(),
            source: XidSource::Catalog,
        }
    }
}

impl ScalarUDFImpl for TransactionId {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let id = statement_xid(&args, self.source, self.name)?;
        Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(id))))
    }
}

/// A transaction id the calling statement knows: its own, or the catalog's.
fn statement_xid(args: &ScalarFunctionArgs, source: XidSource, function: &str) -> DfResult<i64> {
    let options = args
        .config_options
        .extensions
        .get::<super::context::StatementOptions>()
        .ok_or_else(|| {
            crate::error::KuraError::internal(format!("{function}() outside of a statement"))
        })?;
    let id = match source {
        XidSource::Statement => options.txn_id,
        XidSource::Catalog => options.catalog_xid,
    };
    Ok(i64::try_from(id).unwrap_or(i64::MAX))
}

/// `age(xid)`: how many transactions began since `xid`, counted from the statement's own.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TransactionAge {
    signature: Signature,
}

impl TransactionAge {
    fn new() -> TransactionAge {
        TransactionAge {
            signature: Signature::uniform(1, vec![DataType::Int64], Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for TransactionAge {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{Int32Array, Int64Array};
        let now = statement_xid(&args, XidSource::Statement, "age")?;
        let age = |xid: i64| i32::try_from(now.saturating_sub(xid)).unwrap_or(i32::MAX);
        match &args.args[..] {
            [ColumnarValue::Scalar(ScalarValue::Int64(xid))] => {
                Ok(ColumnarValue::Scalar(ScalarValue::Int32(xid.map(age))))
            }
            [ColumnarValue::Array(array)] => {
                let xids = array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
                    crate::error::KuraError::internal("age() of a non-int8 array")
                })?;
                let ages: Int32Array = xids.iter().map(|xid| xid.map(age)).collect();
                Ok(ColumnarValue::Array(Arc::new(ages)))
            }
            _ => Err(crate::error::KuraError::internal("age() takes one argument").into()),
        }
    }
}

/// `TYPEOF(x)`: the GridDB type name of a value, or NULL for a NULL value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl TypeOf {
    fn new() -> TypeOf {
        TypeOf {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// GridDB's name of an Arrow type. `TIMESTAMP` is Kura's default (microsecond) timestamp;
/// millisecond and nanosecond timestamps are `TIMESTAMP(3)` and `TIMESTAMP(9)`.
fn griddb_type_name(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Boolean => "BOOL",
        DataType::Int8 => "BYTE",
        DataType::Int16 => "SHORT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "LONG",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB",
        DataType::Timestamp(TimeUnit::Millisecond, _) => "TIMESTAMP(3)",
        DataType::Timestamp(TimeUnit::Nanosecond, _) => "TIMESTAMP(9)",
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::Decimal128(..) => "NUMERIC",
        DataType::Date32 | DataType::Date64 => "DATE",
        _ => return None,
    })
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = args
            .arg_fields
            .first()
            .and_then(|f| griddb_type_name(f.data_type()));
        Ok(match args.args.first() {
            Some(ColumnarValue::Array(array)) => {
                let names: StringArray = (0..array.len())
                    .map(|i| if array.is_null(i) { None } else { name })
                    .collect();
                ColumnarValue::Array(Arc::new(names))
            }
            Some(ColumnarValue::Scalar(value)) => {
                let name = if value.is_null() { None } else { name };
                ColumnarValue::Scalar(ScalarValue::Utf8(name.map(str::to_string)))
            }
            None => ColumnarValue::Scalar(ScalarValue::Utf8(None)),
        })
    }
}

/// Signatures of the session functions (`current_setting`, `set_config`, ...). The session
/// replaces every call by its value before planning (`session::functions`); these
/// declarations only let a statement that is described before its parameters are known
/// plan with the right parameter and result types.
pub fn session_function_signatures() -> Vec<ScalarUDF> {
    use DataType::{Boolean, Float64, Int32, Int64, Utf8};
    let text_list = DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
        "item", Utf8, true,
    )));
    let declare = |name: &'static str, args: Vec<Vec<DataType>>, returns: DataType| {
        ScalarUDF::from(SessionBound {
            name,
            signature: if args.is_empty() {
                Signature::nullary(Volatility::Volatile)
            } else {
                Signature::one_of(
                    args.into_iter().map(TypeSignature::Exact).collect(),
                    Volatility::Volatile,
                )
            },
            returns,
        })
    };
    vec![
        declare(
            "current_setting",
            vec![vec![Utf8], vec![Utf8, Boolean]],
            Utf8,
        ),
        declare("set_config", vec![vec![Utf8, Utf8, Boolean]], Utf8),
        declare("pg_cancel_backend", vec![vec![Int32]], Boolean),
        declare(
            "pg_terminate_backend",
            vec![vec![Int32], vec![Int32, Int64]],
            Boolean,
        ),
        declare("pg_sleep", vec![vec![Float64]], Utf8),
        declare("pg_backend_pid", vec![], Int32),
        declare("current_database", vec![], Utf8),
        declare("current_schema", vec![], Utf8),
        declare("current_schemas", vec![vec![Boolean]], text_list),
        declare("getpgusername", vec![], Utf8),
    ]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionBound {
    name: &'static str,
    signature: Signature,
    returns: DataType,
}

impl ScalarUDFImpl for SessionBound {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(crate::error::KuraError::unsupported(format!(
            "{} accepts only constant arguments or parameters in Kura",
            self.name
        ))
        .into())
    }
}
