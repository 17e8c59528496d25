//! Backup files on disk: every file of a backup is a zstd stream whose stored bytes are
//! digested with SHA-256 as they are written, and read back through the same two layers.
//!
//! Invariants: a file appears under its final name only once it is complete and fsynced;
//! the digest recorded for a file is of exactly the bytes written to it.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::digest::{Context, SHA256};

use super::info::{FileEntry, damaged};
use crate::checkpoint::manifest::{publish, temporary_name};
use crate::error::Result;
use crate::wal::segment::io_error;

/// zstd level for backup files: fast, and still a good ratio on columnar data.
const LEVEL: i32 = 3;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Digests and counts what passes through to a file.
pub struct DigestWriter {
    file: File,
    digest: Context,
    written: u64,
}

impl DigestWriter {
    pub fn new(file: File) -> Self {
        Self {
            file,
            digest: Context::new(&SHA256),
            written: 0,
        }
    }

    /// The file (to fsync it), the bytes written and their SHA-256 (hex).
    pub fn finish(self) -> (File, u64, String) {
        (self.file, self.written, hex(self.digest.finish().as_ref()))
    }
}

impl Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.digest.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Counts the bytes read through it into a shared progress counter.
struct Counted<'a, R> {
    inner: R,
    progress: &'a AtomicU64,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        self.read += n as u64;
        Ok(n)
    }
}

/// Writes what `source` yields, compressed, to `dir/<path>` and describes the file;
/// `progress` grows by the bytes read.
pub fn write_compressed(
    dir: &Path,
    path: &str,
    source: impl Read,
    progress: &AtomicU64,
) -> Result<FileEntry> {
    let target = path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    let tmp = temporary_name(&target);
    let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
    let sink = DigestWriter::new(file);
    let mut source = Counted {
        inner: source,
        progress,
        read: 0,
    };
    let io = |e| io_error(&tmp, e);
    let mut encoder = zstd::stream::write::Encoder::new(sink, LEVEL).map_err(io)?;
    std::io::copy(&mut source, &mut encoder).map_err(io)?;
    let (file, bytes, sha256) = encoder.finish().map_err(io)?.finish();
    file.sync_all().map_err(io)?;
    publish(&tmp, &target)?;
    Ok(FileEntry {
        path: path.to_string(),
        bytes,
        raw_bytes: source.read,
        sha256,
        lsns: None,
    })
}

/// The size of a file and the SHA-256 (hex) of its bytes.
pub fn digest_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut digest = Context::new(&SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| io_error(path, e))?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex(digest.finish().as_ref())))
}

/// Checks a stored file's size and digest against its entry.
pub fn check_stored(path: &Path, entry: &FileEntry) -> Result<()> {
    let (len, sha256) = digest_file(path)?;
    if len != entry.bytes {
        return Err(damaged(
            path,
            &format!("{len} bytes where {} were written", entry.bytes),
        ));
    }
    if sha256 != entry.sha256 {
        return Err(damaged(path, "its SHA-256 digest does not match"));
    }
    Ok(())
}

/// A reader of a stored file's decompressed content.
pub fn open_decompressed(path: &Path) -> Result<impl Read> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| io_error(path, e))
}

/// A stored file's whole decompressed content.
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    open_decompressed(path)?
        .read_to_end(&mut out)
        .map_err(|e| damaged(path, &format!("cannot decompress: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_damage_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let progress = AtomicU64::new(0);
        let content = b"kura ".repeat(10_000);
        let entry = write_compressed(dir.path(), "a/b.zst", &content[..], &progress).unwrap();
        assert_eq!(entry.raw_bytes, content.len() as u64);
        assert_eq!(progress.load(Ordering::Relaxed), content.len() as u64);
        assert!(entry.bytes < entry.raw_bytes);
        let path = dir.path().join("a").join("b.zst");
        check_stored(&path, &entry).unwrap();
        assert_eq!(read_decompressed(&path).unwrap(), content);
        let mut stored = std::fs::read(&path).unwrap();
        stored[5] ^= 0x40;
        std::fs::write(&path, &stored).unwrap();
        assert!(check_stored(&path, &entry).is_err());
    }
}
