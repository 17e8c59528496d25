//! Swap files: the row data of sealed chunks moved out of memory when the store is over
//! `/dataStore/storeMemoryLimit` (GridDB's swap-out), read back block by block when a scan or
//! a lookup needs it.
//!
//! A swapped chunk's rows live in one file of `<dataDir>/swap/`: consecutive blocks of at
//! most [`BLOCK_ROWS`] rows, each an Arrow IPC stream (zstd-compressed when
//! `/dataStore/storeCompressionMode` asks for it) with a CRC32C kept in memory. The version
//! stamps and serials of the chunk stay in memory; only column data moves.
//!
//! Invariants: swap files are scratch, never part of the durable state (the log and the
//! checkpoints are): the directory is emptied at startup, and a file is deleted when the last
//! chunk value that refers to it is dropped. A file is complete before any chunk refers to it,
//! and a block is only decoded after its checksum matches.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{KuraError, Result, sqlstate};
use crate::wal::record::{decode_batches, encode_batches};
use crate::wal::segment::io_error;

/// Rows per block: a point lookup in a swapped chunk reads one block.
pub const BLOCK_ROWS: usize = 4096;

/// Counters of swap activity since the server started (GridDB's swapRead/swapWrite figures).
#[derive(Debug, Default)]
pub struct SwapCounters {
    pub writes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub write_micros: AtomicU64,
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
    pub read_micros: AtomicU64,
}

/// A snapshot of [`SwapCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SwapStats {
    pub writes: u64,
    pub write_bytes: u64,
    pub write_millis: u64,
    pub reads: u64,
    pub read_bytes: u64,
    pub read_millis: u64,
}

/// The directory swap files go to, and how they are written.
#[derive(Debug)]
pub struct SwapDir {
    dir: PathBuf,
    compress: bool,
    next_file: AtomicU64,
    counters: Arc<SwapCounters>,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    first_row: usize,
    rows: usize,
    offset: u64,
    len: usize,
    crc: u32,
    compressed: bool,
}

/// The rows of one swapped chunk. Dropping the last reference deletes the file.
#[derive(Debug)]
pub struct SwappedRows {
    path: PathBuf,
    blocks: Vec<Block>,
    bytes: u64,
    counters: Arc<SwapCounters>,
}

impl SwapDir {
    /// Opens `dir` (created if missing) and deletes what an earlier run left in it.
    pub fn open(dir: &Path, compress: bool) -> Result<SwapDir> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let path = entry.map_err(|e| io_error(dir, e))?.path();
            if path.is_file() {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        Ok(SwapDir {
            dir: dir.to_path_buf(),
            compress,
            next_file: AtomicU64::new(1),
            counters: Arc::new(SwapCounters::default()),
        })
    }

    /// A new file for scratch data (a Parquet upload), already unlinked: it disappears when
    /// closed, and a crash leaves nothing that the next start does not delete.
    pub fn scratch_file(&self) -> Result<File> {
        let number = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{number:012}.scratch"));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| swap_error(&path, e))?;
        std::fs::remove_file(&path).map_err(|e| swap_error(&path, e))?;
        Ok(file)
    }

    pub fn stats(&self) -> SwapStats {
        let c = &self.counters;
        SwapStats {
            writes: c.writes.load(Ordering::Relaxed),
            write_bytes: c.write_bytes.load(Ordering::Relaxed),
            write_millis: c.write_micros.load(Ordering::Relaxed) / 1000,
            reads: c.reads.load(Ordering::Relaxed),
            read_bytes: c.read_bytes.load(Ordering::Relaxed),
            read_millis: c.read_micros.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Writes `segments` (a chunk's rows in order) to a new swap file.
    pub fn write(&self, segments: &[RecordBatch]) -> Result<Arc<SwappedRows>> {
        let started = Instant::now();
        let number = self.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{number:012}.swap"));
        let file = File::create(&path).map_err(|e| swap_error(&path, e))?;
        // Owned from here on, so a failed write deletes the partial file.
        let mut rows = SwappedRows {
            path,
            blocks: Vec::new(),
            bytes: 0,
            counters: self.counters.clone(),
        };
        let mut first_row = 0;
        for segment in segments {
            let mut start = 0;
            while start < segment.num_rows() {
                let n = BLOCK_ROWS.min(segment.num_rows() - start);
                let ipc = encode_batches(&[segment.slice(start, n)])?;
                let (body, compressed) = if self.compress {
                    let packed = zstd::bulk::compress(&ipc, 1).map_err(|e| {
                        KuraError::internal(format!("could not compress swapped rows: {e}"))
                    })?;
                    (packed, true)
                } else {
                    (ipc, false)
                };
                file.write_all_at(&body, rows.bytes)
                    .map_err(|e| swap_error(&rows.path, e))?;
                rows.blocks.push(Block {
                    first_row,
                    rows: n,
                    offset: rows.bytes,
                    len: body.len(),
                    crc: crc32c::crc32c(&body),
                    compressed,
                });
                rows.bytes += body.len() as u64;
                first_row += n;
                start += n;
            }
        }
        let c = &self.counters;
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.write_bytes.fetch_add(rows.bytes, Ordering::Relaxed);
        c.write_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(Arc::new(rows))
    }
}

impl SwappedRows {
    /// Bytes the rows take in the file.
    pub fn file_bytes(&self) -> u64 {
        self.bytes
    }

    /// Every block, in row order.
    pub fn read_all(&self) -> Result<Vec<RecordBatch>> {
        let file = self.open()?;
        self.blocks.iter().map(|b| self.read(&file, b)).collect()
    }

    /// The blocks holding any of `offsets` (ascending), each with the offset of its first row.
    pub fn read_holding(&self, offsets: &[usize]) -> Result<Vec<(usize, RecordBatch)>> {
        let file = self.open()?;
        let mut out = Vec::new();
        for block in &self.blocks {
            let end = block.first_row + block.rows;
            let from = offsets.partition_point(|o| *o < block.first_row);
            if offsets.get(from).is_some_and(|o| *o < end) {
                out.push((block.first_row, self.read(&file, block)?));
            }
        }
        Ok(out)
    }

    /// The block holding row `offset` and the row's position in it.
    pub fn read_row(&self, offset: usize) -> Result<Option<(RecordBatch, usize)>> {
        let index = self.blocks.partition_point(|b| b.first_row <= offset);
        let Some(block) = index.checked_sub(1).map(|i| &self.blocks[i]) else {
            return Ok(None);
        };
        if offset >= block.first_row + block.rows {
            return Ok(None);
        }
        let batch = self.read(&self.open()?, block)?;
        Ok(Some((batch, offset - block.first_row)))
    }

    fn open(&self) -> Result<File> {
        File::open(&self.path).map_err(|e| swap_error(&self.path, e))
    }

    fn read(&self, file: &File, block: &Block) -> Result<RecordBatch> {
        let started = Instant::now();
        let mut body = vec![0u8; block.len];
        file.read_exact_at(&mut body, block.offset)
            .map_err(|e| swap_error(&self.path, e))?;
        if crc32c::crc32c(&body) != block.crc {
            return Err(corrupt(&self.path, "checksum mismatch"));
        }
        let ipc = if block.compressed {
            zstd::stream::decode_all(body.as_slice())
                .map_err(|e| corrupt(&self.path, &format!("cannot decompress: {e}")))?
        } else {
            body
        };
        let mut batches = decode_batches(&ipc)?;
        let batch = match (batches.pop(), batches.is_empty()) {
            (Some(batch), true) if batch.num_rows() == block.rows => batch,
            _ => return Err(corrupt(&self.path, "unexpected block contents")),
        };
        let c = &self.counters;
        c.reads.fetch_add(1, Ordering::Relaxed);
        c.read_bytes.fetch_add(block.len as u64, Ordering::Relaxed);
        c.read_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(batch)
    }
}

impl Drop for SwappedRows {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not delete swap file {}: {e}", self.path.display());
        }
    }
}

fn swap_error(path: &Path, e: std::io::Error) -> KuraError {
    let error = io_error(path, e);
    KuraError::new(error.code, format!("swap file: {}", error.message))
}

fn corrupt(path: &Path, why: &str) -> KuraError {
    KuraError::new(
        sqlstate::DATA_CORRUPTED,
        format!("swap file {} is damaged: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let ids = Int64Array::from_iter_values(range.clone());
        let texts = StringArray::from_iter_values(range.map(|i| format!("row {i}")));
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(texts)]).unwrap()
    }

    #[test]
    fn swapped_rows_read_back_whole_and_by_row() {
        let dir = tempfile::tempdir().unwrap();
        for compress in [false, true] {
            let swap = SwapDir::open(dir.path(), compress).unwrap();
            let segments = [batch(0..5000), batch(5000..9000)];
            let rows = swap.write(&segments).unwrap();
            let all = rows.read_all().unwrap();
            assert_eq!(all.iter().map(RecordBatch::num_rows).sum::<usize>(), 9000);
            assert!(all.iter().all(|b| b.num_rows() <= BLOCK_ROWS));
            let (block, at) = rows.read_row(6123).unwrap().unwrap();
            let ids = block
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(ids.value(at), 6123);
            assert!(rows.read_row(9000).unwrap().is_none());
            let holding = rows.read_holding(&[3, 4100, 4101]).unwrap();
            let starts: Vec<usize> = holding.iter().map(|(start, _)| *start).collect();
            assert_eq!(starts, vec![0, BLOCK_ROWS]);
            assert_eq!(swap.stats().writes, 1);
        }
    }

    #[test]
    fn dropping_the_rows_deletes_the_file_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let swap = SwapDir::open(dir.path(), false).unwrap();
        let rows = swap.write(&[batch(0..10)]).unwrap();
        let path = rows.path.clone();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"garbage", 8)
            .unwrap();
        let error = rows.read_all().unwrap_err();
        assert_eq!(error.code, sqlstate::DATA_CORRUPTED);
        drop(rows);
        assert!(!path.exists());
    }

    #[test]
    fn opening_clears_files_left_by_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000000000001.swap"), b"old").unwrap();
        SwapDir::open(dir.path(), false).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
