//! COPY in Parquet (`COPY ... (FORMAT parquet)`, as DuckDB spells it): [`ParquetEncoder`]
//! turns a query's record batches into one Parquet file streamed as CopyData chunks, and
//! [`ParquetDecoder`] reads a Parquet file sent as COPY data back into rows of text fields, so
//! that COPY FROM converts, checks and reports them exactly as it does for text and CSV.
//!
//! Invariants:
//! - The encoder keeps at most one row group in memory ([`ROW_GROUP_ROWS`] rows); every byte
//!   it has produced leaves with the next chunk, and the chunks concatenated are one valid
//!   Parquet file whose Arrow schema is the query's (types round-trip exactly).
//! - A Parquet file's footer comes last, so the decoder keeps the whole input until the end
//!   of the COPY data: in a scratch file the caller provides (unlinked, so it never outlives
//!   the COPY), else in memory up to [`MAX_MEMORY_INPUT_BYTES`] (54000 beyond). It then
//!   decodes one batch at a time. A row's `line` is its number in the file, from 1.
//! - Input that is not Parquet, or whose column count differs from the COPY's, is 22P04;
//!   never a panic.

use bytes::{Bytes, BytesMut};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::reader::ChunkReader;
use parking_lot::Mutex;

use super::format::{RowDecoder, TextRow};
use crate::error::{KuraError, Result, sqlstate};
use crate::server::text::text_values;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use std::fs::File;
use std::io::{BufWriter, Write};

/// Rows per Parquet row group written by COPY TO.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The largest Parquet input held in memory, when there is no scratch file.
pub const MAX_MEMORY_INPUT_BYTES: usize = 256 << 20;

/// Rows decoded from the file at a time.
const READ_BATCH_ROWS: usize = 8192;

fn bad_parquet(message: impl std::fmt::Display) -> KuraError {
    KuraError::new(
        sqlstate::BAD_COPY_FILE_FORMAT,
        format!("invalid Parquet data: {message}"),
    )
}

fn scratch_error(e: &std::io::Error) -> KuraError {
    KuraError::new(
        sqlstate::IO_ERROR,
        format!("cannot keep the Parquet COPY data in a scratch file: {e}"),
    )
}

/// Binary columns of other Arrow layouts (from files other tools wrote) as plain Binary,
/// whose text form is bytea's `\x...`.
fn plain_binary(column: &ArrayRef) -> Result<ArrayRef> {
    Ok(match column.data_type() {
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            cast(column, &DataType::Binary)?
        }
        _ => column.clone(),
    })
}

/// Writes record batches as one Parquet file, handing out the bytes as they are produced.
pub struct ParquetEncoder {
    writer: ArrowWriter<Vec<u8>>,
}

impl ParquetEncoder {
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties))
            .map_err(|e| KuraError::internal(format!("cannot start a Parquet file: {e}")))?;
        Ok(Self { writer })
    }

    /// Adds `batch`; returns the bytes of the file completed so far (often none: a row group
    /// is written when it is full).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Bytes> {
        self.writer
            .write(batch)
            .map_err(|e| KuraError::internal(format!("cannot write Parquet: {e}")))?;
        Ok(Bytes::from(std::mem::take(self.writer.inner_mut())))
    }

    /// Writes the last row group and the footer; returns the remaining bytes.
    pub fn finish(self) -> Result<Bytes> {
        let rest = self
            .writer
            .into_inner()
            .map_err(|e| KuraError::internal(format!("cannot finish Parquet: {e}")))?;
        Ok(Bytes::from(rest))
    }
}

/// Where the uploaded file waits for its end.
enum Upload {
    Memory(BytesMut),
    File(BufWriter<File>),
}

/// Reads a Parquet file sent as COPY data into rows of text fields.
pub struct ParquetDecoder {
    input: Option<Upload>,
    expected_columns: usize,
    finished: bool,
    /// Behind a lock only to make the decoder `Sync` (the reader is not); never contended.
    reader: Option<Mutex<ParquetRecordBatchReader>>,
    /// The current batch, column by column, in text form.
    texts: Vec<Vec<Option<String>>>,
    next_in_batch: usize,
    line: u64,
    done: bool,
    error: Option<KuraError>,
    zone: Tz,
}

impl ParquetDecoder {
    /// A decoder for a COPY of `expected_columns` columns that keeps the upload in `scratch`
    /// (an unlinked file), or in memory without one.
    pub fn new(expected_columns: usize, scratch: Option<File>) -> Self {
        let input = match scratch {
            Some(file) => Upload::File(BufWriter::with_capacity(1 << 20, file)),
            None => Upload::Memory(BytesMut::new()),
        };
        Self {
            input: Some(input),
            expected_columns,
            finished: false,
            reader: None,
            texts: Vec::new(),
            next_in_batch: 0,
            line: 0,
            done: false,
            error: None,
            // Times with a zone are read back with their offset, so any zone would do.
            zone: "+00:00".parse().expect("a fixed offset parses"),
        }
    }

    fn open(&mut self) -> Result<()> {
        let reader = match self.input.take() {
            None => return Err(KuraError::internal("Parquet COPY data read twice")),
            Some(Upload::Memory(data)) => {
                if data.is_empty() {
                    return Err(bad_parquet("the COPY data is empty"));
                }
                self.reader_of(data.freeze())?
            }
            Some(Upload::File(writer)) => {
                let file = writer.into_inner().map_err(|e| scratch_error(e.error()))?;
                let len = file.metadata().map_err(|e| scratch_error(&e))?.len();
                if len == 0 {
                    return Err(bad_parquet("the COPY data is empty"));
                }
                self.reader_of(file)?
            }
        };
        self.reader = Some(Mutex::new(reader));
        Ok(())
    }

    /// A reader of the file in `source`, once its column count is checked.
    fn reader_of<T: ChunkReader + 'static>(&self, source: T) -> Result<ParquetRecordBatchReader> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(bad_parquet)?;
        let columns = builder.schema().fields().len();
        if columns != self.expected_columns {
            return Err(KuraError::new(
                sqlstate::BAD_COPY_FILE_FORMAT,
                format!(
                    "the Parquet data has {columns} columns, the COPY expects {}",
                    self.expected_columns
                ),
            ));
        }
        builder
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(bad_parquet)
    }

    /// Moves to the next batch with rows; false at the end of the file.
    fn next_batch(&mut self) -> Result<bool> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(false);
        };
        let reader = reader.get_mut();
        loop {
            let Some(batch) = reader.next() else {
                return Ok(false);
            };
            let batch = batch.map_err(bad_parquet)?;
            if batch.num_rows() == 0 {
                continue;
            }
            self.texts = batch
                .columns()
                .iter()
                .map(|column| text_values(&plain_binary(column)?, None, &self.zone))
                .collect::<Result<_>>()?;
            self.next_in_batch = 0;
            return Ok(true);
        }
    }

    fn next_row_inner(&mut self) -> Result<Option<TextRow>> {
        if self.done || !self.finished {
            return Ok(None);
        }
        if self.reader.is_none() {
            self.open()?;
        }
        let rows_left = self.texts.first().map_or(0, Vec::len) > self.next_in_batch;
        if !rows_left && !self.next_batch()? {
            self.done = true;
            self.reader = None;
            return Ok(None);
        }
        let row = self.next_in_batch;
        self.next_in_batch += 1;
        self.line += 1;
        let fields = self
            .texts
            .iter_mut()
            .map(|column| column[row].take())
            .collect();
        Ok(Some(TextRow {
            line: self.line,
            first_line: self.line,
            fields,
        }))
    }
}

impl RowDecoder for ParquetDecoder {
    type Field = String;

    fn feed(&mut self, chunk: &[u8]) {
        if self.error.is_some() || self.finished {
            return;
        }
        let failure = match &mut self.input {
            Some(Upload::Memory(data)) if data.len() + chunk.len() > MAX_MEMORY_INPUT_BYTES => {
                Some(KuraError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "Parquet COPY data larger than {} MiB cannot be held in memory",
                        MAX_MEMORY_INPUT_BYTES >> 20
                    ),
                ))
            }
            Some(Upload::Memory(data)) => {
                data.extend_from_slice(chunk);
                None
            }
            Some(Upload::File(file)) => file.write_all(chunk).err().map(|e| scratch_error(&e)),
            None => None,
        };
        if failure.is_some() {
            self.error = failure;
            self.input = None;
        }
    }

    fn finish(&mut self) {
        self.finished = true;
    }

    fn next_row(&mut self) -> Result<Option<TextRow>> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let row = self.next_row_inner();
        if let Err(error) = &row {
            self.error = Some(error.clone());
        }
        row
    }

    fn line(&self) -> u64 {
        self.line
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, BinaryArray, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("data", DataType::Binary, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("a,\"b\""), None, Some("")])),
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), None, None])),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn encode(batches: &[RecordBatch]) -> Vec<Bytes> {
        let mut encoder = ParquetEncoder::new(batches[0].schema()).unwrap();
        let mut chunks: Vec<Bytes> = batches.iter().map(|b| encoder.write(b).unwrap()).collect();
        chunks.push(encoder.finish().unwrap());
        chunks
    }

    fn decode(chunks: &[Bytes], columns: usize) -> Result<Vec<TextRow>> {
        let in_memory = decode_with(chunks, columns, None);
        let scratch = tempfile::tempfile().unwrap();
        let in_file = decode_with(chunks, columns, Some(scratch));
        assert_eq!(in_memory, in_file);
        in_memory
    }

    fn decode_with(
        chunks: &[Bytes],
        columns: usize,
        scratch: Option<File>,
    ) -> Result<Vec<TextRow>> {
        let mut decoder = ParquetDecoder::new(columns, scratch);
        for chunk in chunks {
            decoder.feed(chunk);
            assert!(decoder.next_row()?.is_none(), "no rows before the end");
        }
        decoder.finish();
        let mut rows = Vec::new();
        while let Some(row) = decoder.next_row()? {
            rows.push(row);
        }
        assert!(decoder.is_done());
        Ok(rows)
    }

    #[test]
    fn rows_come_back_as_their_text_forms_numbered_from_one() {
        let rows = decode(&encode(&[batch(), batch()]), 3).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[3].line, 4);
        assert_eq!(
            rows[0].fields,
            vec![
                Some("1".into()),
                Some("a,\"b\"".into()),
                Some("\\x00ff".into())
            ]
        );
        assert_eq!(rows[1].fields, vec![Some("2".into()), None, None]);
        assert_eq!(rows[2].fields[1], Some(String::new()));
    }

    #[test]
    fn wrong_column_count_and_garbage_are_22p04() {
        let error = decode(&encode(&[batch()]), 2).unwrap_err();
        assert_eq!(error.code, sqlstate::BAD_COPY_FILE_FORMAT);
        assert!(error.message.contains("3 columns"), "{}", error.message);
        let error = decode(&[Bytes::from_static(b"id,name\n1,a\n")], 2).unwrap_err();
        assert_eq!(error.code, sqlstate::BAD_COPY_FILE_FORMAT);
        let error = decode(&[], 2).unwrap_err();
        assert_eq!(error.code, sqlstate::BAD_COPY_FILE_FORMAT);
    }

    #[test]
    fn binary_columns_of_other_layouts_read_as_bytea() {
        use datafusion::arrow::array::{FixedSizeBinaryArray, LargeBinaryArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("large", DataType::LargeBinary, true),
            Field::new("fixed", DataType::FixedSizeBinary(2), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(LargeBinaryArray::from(vec![Some(&b"\x01\x02"[..]), None])),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(b"\xab\xcd".to_vec()), None].into_iter(),
                    2,
                )
                .unwrap(),
            ),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let rows = decode(&encode(&[batch]), 2).unwrap();
        assert_eq!(
            rows[0].fields,
            vec![Some("\\x0102".into()), Some("\\xabcd".into())]
        );
        assert_eq!(rows[1].fields, vec![None, None]);
    }

    #[test]
    fn a_file_with_no_rows_decodes_to_none() {
        let empty = RecordBatch::new_empty(batch().schema());
        assert!(decode(&encode(&[empty]), 3).unwrap().is_empty());
    }
}
