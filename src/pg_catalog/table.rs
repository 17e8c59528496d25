//! The building blocks of catalog relations: a column layout ([`Kind`]s under names), rows of
//! [`V`]alues pushed one at a time, and [`SnapshotTable`], the DataFusion provider that builds
//! its rows when a statement scans it.
//!
//! Invariant: a relation's schema is fixed by its layout; its rows are built at scan time from
//! the catalog and the session of the statement that scans it (the [`StatementContext`]), so
//! they describe the objects as that statement sees them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::array::{Int16Builder, Int32Builder, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{
    DataType, Field, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit,
};
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::Source;
use super::oids::types::{INT2VECTOR, OIDVECTOR};
use crate::error::Result;
use crate::query::StatementContext;
use crate::server::described;

/// The PostgreSQL type of a catalog column, and the Arrow type it is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `oid` and the reg* types: int4, as in the static tables of `datafusion-pg-catalog`.
    Oid,
    Int2,
    Int4,
    Int8,
    Float4,
    Bool,
    Text,
    /// `int2[]`.
    Int2Array,
    /// `oid[]`.
    OidArray,
    /// `int2vector`: an array that prints as `1 2` and is subscripted from 0.
    Int2Vector,
    /// `oidvector`, likewise.
    OidVector,
    TextArray,
    Timestamptz,
    /// `interval`, from [`V::Micros`].
    Interval,
}

impl Kind {
    fn data_type(self) -> DataType {
        let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
        match self {
            Kind::Oid | Kind::Int4 => DataType::Int32,
            Kind::Int2 => DataType::Int16,
            Kind::Int8 => DataType::Int64,
            Kind::Float4 => DataType::Float32,
            Kind::Bool => DataType::Boolean,
            Kind::Text => DataType::Utf8,
            Kind::Int2Array | Kind::Int2Vector => list(DataType::Int16),
            Kind::OidArray | Kind::OidVector => list(DataType::Int32),
            Kind::TextArray => list(DataType::Utf8),
            Kind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        }
    }
}

/// One value of a row; `Null` fits every kind.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Ints(Vec<i64>),
    Texts(Vec<String>),
    /// Microseconds since the Unix epoch.
    Micros(i64),
}

impl From<&str> for V {
    fn from(s: &str) -> V {
        V::Text(s.to_string())
    }
}

impl From<String> for V {
    fn from(s: String) -> V {
        V::Text(s)
    }
}

impl From<bool> for V {
    fn from(b: bool) -> V {
        V::Bool(b)
    }
}

impl From<i32> for V {
    fn from(i: i32) -> V {
        V::Int(i64::from(i))
    }
}

impl From<i64> for V {
    fn from(i: i64) -> V {
        V::Int(i)
    }
}

/// LSNs, byte counts and counters: int8, saturating at its maximum.
impl From<u64> for V {
    fn from(u: u64) -> V {
        V::Int(i64::try_from(u).unwrap_or(i64::MAX))
    }
}

impl<T: Into<V>> From<Option<T>> for V {
    fn from(value: Option<T>) -> V {
        value.map_or(V::Null, Into::into)
    }
}

/// A relation's columns.
pub type Layout = &'static [(&'static str, Kind)];

pub fn schema_of(layout: Layout) -> SchemaRef {
    Arc::new(Schema::new(
        layout
            .iter()
            .map(|(name, kind)| {
                let field = Field::new(*name, kind.data_type(), true);
                match kind {
                    Kind::Int2Vector => {
                        field.with_metadata(described::metadata(INT2VECTOR, -1, None))
                    }
                    Kind::OidVector => {
                        field.with_metadata(described::metadata(OIDVECTOR, -1, None))
                    }
                    _ => field,
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// Rows under construction, checked against the layout as they are pushed.
pub struct Rows {
    layout: Layout,
    rows: Vec<Vec<V>>,
}

impl Rows {
    pub fn new(layout: Layout) -> Rows {
        Rows {
            layout,
            rows: Vec::new(),
        }
    }

    /// Adds a row given by (column, value) pairs; columns not named are NULL.
    pub fn push(&mut self, values: Vec<(&str, V)>) {
        let mut row = vec![V::Null; self.layout.len()];
        for (name, value) in values {
            match self.layout.iter().position(|(n, _)| *n == name) {
                Some(i) => row[i] = value,
                None => debug_assert!(false, "no catalog column {name}"),
            }
        }
        self.rows.push(row);
    }

    pub fn into_batch(self) -> Result<RecordBatch> {
        let schema = schema_of(self.layout);
        let columns = self
            .layout
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| array(*kind, self.rows.iter().map(|r| &r[i])))
            .collect::<Vec<_>>();
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

fn int(v: &V) -> Option<i64> {
    match v {
        V::Int(i) => Some(*i),
        V::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn array<'a>(kind: Kind, values: impl Iterator<Item = &'a V>) -> ArrayRef {
    match kind {
        Kind::Oid | Kind::Int4 => Arc::new(
            values
                .map(|v| int(v).map(|i| i as i32))
                .collect::<Int32Array>(),
        ),
        Kind::Int2 => Arc::new(
            values
                .map(|v| int(v).map(|i| i as i16))
                .collect::<Int16Array>(),
        ),
        Kind::Int8 => Arc::new(values.map(int).collect::<Int64Array>()),
        Kind::Float4 => Arc::new(
            values
                .map(|v| match v {
                    V::Float(f) => Some(*f as f32),
                    V::Int(i) => Some(*i as f32),
                    _ => None,
                })
                .collect::<Float32Array>(),
        ),
        Kind::Bool => Arc::new(
            values
                .map(|v| match v {
                    V::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Kind::Text => Arc::new(
            values
                .map(|v| match v {
                    V::Text(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Kind::Interval => Arc::new(
            values
                .map(|v| match v {
                    V::Micros(m) => Some(IntervalMonthDayNano::new(0, 0, m.saturating_mul(1_000))),
                    _ => None,
                })
                .collect::<IntervalMonthDayNanoArray>(),
        ),
        Kind::Timestamptz => Arc::new(
            values
                .map(|v| match v {
                    V::Micros(m) => Some(*m),
                    _ => None,
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Kind::Int2Array | Kind::Int2Vector => {
            let mut builder = ListBuilder::new(Int16Builder::new());
            for v in values {
                match v {
                    V::Ints(items) => {
                        for i in items {
                            builder.values().append_value(*i as i16);
                        }
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::OidArray | Kind::OidVector => {
            let mut builder = ListBuilder::new(Int32Builder::new());
            for v in values {
                match v {
                    V::Ints(items) => {
                        for i in items {
                            builder.values().append_value(*i as i32);
                        }
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
        Kind::TextArray => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            for v in values {
                match v {
                    V::Texts(items) => {
                        for s in items {
                            builder.values().append_value(s);
                        }
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Arc::new(builder.finish())
        }
    }
}

/// How a relation's rows are made.
pub type BuildRows = fn(&Source<'_>) -> Result<Rows>;

/// A catalog relation whose rows are built when a statement scans it.
pub struct SnapshotTable {
    schema: SchemaRef,
    build: BuildRows,
    needs_views: bool,
    source: super::SourceHandles,
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotTable")
            .field("schema", &self.schema)
            .finish()
    }
}

impl SnapshotTable {
    pub fn new(
        layout: Layout,
        build: BuildRows,
        needs_views: bool,
        source: super::SourceHandles,
    ) -> SnapshotTable {
        SnapshotTable {
            schema: schema_of(layout),
            build,
            needs_views,
            source,
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let context = state.config().get_extension::<StatementContext>();
        let source = self
            .source
            .source(context.as_deref(), self.needs_views)
            .await;
        let batch = (self.build)(&source)
            .and_then(Rows::into_batch)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}
