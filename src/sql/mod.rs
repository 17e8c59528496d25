//! SQL layer: parsing (GridDB + PostgreSQL dialect), DDL, DML and query execution inside a
//! transaction. Transaction control and session settings live in `session`.

pub mod backup_syntax;
pub mod colnames;
pub mod copy_syntax;
pub mod cursor_syntax;
pub mod ddl;
pub mod describe;
pub mod dialect;
pub mod dml;
pub mod exec;
pub mod in_subquery;
pub mod lateral;
pub mod names;
pub mod placement;
pub mod point;
pub mod primary_key;
pub mod range_group;
pub mod result_literals;
pub mod rows;
pub mod system_syntax;
pub mod table_args;
pub mod table_syntax;
pub mod template;
pub mod time_syntax;
pub mod user_syntax;
pub mod vacuum_syntax;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::sqlparser::ast::Statement;

pub use dialect::parse_sql;
pub use exec::Exec;

use crate::error::{KuraError, Result};

/// What a statement produced.
pub enum Outcome {
    /// Rows to send, then a command tag `command` followed by the row count.
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        command: String,
    },
    /// A command tag, with a row count when the command reports one, and notices to send first.
    Done {
        command: String,
        rows: Option<usize>,
        notices: Vec<String>,
    },
    /// COPY FROM STDIN started: the client sends CopyData until CopyDone or CopyFail.
    CopyIn(crate::session::copy::CopyStart),
    /// COPY TO STDOUT: the data to send, one message per item.
    CopyOut {
        start: crate::session::copy::CopyStart,
        stream: crate::session::copy::CopyOutStream,
    },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Rows { command, .. } => write!(f, "Rows({command})"),
            Outcome::Done { command, rows, .. } => write!(f, "Done({command}, {rows:?})"),
            Outcome::CopyIn(_) => write!(f, "CopyIn"),
            Outcome::CopyOut { .. } => write!(f, "CopyOut"),
        }
    }
}

impl Outcome {
    pub fn done(command: &str) -> Outcome {
        Outcome::Done {
            command: command.to_string(),
            rows: None,
            notices: Vec::new(),
        }
    }

    pub fn counted(command: &str, rows: usize) -> Outcome {
        Outcome::Done {
            command: command.to_string(),
            rows: Some(rows),
            notices: Vec::new(),
        }
    }

    pub fn with_notice(mut self, notice: String) -> Outcome {
        if let Outcome::Done { notices, .. } = &mut self {
            notices.push(notice);
        }
        self
    }

    /// Rows already computed (RETURNING, SHOW).
    pub fn rows(schema: SchemaRef, batches: Vec<RecordBatch>, command: &str) -> Outcome {
        let stream = match MemoryStream::try_new(batches, schema.clone(), None) {
            Ok(stream) => stream,
            Err(_) => MemoryStream::try_new(vec![], schema.clone(), None).expect("empty stream"),
        };
        Outcome::Rows {
            schema,
            stream: Box::pin(stream),
            command: command.to_string(),
        }
    }
}

impl Exec<'_> {
    /// Runs one data statement (query, DML or DDL) in this transaction.
    pub async fn run(&self, statement: &Statement, params: &ParamValues) -> Result<Outcome> {
        use crate::stats::counters::{COUNTERS, add};
        match statement {
            Statement::Query(_) => {
                add(&COUNTERS.read_operations, 1);
                if let Some(outcome) = self.run_point(statement, params).await? {
                    return Ok(outcome);
                }
                self.query(statement, params, "SELECT").await
            }
            Statement::Explain {
                statement: inner, ..
            } => match inner.as_ref() {
                Statement::Query(_) => self.query(statement, params, "EXPLAIN").await,
                _ => Err(KuraError::unsupported(
                    "EXPLAIN is supported for queries only",
                )),
            },
            Statement::Insert(insert) => {
                add(&COUNTERS.write_operations, 1);
                if let Some(outcome) = self.run_point(statement, params).await? {
                    return Ok(outcome);
                }
                self.insert(insert, params).await
            }
            Statement::Update(update) => {
                add(&COUNTERS.write_operations, 1);
                if let Some(outcome) = self.run_point(statement, params).await? {
                    return Ok(outcome);
                }
                self.update(update, params).await
            }
            Statement::Delete(delete) => {
                add(&COUNTERS.write_operations, 1);
                self.delete(delete, params).await
            }
            Statement::Truncate(truncate) => {
                add(&COUNTERS.write_operations, 1);
                self.truncate(truncate).await
            }
            Statement::CreateTable(create) => self.create_table(create).await,
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::CreateIndex(create) => self.create_index(create).await,
            Statement::CreateView(create) => self.create_view(create).await,
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => {
                if *cascade {
                    return Err(KuraError::unsupported("DROP ... CASCADE is not supported"));
                }
                self.drop(object_type, *if_exists, names).await
            }
            checkpoint if dialect::is_checkpoint(checkpoint) => {
                self.db.checkpoint().await?;
                Ok(Outcome::done("CHECKPOINT"))
            }
            other => Err(KuraError::unsupported(format!(
                "statement not supported: {}",
                statement_kind(other)
            ))),
        }
    }

    async fn query(
        &self,
        statement: &Statement,
        params: &ParamValues,
        command: &str,
    ) -> Result<Outcome> {
        let plan = Exec::bind(self.plan(statement.clone()).await?, params)?;
        let schema = colnames::reported_schema(statement, &plan);
        let stream = self.stream(&plan).await?;
        Ok(Outcome::Rows {
            schema,
            stream,
            command: command.to_string(),
        })
    }
}

/// The first words of a statement, for messages about statements Kura does not run.
pub fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
