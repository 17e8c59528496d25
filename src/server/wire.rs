//! Turning Kura outcomes and errors into PostgreSQL protocol messages: row descriptions and
//! data rows (text or binary per column, through `arrow-pg`), command tags, notices and
//! error responses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::Schema;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::response::NoticeResponse;

use crate::error::KuraError;
use crate::session::copy::{CopyOutStream, CopyStart};
use crate::sql::Outcome;

pub fn error_info(e: &KuraError) -> ErrorInfo {
    let severity = if e.is_fatal() { "FATAL" } else { "ERROR" };
    let mut info = ErrorInfo::new(severity.to_string(), e.code.to_string(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.where_context = e.context.clone();
    info
}

/// `e` sent with severity FATAL: the connection ends after it.
pub fn fatal_info(e: &KuraError) -> ErrorInfo {
    let mut info = error_info(e);
    info.severity = "FATAL".to_string();
    info
}

pub fn to_pgwire(e: KuraError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

pub fn notice(message: &str) -> PgWireBackendMessage {
    let info = ErrorInfo::new(
        "NOTICE".to_string(),
        "00000".to_string(),
        message.to_string(),
    );
    PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))
}

pub fn fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_schema_to_pg_fields(schema, format, None)?;
    Ok(schema
        .fields()
        .iter()
        .zip(fields)
        .map(|(field, info)| super::described::describe(field, info))
        .collect())
}

/// Sends a COPY TO's data (CopyOutResponse, the CopyData messages, CopyDone) and returns the
/// number of rows it held, which the caller's CommandComplete reports. pgwire's own sender
/// would count messages, and a Parquet message holds many rows. An error ends the COPY with
/// an ErrorResponse (the caller's), as in PostgreSQL, and raises `failed`.
async fn send_copy_out<C>(
    client: &mut C,
    start: CopyStart,
    mut stream: CopyOutStream,
    failed: &AtomicBool,
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let formats = vec![i16::from(start.format); start.columns];
    let columns = i16::try_from(start.columns).unwrap_or(i16::MAX);
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            start.format,
            columns,
            formats,
        )))
        .await?;
    let mut rows = 0u64;
    while let Some(item) = stream.next().await {
        match item {
            Ok((bytes, count)) => {
                rows += count;
                if !bytes.is_empty() {
                    client
                        .feed(PgWireBackendMessage::CopyData(CopyData::new(bytes)))
                        .await?;
                }
            }
            Err(e) => {
                failed.store(true, Ordering::Release);
                return Err(to_pgwire(e));
            }
        }
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(usize::try_from(rows).unwrap_or(usize::MAX))
}

/// The pgwire response for an outcome; notices of the outcome are fed to `client` first.
/// Text results show `timestamptz` values in `zone`, the session time zone.
/// A failure while the rows stream raises `failed` so the session can fail its transaction.
pub async fn respond<C>(
    client: &mut C,
    outcome: Outcome,
    format: &Format,
    failed: Arc<AtomicBool>,
    zone: Tz,
) -> PgWireResult<Response>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match outcome {
        Outcome::Rows {
            schema,
            stream,
            command,
        } => {
            let fields = Arc::new(fields(&schema, format)?);
            let row_fields = Arc::new(super::described::for_encoding(&fields));
            let reported = schema.clone();
            let rows = stream
                .map(move |batch| match batch {
                    Ok(batch) => {
                        match super::text::to_pg_text(batch, &reported, &row_fields, &zone) {
                            Ok(batch) => futures::stream::iter(
                                encode_recordbatch(row_fields.clone(), batch).collect::<Vec<_>>(),
                            ),
                            Err(e) => {
                                failed.store(true, Ordering::Release);
                                futures::stream::iter(vec![Err(to_pgwire(e))])
                            }
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Release);
                        let k = KuraError::from(e);
                        futures::stream::iter(vec![Err(to_pgwire(k))])
                    }
                })
                .flatten();
            let mut response = QueryResponse::new(fields, rows);
            response.set_command_tag(&command);
            Ok(Response::Query(response))
        }
        Outcome::CopyIn(start) => Ok(Response::CopyIn(CopyResponse::new(
            start.format,
            start.columns,
            futures::stream::empty(),
        ))),
        Outcome::CopyOut { start, stream } => {
            let rows = send_copy_out(client, start, stream, &failed).await?;
            Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
        }
        Outcome::Done {
            command,
            rows,
            notices,
        } => {
            for n in &notices {
                client.feed(notice(n)).await?;
            }
            let mut tag = Tag::new(&command);
            if let Some(rows) = rows {
                tag = tag.with_rows(rows);
            }
            Ok(match command.as_str() {
                "BEGIN" => Response::TransactionStart(tag),
                "COMMIT" | "ROLLBACK" if notices.is_empty() => Response::TransactionEnd(tag),
                _ => Response::Execution(tag),
            })
        }
    }
}
