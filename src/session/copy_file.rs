//! Server-side `COPY t FROM 'file'` and `COPY t | (query) TO 'file'` (administrators only,
//! checked in `security.rs`): the same decoders, encoders and transaction handling as COPY
//! FROM STDIN / TO STDOUT, with the server reading or writing the file in place of the client.
//!
//! Invariants: the path is absolute (the server's working directory means nothing to a
//! client); a file that cannot be opened fails the statement before anything is written; a
//! bad row aborts the whole COPY as with STDIN; memory stays bounded by reading and writing
//! in chunks.

use std::path::PathBuf;

use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Session, copy};
use crate::error::{KuraError, Result, sqlstate};
use crate::sql::Outcome;

/// Bytes read from the file per step of a COPY FROM.
const READ_CHUNK: usize = 256 * 1024;

/// The server file a COPY names, if it names one.
pub(super) fn server_file(target: &CopyTarget) -> Result<Option<PathBuf>> {
    let CopyTarget::File { filename } = target else {
        return Ok(None);
    };
    let path = PathBuf::from(filename);
    if !path.is_absolute() {
        return Err(KuraError::new(
            sqlstate::INVALID_NAME,
            format!("relative path not allowed for COPY to or from a file: \"{filename}\""),
        )
        .with_hint("give the file's absolute path on the server, or use psql's \\copy"));
    }
    Ok(Some(path))
}

fn file_error(verb: &str, path: &std::path::Path, e: &std::io::Error) -> KuraError {
    KuraError::io(
        format!("could not {verb} file \"{}\": {e}", path.display()),
        e,
    )
}

impl Session {
    pub(super) async fn copy_from_file(
        &mut self,
        source: &CopySource,
        options: &copy::CopyOptions,
        path: &std::path::Path,
    ) -> Result<Outcome> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| file_error("open", path, &e))?;
        self.copy_from(source, options)?;
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(read) => read,
                Err(e) => {
                    return Err(self.abort_copy_in(file_error("read", path, &e)));
                }
            };
            if read == 0 {
                return self.copy_done().await;
            }
            self.copy_data(&buffer[..read]).await?;
        }
    }

    pub(super) async fn copy_to_file(
        &mut self,
        source: &CopySource,
        options: &copy::CopyOptions,
        path: &std::path::Path,
    ) -> Result<Outcome> {
        let Outcome::CopyOut { mut stream, .. } = self.copy_to(source, options).await? else {
            return Err(KuraError::internal("COPY TO did not produce its data"));
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| file_error("open", path, &e))?;
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let (bytes, count) = chunk?;
            file.write_all(&bytes)
                .await
                .map_err(|e| file_error("write", path, &e))?;
            rows += count;
        }
        file.flush()
            .await
            .map_err(|e| file_error("write", path, &e))?;
        Ok(Outcome::counted("COPY", rows as usize))
    }
}
