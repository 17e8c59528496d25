//! Checkpoint data files: the rows of one data partition as of one checkpoint.
//!
//! Layout: a 16-byte header — magic `KURAPART`, format version (u32), flags (u32; bit 0 =
//! body compressed with zstd) — then the body, an Arrow IPC stream whose last column,
//! `__kura_serial` (UInt64), holds each row's serial, then a 12-byte trailer: CRC32C of the
//! body (u32) and the body length (u64).
//!
//! Invariants: files are written to a temporary name, fsynced and renamed, so a file with the
//! final name is complete; a file is only read back after its length and checksum match.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{KuraError, Result};
use crate::storage::chunk::Serial;
use crate::wal::record::FORMAT_VERSION;
use crate::wal::segment::io_error;

const MAGIC: &[u8; 8] = b"KURAPART";
const HEADER_LEN: usize = 16;
const TRAILER_LEN: usize = 12;
const FLAG_ZSTD: u32 = 1;
pub const SERIAL_COLUMN: &str = "__kura_serial";

/// What was written: size on disk and checksum of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    pub rows: u64,
}

/// Counts and checksums the bytes written through it.
struct ChecksumWriter<W: Write> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `pieces` (batches of `schema` with their serials) to `path` (a temporary name the
/// caller renames), fsynced.
pub fn write_partition_file(
    path: &Path,
    schema: &Arc<Schema>,
    pieces: impl IntoIterator<Item = Result<(RecordBatch, Vec<Serial>)>>,
    compress: bool,
) -> Result<Written> {
    let io = |e: std::io::Error| io_error(path, e);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
    let flags = if compress { FLAG_ZSTD } else { 0 };
    out.write_all(&flags.to_le_bytes()).map_err(io)?;
    let mut body = ChecksumWriter {
        inner: out,
        crc: 0,
        len: 0,
    };
    let stored_schema = with_serial_field(schema);
    let rows = if compress {
        let mut encoder = zstd::stream::Encoder::new(&mut body, 3).map_err(io)?;
        let rows = write_stream(&mut encoder, &stored_schema, pieces)?;
        encoder.finish().map_err(io)?;
        rows
    } else {
        write_stream(&mut body, &stored_schema, pieces)?
    };
    let (crc, len, mut out) = (body.crc, body.len, body.inner);
    out.write_all(&crc.to_le_bytes()).map_err(io)?;
    out.write_all(&len.to_le_bytes()).map_err(io)?;
    let file = out
        .into_inner()
        .map_err(|e| io_error(path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(Written {
        bytes: HEADER_LEN as u64 + len + TRAILER_LEN as u64,
        rows,
    })
}

fn with_serial_field(schema: &Arc<Schema>) -> Arc<Schema> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(SERIAL_COLUMN, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

fn write_stream(
    out: &mut impl Write,
    schema: &Arc<Schema>,
    pieces: impl IntoIterator<Item = Result<(RecordBatch, Vec<Serial>)>>,
) -> Result<u64> {
    let mut writer = StreamWriter::try_new(out, schema)?;
    let mut rows = 0;
    for piece in pieces {
        let (batch, serials) = piece?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(serials)));
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        rows += batch.num_rows() as u64;
    }
    writer.finish()?;
    Ok(rows)
}

/// Checks a partition file, then hands its batches (without the serial column) and their
/// serials to `visit` one at a time; the file is read twice and never held whole in memory.
pub fn read_partition_pieces(
    path: &Path,
    mut visit: impl FnMut(RecordBatch, Vec<Serial>) -> Result<()>,
) -> Result<()> {
    let layout = verify_partition_file(path)?;
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    file.seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(|e| io_error(path, e))?;
    let body = BufReader::with_capacity(1 << 20, file).take(layout.body_len);
    let reader: Box<dyn Read> = if layout.compressed {
        Box::new(
            zstd::stream::Decoder::new(body)
                .map_err(|e| bad(path, &format!("cannot decompress: {e}")))?,
        )
    } else {
        Box::new(body)
    };
    let batches = StreamReader::try_new(reader, None)
        .map_err(|e| bad(path, &format!("bad Arrow IPC stream: {e}")))?;
    for batch in batches {
        let mut batch = batch.map_err(|e| bad(path, &format!("bad Arrow IPC batch: {e}")))?;
        let last = batch
            .num_columns()
            .checked_sub(1)
            .ok_or_else(|| bad(path, "no columns"))?;
        let serials = batch
            .column(last)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .filter(|a| a.null_count() == 0)
            .ok_or_else(|| bad(path, "serial column missing"))?
            .values()
            .to_vec();
        batch.remove_column(last);
        visit(batch, serials)?;
    }
    Ok(())
}

/// Where a verified partition file's body is and how it is stored.
#[derive(Debug, Clone, Copy)]
pub struct FileLayout {
    pub body_len: u64,
    pub compressed: bool,
}

/// Checks the header, length and checksum of a partition file, reading it in pieces.
pub fn verify_partition_file(path: &Path) -> Result<FileLayout> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    verify_partition_stream(file, file_len, path)
}

/// [`verify_partition_file`] for the `file_len` bytes `reader` yields (`path` names them in
/// errors): a backup's copy is checked as it is decompressed.
pub fn verify_partition_stream(
    reader: impl Read,
    file_len: u64,
    path: &Path,
) -> Result<FileLayout> {
    let mut header = [0u8; HEADER_LEN];
    if file_len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(bad(path, "not a Kura checkpoint data file"));
    }
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    reader
        .read_exact(&mut header)
        .map_err(|e| io_error(path, e))?;
    if &header[..8] != MAGIC {
        return Err(bad(path, "not a Kura checkpoint data file"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(bad(path, &format!("format version {version}")));
    }
    let flags = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let body_len = file_len - (HEADER_LEN + TRAILER_LEN) as u64;
    let mut crc = 0u32;
    let mut left = body_len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        reader
            .read_exact(&mut buf[..n])
            .map_err(|e| io_error(path, e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; TRAILER_LEN];
    reader
        .read_exact(&mut trailer)
        .map_err(|e| io_error(path, e))?;
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let mut len = [0u8; 8];
    len.copy_from_slice(&trailer[4..]);
    if u64::from_le_bytes(len) != body_len {
        return Err(bad(path, "length mismatch (truncated file)"));
    }
    if crc != stored_crc {
        return Err(bad(path, "checksum mismatch"));
    }
    Ok(FileLayout {
        body_len,
        compressed: flags & FLAG_ZSTD != 0,
    })
}

fn bad(path: &Path, why: &str) -> KuraError {
    KuraError::new(
        crate::error::sqlstate::IO_ERROR,
        format!("checkpoint file {} is damaged: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;

    fn piece(values: std::ops::Range<i32>) -> (RecordBatch, Vec<Serial>) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int32, true)]));
        let serials = values.clone().map(|v| v as u64 * 2).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int32Array::from_iter_values(values)) as ArrayRef],
        )
        .unwrap();
        (batch, serials)
    }

    fn read_partition_file(path: &Path) -> Result<Vec<(RecordBatch, Vec<Serial>)>> {
        let mut out = Vec::new();
        read_partition_pieces(path, |batch, serials| {
            out.push((batch, serials));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            let path = dir.path().join(format!("p{compress}"));
            let pieces = vec![piece(0..1000), piece(1000..1500)];
            let schema = pieces[0].0.schema();
            let written =
                write_partition_file(&path, &schema, pieces.clone().into_iter().map(Ok), compress)
                    .unwrap();
            assert_eq!(written.rows, 1500);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), written.bytes);
            let back = read_partition_file(&path).unwrap();
            assert_eq!(back.len(), 2);
            assert_eq!(back[1].0, pieces[1].0);
            assert_eq!(back[1].1, pieces[1].1);
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_partition_file(&path).is_err());
        }
    }
}
