//! `CALL kura_backup('name', 'mode')` (and `BACKUP DATABASE TO 'name' MODE mode`): takes an
//! online backup through the server's backup manager and answers one row describing it.
//! Administrators only (checked with the other privileges before the statement runs).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::Function;

use super::Session;
use crate::backup::info::{BackupInfo, rfc3339_micros};
use crate::backup::names::Mode;
use crate::error::{KuraError, Result, sqlstate};
use crate::sql::Outcome;

/// The row a backup answers.
pub fn backup_schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("backup_name", DataType::Utf8, false),
        Field::new("backup_data", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("checkpoint_lsn", DataType::Int64, false),
        Field::new("end_lsn", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("start_time", time.clone(), true),
        Field::new("end_time", time, true),
    ]))
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn backup_row(info: &BackupInfo) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![info.set.clone()])),
        Arc::new(StringArray::from(vec![info.data.clone()])),
        Arc::new(StringArray::from(vec![info.mode.to_string()])),
        Arc::new(StringArray::from(vec![info.status.as_str()])),
        Arc::new(Int64Array::from(vec![int(info.checkpoint_lsn)])),
        Arc::new(Int64Array::from(vec![int(info.end_lsn)])),
        Arc::new(Int64Array::from(vec![info.files.len() as i64])),
        Arc::new(Int64Array::from(vec![int(info.stored_bytes())])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![rfc3339_micros(&info.start_time)])
                .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                info.end_time.as_deref().and_then(rfc3339_micros),
            ])
            .with_timezone("UTC"),
        ),
    ];
    Ok(RecordBatch::try_new(backup_schema(), columns)?)
}

impl Session {
    pub(super) async fn backup(
        &mut self,
        call: &Function,
        params: &ParamValues,
    ) -> Result<Outcome> {
        let args = super::functions::call_text_args(call, Some(params))?;
        let (name, mode) = match &args[..] {
            [Some(name)] => (name.clone(), Mode::Full),
            [Some(name), Some(mode)] => (name.clone(), Mode::parse(mode)?),
            _ => {
                return Err(KuraError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "kura_backup takes (name text [, mode text]), neither null",
                ));
            }
        };
        let engine = self.engine().clone();
        let backups = engine.backups().cloned().ok_or_else(|| {
            KuraError::unsupported("backups need a server started on a data directory")
        })?;
        let info = backups
            .backup(&engine, &name, mode, self.identity.backend_pid)
            .await?;
        Ok(Outcome::rows(
            backup_schema(),
            vec![backup_row(&info)?],
            "CALL",
        ))
    }
}
