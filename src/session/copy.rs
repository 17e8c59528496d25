//! COPY through the client connection: `COPY t [(cols)] FROM STDIN` and
//! `COPY t [(cols)] | (query) TO STDOUT`, in text, CSV and binary formats. Binary fields
//! coming in are read into their text forms (`copy::binary_values`) and take the text path's
//! conversion; going out they are encoded like binary DataRow fields (a binary COPY tuple is
//! a DataRow body).
//!
//! COPY FROM streams: the decoder holds at most the row in progress, and rows are written to
//! the transaction every [`FLUSH_ROWS`] rows, so memory grows with the stored rows, not with
//! the input. The whole COPY is one statement: outside a block it commits at CopyDone; any
//! error rolls all of it back and names the line (and column) it happened at.
//!
//! Invariants: while a COPY FROM is open the session accepts only copy data, done or fail;
//! a failed COPY leaves none of its rows behind.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use datafusion::arrow::array::{ArrayRef, StringArray, new_null_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName, Query, Statement,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::copy::binary_values;
use crate::copy::format::{
    BinaryDecoder, ContextValue, CopyEncoder, RowDecoder, TextDecoder, TextRow,
    binary_field_count_error, copy_context, extra_data_error, missing_data_error,
};
use crate::copy::options::CopyFormat;
pub use crate::copy::options::CopyOptions;
use crate::copy::parquet::{ParquetDecoder, ParquetEncoder};
use crate::error::{KuraError, Result, sqlstate};
use crate::server::text::{BPCHAR_LENGTH, pad_column, text_values};
use crate::sql::exec::Exec;
use crate::storage::{Table, TableDef};
use crate::txn::Transaction;
use datafusion::arrow::array::timezone::Tz;

/// Rows decoded before they are written to the transaction.
const FLUSH_ROWS: usize = 8192;

/// A COPY FROM STDIN in progress.
pub struct CopyIn {
    table: Arc<Table>,
    def: Arc<TableDef>,
    /// The table column each COPY column fills.
    targets: Vec<usize>,
    names: Vec<String>,
    decoder: Decoder,
    pending: Vec<Vec<Option<String>>>,
    pending_lines: Vec<u64>,
    written: u64,
    /// The COPY's own transaction when it runs outside a block.
    implicit: Option<Transaction>,
    /// Where the block's writes stood before the COPY (to undo it inside a block).
    start_mark: usize,
}

enum Decoder {
    Text(TextDecoder),
    Binary(BinaryDecoder),
    Parquet(ParquetDecoder),
}

/// What the client is told when a COPY starts.
pub struct CopyStart {
    pub format: i8,
    pub columns: usize,
}

/// The bytes a COPY TO sends: one item per CopyData message, each with the number of rows
/// it holds (the header is sent with the first row).
pub type CopyOutStream = BoxStream<'static, Result<(Bytes, u64)>>;

struct Target {
    table: Arc<Table>,
    def: Arc<TableDef>,
    columns: Vec<usize>,
}

fn resolve_table(
    db: &crate::query::Database,
    name: &ObjectName,
    columns: &[Ident],
    verb: &str,
) -> Result<Target> {
    let name = crate::sql::names::relation_name(name)?;
    let table = db.table(&name, verb)?;
    let def = table.def();
    let columns = if columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        let mut out = Vec::with_capacity(columns.len());
        for ident in columns {
            let wanted = crate::sql::names::normalize(ident);
            let index = def
                .columns
                .iter()
                .position(|c| c.name == wanted)
                .ok_or_else(|| {
                    KuraError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{wanted}\" of relation \"{name}\" does not exist"),
                    )
                })?;
            if out.contains(&index) {
                return Err(KuraError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{wanted}\" specified more than once"),
                ));
            }
            out.push(index);
        }
        out
    };
    Ok(Target {
        table,
        def,
        columns,
    })
}

/// Checks a COPY statement's direction and target and returns its options.
pub fn parse(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyOptions> {
    match (to, target) {
        (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) | (_, CopyTarget::File { .. }) => {}
        (_, CopyTarget::Program { .. }) => {
            return Err(KuraError::unsupported(
                "COPY to or from a program is not supported",
            ));
        }
        (false, CopyTarget::Stdout) | (true, CopyTarget::Stdin) => {
            return Err(KuraError::syntax(if to {
                "COPY TO cannot read from STDIN"
            } else {
                "COPY FROM cannot write to STDOUT"
            }));
        }
    }
    if !to && matches!(source, CopySource::Query(_)) {
        return Err(KuraError::syntax("COPY FROM cannot read into a query"));
    }
    CopyOptions::from_ast(options, legacy, !to)
}

impl CopyIn {
    pub fn start(
        db: &crate::query::Database,
        source: &CopySource,
        options: &CopyOptions,
        implicit: Option<Transaction>,
        start_mark: usize,
    ) -> Result<(CopyIn, CopyStart)> {
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(KuraError::syntax("COPY FROM cannot read into a query"));
        };
        let target = resolve_table(db, table_name, columns, "copy into")?;
        let names: Vec<String> = target
            .columns
            .iter()
            .map(|&i| target.def.columns[i].name.clone())
            .collect();
        let decoder = match options.format {
            CopyFormat::Binary => Decoder::Binary(BinaryDecoder::new()),
            CopyFormat::Parquet => {
                let scratch = match db.txns.residency() {
                    Some(residency) => Some(residency.swap().scratch_file()?),
                    None => None,
                };
                Decoder::Parquet(ParquetDecoder::new(names.len(), scratch))
            }
            CopyFormat::Text | CopyFormat::Csv => Decoder::Text(TextDecoder::new(options, &names)?),
        };
        let start = CopyStart {
            format: options.wire_format(),
            columns: names.len(),
        };
        Ok((
            CopyIn {
                table: target.table,
                def: target.def,
                targets: target.columns,
                names,
                decoder,
                pending: Vec::new(),
                pending_lines: Vec::new(),
                written: 0,
                implicit,
                start_mark,
            },
            start,
        ))
    }

    pub fn restore_implicit(&mut self, implicit: Option<Transaction>) {
        self.implicit = implicit;
    }

    pub fn take_implicit(&mut self) -> Option<Transaction> {
        self.implicit.take()
    }

    pub fn start_mark(&self) -> usize {
        self.start_mark
    }

    pub fn rows_written(&self) -> u64 {
        self.written
    }

    fn context(&self, line: u64, column: Option<&str>, value: ContextValue) -> String {
        copy_context(&self.def.name, line, column, value)
    }

    /// Takes in `data`; [`fill`](Self::fill) decodes it.
    pub fn feed(&mut self, data: &[u8]) {
        match &mut self.decoder {
            Decoder::Text(d) => d.feed(data),
            Decoder::Binary(d) => d.feed(data),
            Decoder::Parquet(d) => d.feed(data),
        }
    }

    /// The end of the data: what is left becomes rows.
    pub fn finish(&mut self) {
        match &mut self.decoder {
            Decoder::Text(d) => d.finish(),
            Decoder::Binary(d) => d.finish(),
            Decoder::Parquet(d) => d.finish(),
        }
    }

    /// Decodes rows until a batch is ready to be written (true) or the input taken in so far
    /// is used up (false).
    pub fn fill(&mut self) -> Result<bool> {
        self.drain()?;
        Ok(self.pending.len() >= FLUSH_ROWS)
    }

    /// The next row in text form.
    fn next_row(&mut self) -> Result<Option<TextRow>> {
        let binary = match &mut self.decoder {
            Decoder::Text(d) => return d.next_row(),
            Decoder::Parquet(d) => return d.next_row(),
            Decoder::Binary(d) => d.next_row()?,
        };
        let Some(row) = binary else {
            return Ok(None);
        };
        if row.fields.len() != self.names.len() {
            return Err(binary_field_count_error(row.fields.len(), self.names.len()));
        }
        let mut fields = Vec::with_capacity(row.fields.len());
        for (position, field) in row.fields.iter().enumerate() {
            let Some(bytes) = field else {
                fields.push(None);
                continue;
            };
            let ty = &self.def.columns[self.targets[position]].ty;
            let text = binary_values::text_of(ty, bytes).map_err(|e| {
                e.with_context(self.context(
                    row.line,
                    Some(&self.names[position]),
                    ContextValue::Unknown,
                ))
            })?;
            fields.push(Some(text));
        }
        Ok(Some(TextRow {
            line: row.line,
            first_line: row.first_line,
            fields,
        }))
    }

    fn line(&self) -> u64 {
        match &self.decoder {
            Decoder::Text(d) => d.line(),
            Decoder::Binary(d) => d.line(),
            Decoder::Parquet(d) => d.line(),
        }
    }

    fn drain(&mut self) -> Result<()> {
        while self.pending.len() < FLUSH_ROWS {
            let row = match self.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(()),
                Err(e) if e.context.is_some() => return Err(e),
                Err(e) => {
                    let line = self.line();
                    return Err(e.with_context(self.context(line, None, ContextValue::Unknown)));
                }
            };
            let expected = self.names.len();
            if row.fields.len() > expected {
                return Err(extra_data_error().with_context(self.context(
                    row.line,
                    None,
                    ContextValue::Unknown,
                )));
            }
            if row.fields.len() < expected {
                let missing = &self.names[row.fields.len()];
                return Err(missing_data_error(missing).with_context(self.context(
                    row.line,
                    None,
                    ContextValue::Unknown,
                )));
            }
            self.pending_lines.push(row.line);
            self.pending.push(row.fields);
        }
        Ok(())
    }

    /// Writes the waiting rows into the transaction `exec` runs in.
    pub async fn flush(&mut self, exec: &Exec<'_>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let lines = std::mem::take(&mut self.pending_lines);
        let columns = self.columns(exec, &rows)?;
        let mark = exec.txn.writes.lock().mark();
        match exec
            .insert_columns(&self.table, columns.clone(), rows.len())
            .await
        {
            Ok(written) => {
                self.written += written as u64;
                Ok(())
            }
            Err(first) => {
                exec.txn.writes.lock().rollback_to(mark)?;
                Err(self.locate(exec, &columns, &rows, &lines, first).await)
            }
        }
    }

    /// One array per table column: the COPY's columns as text, the others their defaults.
    fn columns(&self, exec: &Exec<'_>, rows: &[Vec<Option<String>>]) -> Result<Vec<ArrayRef>> {
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.def.columns.len()];
        for (position, &target) in self.targets.iter().enumerate() {
            let values: StringArray = rows.iter().map(|r| r[position].as_deref()).collect();
            columns[target] = Some(Arc::new(values));
        }
        if columns.iter().any(Option::is_none) {
            let defaults = exec.db.plan_defaults(&self.def.columns)?;
            let empty = DFSchema::empty();
            for (index, column) in self.def.columns.iter().enumerate() {
                if columns[index].is_some() {
                    continue;
                }
                let array = match defaults.iter().find(|(name, _)| *name == column.name) {
                    Some((_, expr)) => {
                        let physical = exec.state().create_physical_expr(expr.clone(), &empty)?;
                        let one = RecordBatch::try_new_with_options(
                            Arc::new(datafusion::arrow::datatypes::Schema::empty()),
                            vec![],
                            &datafusion::arrow::record_batch::RecordBatchOptions::new()
                                .with_row_count(Some(rows.len())),
                        )?;
                        physical.evaluate(&one)?.into_array(rows.len())?
                    }
                    None => new_null_array(&column.ty.arrow_type(), rows.len()),
                };
                columns[index] = Some(array);
            }
        }
        columns
            .into_iter()
            .map(|c| c.ok_or_else(|| KuraError::internal("COPY left a column unfilled")))
            .collect()
    }

    /// The error of the first failing row, with its line: rows are conformed, then written,
    /// by halves until the first row that fails alone is found.
    async fn locate(
        &self,
        exec: &Exec<'_>,
        columns: &[ArrayRef],
        rows: &[Vec<Option<String>>],
        lines: &[u64],
        first: KuraError,
    ) -> KuraError {
        let prefix_fails = |len: usize| {
            let sliced: Vec<ArrayRef> = columns.iter().map(|c| c.slice(0, len)).collect();
            async move {
                let mark = exec.txn.writes.lock().mark();
                let outcome = exec.insert_columns(&self.table, sliced, len).await;
                let _ = exec.txn.writes.lock().rollback_to(mark);
                outcome.err()
            }
        };
        let (mut good, mut bad) = (0usize, rows.len());
        let mut error = first;
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            match prefix_fails(mid).await {
                Some(e) => {
                    bad = mid;
                    error = e;
                }
                None => good = mid,
            }
        }
        let row = bad - 1;
        let line = lines.get(row).copied().unwrap_or(0);
        let column = self
            .names
            .iter()
            .position(|name| error.message.contains(&format!("\"{name}\"")));
        let context = match column {
            Some(position) => {
                let value = match &rows[row][position] {
                    Some(text) => ContextValue::Text(text),
                    None => ContextValue::Null,
                };
                self.context(line, Some(&self.names[position]), value)
            }
            None => self.context(line, None, ContextValue::Unknown),
        };
        error.with_context(context)
    }
}

/// The statement that reads what `COPY ... TO` writes.
pub fn copy_to_query(db: &crate::query::Database, source: &CopySource) -> Result<Query> {
    match source {
        CopySource::Query(query) => Ok(query.as_ref().clone()),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let target = resolve_table(db, table_name, columns, "copy from")?;
            let list = target
                .columns
                .iter()
                .map(|&i| format!("\"{}\"", target.def.columns[i].name.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {list} FROM \"{}\"",
                target.def.name.replace('"', "\"\"")
            );
            match crate::sql::parse_sql(&sql)?.pop() {
                Some(Statement::Query(query)) => Ok(*query),
                _ => Err(KuraError::internal("COPY TO built no query")),
            }
        }
    }
}

/// Encodes a query's result for `COPY ... TO STDOUT`: one message per row. Text formats show
/// `timestamptz` values in `zone`, the session time zone.
pub fn encode_rows(
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    options: &CopyOptions,
    zone: Tz,
) -> Result<(CopyStart, CopyOutStream)> {
    if options.is_binary() {
        return encode_binary_rows(schema, stream, options);
    }
    if options.is_parquet() {
        return encode_parquet_rows(schema, stream);
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let pads = bpchar_pads(&schema);
    let encoder = Arc::new(CopyEncoder::new(options, &names)?);
    let mut header = BytesMut::new();
    encoder.write_start(&mut header);
    let header = Arc::new(parking_lot::Mutex::new(Some(header)));
    let leftover = header.clone();
    let start = CopyStart {
        format: 0,
        columns: names.len(),
    };
    let rows = stream.map(move |batch| -> Result<Vec<(Bytes, u64)>> {
        let batch = batch?;
        let texts: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .zip(&pads)
            .map(|(column, pad)| text_values(column, *pad, &zone))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut message = header.lock().take().unwrap_or_default();
            let fields: Vec<Option<&str>> = texts.iter().map(|c| c[row].as_deref()).collect();
            encoder.write_row(&mut message, &fields)?;
            out.push((message.freeze(), 1));
        }
        Ok(out)
    });
    let stream = one_message_per_item(rows)
        // With no rows, the header (CSV HEADER) still goes out, holding no row.
        .chain(futures::stream::iter(std::iter::from_fn(move || {
            leftover
                .lock()
                .take()
                .filter(|h| !h.is_empty())
                .map(|h| Ok((h.freeze(), 0)))
        })))
        .boxed();
    Ok((start, stream))
}

/// The declared length of each `char(n)` column, which goes out blank-padded.
fn bpchar_pads(schema: &SchemaRef) -> Vec<Option<usize>> {
    schema
        .fields()
        .iter()
        .map(|f| f.metadata().get(BPCHAR_LENGTH).and_then(|n| n.parse().ok()))
        .collect()
}

/// `COPY ... TO STDOUT (FORMAT binary)`: the signature and header, one tuple per row (encoded
/// as the binary DataRow of the same row), then the trailer.
fn encode_binary_rows(
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    options: &CopyOptions,
) -> Result<(CopyStart, CopyOutStream)> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let encoder = CopyEncoder::new(options, &names)?;
    let fields = Arc::new(
        crate::server::wire::fields(&schema, &pgwire::api::portal::Format::UnifiedBinary)
            .map_err(|e| KuraError::internal(e.to_string()))?,
    );
    // PostgreSQL sends the header with the first tuple, and with the trailer when there is
    // none; psycopg reads it that way.
    let mut header = BytesMut::new();
    encoder.write_start(&mut header);
    let header = Arc::new(parking_lot::Mutex::new(Some(header)));
    let leftover = header.clone();
    let start = CopyStart {
        format: 1,
        columns: names.len(),
    };
    let pads = bpchar_pads(&schema);
    let rows = stream.map(move |batch| -> Result<Vec<(Bytes, u64)>> {
        let mut batch = batch?;
        if pads.iter().any(Option::is_some) {
            // char(n) goes out blank-padded, as its binary form is its text form.
            let columns = batch
                .columns()
                .iter()
                .zip(&pads)
                .map(|(column, pad)| -> Result<ArrayRef> {
                    Ok(match pad {
                        Some(n) => Arc::new(pad_column(column, *n)),
                        None => column.clone(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            batch = RecordBatch::try_new(batch.schema(), columns)?;
        }
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in arrow_pg::datatypes::encode_recordbatch(fields.clone(), batch) {
            let row = row.map_err(|e| KuraError::internal(e.to_string()))?;
            let mut message = header.lock().take().unwrap_or_default();
            message.extend_from_slice(&row.field_count.to_be_bytes());
            message.extend_from_slice(&row.data);
            out.push((message.freeze(), 1));
        }
        Ok(out)
    });
    let stream = one_message_per_item(rows)
        .chain(futures::stream::once(async move {
            let mut message = leftover.lock().take().unwrap_or_default();
            encoder.write_end(&mut message);
            Ok((message.freeze(), 0))
        }))
        .boxed();
    Ok((start, stream))
}

/// `COPY ... TO STDOUT (FORMAT parquet)`: one Parquet file, sent as each row group is
/// written, then its footer.
fn encode_parquet_rows(
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
) -> Result<(CopyStart, CopyOutStream)> {
    let start = CopyStart {
        format: 1,
        columns: schema.fields().len(),
    };
    let encoder = Arc::new(parking_lot::Mutex::new(Some(ParquetEncoder::new(schema)?)));
    let finisher = encoder.clone();
    let rows = stream.map(move |batch| -> Result<(Bytes, u64)> {
        let batch = batch?;
        let mut encoder = encoder.lock();
        let encoder = encoder
            .as_mut()
            .ok_or_else(|| KuraError::internal("Parquet COPY written after its end"))?;
        Ok((encoder.write(&batch)?, batch.num_rows() as u64))
    });
    let end = futures::stream::once(async move {
        let encoder = finisher
            .lock()
            .take()
            .ok_or_else(|| KuraError::internal("Parquet COPY ended twice"))?;
        Ok((encoder.finish()?, 0))
    });
    // Row groups are written when full, so most batches produce no bytes yet; their rows are
    // counted all the same.
    let stream = rows.chain(end).boxed();
    Ok((start, stream))
}

/// The messages of each encoded batch, one stream item each; an error ends the stream.
fn one_message_per_item(
    batches: impl futures::Stream<Item = Result<Vec<(Bytes, u64)>>> + Send + 'static,
) -> impl futures::Stream<Item = Result<(Bytes, u64)>> + Send + 'static {
    batches.flat_map(|chunk| {
        futures::stream::iter(match chunk {
            Ok(messages) => messages.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    })
}
