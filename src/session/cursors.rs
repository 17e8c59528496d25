//! SQL cursors of a session: `DECLARE`, `FETCH`, `MOVE`, `CLOSE`, and what `pg_cursors`
//! lists.
//!
//! A cursor's rows come from the query's result stream, read on demand: a plain cursor keeps
//! only the rows not yet fetched, so walking a large result through it takes bounded memory.
//! A `SCROLL` cursor keeps every row it has read, so it can go back; a `WITH HOLD` cursor
//! reads its whole result when it is declared, so it outlives its transaction (PostgreSQL
//! copies it out at commit; the rows are the same, since the cursor's snapshot is the
//! declaring statement's either way).
//!
//! Invariants: positions follow PostgreSQL (0 is before the first row, `n + 1` after the
//! last); a cursor without SCROLL never moves backward (55000); plain cursors end with the
//! transaction that declared them, and a rollback also ends the holdable ones it declared.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast::{FetchDirection, ValueWithSpan};
use futures::StreamExt;

use crate::error::{KuraError, Result, sqlstate};

/// What `pg_cursors` shows of a cursor.
#[derive(Debug, Clone)]
pub struct CursorInfo {
    pub name: String,
    pub statement: String,
    pub holdable: bool,
    pub binary: bool,
    pub scrollable: bool,
    pub created: chrono::DateTime<chrono::Utc>,
}

pub struct Cursor {
    pub info: CursorInfo,
    pub schema: SchemaRef,
    /// Declared inside the current transaction block (a rollback ends it even if holdable).
    declared_in_block: bool,
    rows: RowSource,
    /// 0 before the first row, `n + 1` after the last (once `n` is known).
    position: u64,
}

/// The rows behind a cursor: `held` are rows `first ..` (1-based), `stream` the rest (`None`
/// once it has ended). The stream sits in a mutex only so that the session stays `Sync`; it
/// is reached through `get_mut`, never locked.
struct RowSource {
    held: VecDeque<RecordBatch>,
    first: u64,
    held_rows: u64,
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
    keep_read_rows: bool,
}

impl RowSource {
    /// The number of rows, once the stream has ended.
    fn total(&mut self) -> Option<u64> {
        let ended = self.stream.get_mut().map_or(true, |s| s.is_none());
        ended.then_some(self.first + self.held_rows - 1)
    }

    /// Reads until row `row` is held or the stream ends; whether it exists.
    async fn reach(&mut self, row: u64) -> Result<bool> {
        while self.first + self.held_rows <= row {
            let slot = self
                .stream
                .get_mut()
                .map_err(|_| KuraError::internal("a cursor's stream failed earlier"))?;
            let Some(stream) = slot.as_mut() else {
                return Ok(false);
            };
            match stream.next().await {
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        self.held_rows += batch.num_rows() as u64;
                        self.held.push_back(batch);
                    }
                }
                None => *slot = None,
            }
        }
        Ok(true)
    }

    /// Reads everything that is left.
    async fn read_all(&mut self) -> Result<u64> {
        self.reach(u64::MAX).await?;
        Ok(self.first + self.held_rows - 1)
    }

    /// Rows `from..=to` (held), in order.
    fn slice(&self, from: u64, to: u64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut start = self.first;
        for batch in &self.held {
            let len = batch.num_rows() as u64;
            let end = start + len - 1;
            if end >= from && start <= to {
                let lo = from.max(start) - start;
                let hi = to.min(end) - start;
                out.push(batch.slice(lo as usize, (hi - lo + 1) as usize));
            }
            start += len;
        }
        out
    }

    /// Forgets held rows before `row` unless the cursor can scroll back to them.
    fn release_before(&mut self, row: u64) {
        if self.keep_read_rows {
            return;
        }
        while let Some(batch) = self.held.front() {
            let len = batch.num_rows() as u64;
            if self.first + len > row {
                break;
            }
            self.first += len;
            self.held_rows -= len;
            self.held.pop_front();
        }
    }
}

/// A FETCH or MOVE: which way, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Motion {
    /// Step `n` rows forward (`None`: to the end), returning each row reached.
    Forward(Option<u64>),
    /// Step `n` rows backward (`None`: to the start), returning each row reached.
    Backward(Option<u64>),
    /// Jump to row `k` (negative: from the end) and return it.
    Absolute(i64),
    /// Jump `k` rows from the current one and return that row.
    Relative(i64),
}

fn count(limit: &ValueWithSpan) -> Result<i64> {
    limit
        .value
        .to_string()
        .parse()
        .map_err(|_| KuraError::syntax(format!("invalid FETCH count: {limit}")))
}

fn motion(direction: &FetchDirection) -> Result<Motion> {
    let signed = |n: i64| {
        if n >= 0 {
            Motion::Forward(Some(n.unsigned_abs()))
        } else {
            Motion::Backward(Some(n.unsigned_abs()))
        }
    };
    Ok(match direction {
        FetchDirection::Next => Motion::Forward(Some(1)),
        FetchDirection::Prior => Motion::Backward(Some(1)),
        FetchDirection::First => Motion::Absolute(1),
        FetchDirection::Last => Motion::Absolute(-1),
        FetchDirection::All | FetchDirection::ForwardAll => Motion::Forward(None),
        FetchDirection::BackwardAll => Motion::Backward(None),
        FetchDirection::Count { limit } => signed(count(limit)?),
        FetchDirection::Forward { limit } => match limit {
            Some(limit) => signed(count(limit)?),
            None => Motion::Forward(Some(1)),
        },
        FetchDirection::Backward { limit } => match limit {
            Some(limit) => signed(-count(limit)?),
            None => Motion::Backward(Some(1)),
        },
        FetchDirection::Absolute { limit } => Motion::Absolute(count(limit)?),
        FetchDirection::Relative { limit } => Motion::Relative(count(limit)?),
    })
}

fn scans_forward_only() -> KuraError {
    KuraError::new(
        sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
        "cursor can only scan forward",
    )
    .with_hint("Declare it with SCROLL option to enable backward scan.")
}

impl Cursor {
    /// A cursor over `stream`; `holdable` cursors read it all now.
    pub async fn open(
        info: CursorInfo,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        in_block: bool,
    ) -> Result<Cursor> {
        let mut rows = RowSource {
            held: VecDeque::new(),
            first: 1,
            held_rows: 0,
            stream: std::sync::Mutex::new(Some(stream)),
            keep_read_rows: info.scrollable || info.holdable,
        };
        if info.holdable {
            rows.read_all().await?;
        }
        Ok(Cursor {
            info,
            schema,
            declared_in_block: in_block,
            rows,
            position: 0,
        })
    }

    /// Runs a FETCH (`fetch`) or MOVE: the rows reached, in the order reached, and how many.
    pub async fn fetch(
        &mut self,
        direction: &FetchDirection,
        fetch: bool,
    ) -> Result<(Vec<RecordBatch>, u64)> {
        let motion = motion(direction)?;
        let backward = match motion {
            Motion::Backward(_) => true,
            Motion::Absolute(k) => k < 0 || u64::try_from(k).is_ok_and(|k| k < self.position),
            Motion::Relative(k) => k < 0,
            Motion::Forward(_) => false,
        };
        if backward && !self.info.scrollable {
            return Err(scans_forward_only());
        }
        let mut out = Vec::new();
        let mut reached = 0u64;
        match motion {
            Motion::Forward(steps) => {
                let steps = steps.unwrap_or(u64::MAX);
                let from = self.position + 1;
                let mut last = self.position;
                while reached < steps && self.rows.reach(last + 1).await? {
                    last += 1;
                    reached += 1;
                }
                if fetch && reached > 0 {
                    out = self.rows.slice(from, last);
                }
                // Past the end when fewer rows than asked remained (the stream has ended).
                self.position = match self.rows.total() {
                    Some(total) if reached < steps => total + 1,
                    _ => last,
                };
                self.rows.release_before(self.position.max(1));
            }
            Motion::Backward(steps) => {
                let steps = steps.unwrap_or(u64::MAX);
                if self.position > 0 && self.rows.total().is_none() {
                    // Only the end of the stream fixes "after the last row".
                    self.rows.reach(self.position).await?;
                }
                let mut row = self.position;
                if let Some(total) = self.rows.total() {
                    row = row.min(total + 1);
                }
                while reached < steps && row > 1 {
                    row -= 1;
                    reached += 1;
                    if fetch {
                        out.extend(self.rows.slice(row, row));
                    }
                }
                self.position = if reached < steps { 0 } else { row };
            }
            Motion::Absolute(k) => {
                let target = if k >= 0 {
                    k.unsigned_abs()
                } else {
                    let total = self.rows.read_all().await?;
                    (total + 1).saturating_sub(k.unsigned_abs())
                };
                (out, reached) = self.jump(target, fetch).await?;
            }
            Motion::Relative(0) => {
                let exists = self.position > 0 && self.rows.reach(self.position).await?;
                if exists {
                    reached = 1;
                    if fetch {
                        out = self.rows.slice(self.position, self.position);
                    }
                }
            }
            Motion::Relative(k) => {
                let target = if k > 0 {
                    self.position.saturating_add(k.unsigned_abs())
                } else {
                    self.position.saturating_sub(k.unsigned_abs())
                };
                (out, reached) = self.jump(target, fetch).await?;
            }
        }
        Ok((out, reached))
    }

    /// Moves to row `target` (0 = before the first) and returns it when it exists.
    async fn jump(&mut self, target: u64, fetch: bool) -> Result<(Vec<RecordBatch>, u64)> {
        if target == 0 {
            self.position = 0;
            return Ok((Vec::new(), 0));
        }
        if self.rows.reach(target).await? {
            self.position = target;
            self.rows.release_before(target);
            let rows = if fetch {
                self.rows.slice(target, target)
            } else {
                Vec::new()
            };
            return Ok((rows, 1));
        }
        let total = self.rows.total().unwrap_or(target);
        self.position = total + 1;
        Ok((Vec::new(), 0))
    }

    /// The rows of a FETCH as one stream.
    pub fn stream_of(&self, batches: Vec<RecordBatch>) -> Result<SendableRecordBatchStream> {
        let batch = concat_batches(&self.schema, &batches)?;
        let stream = futures::stream::iter(vec![Ok(batch)]);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// The open cursors of a session, by name.
#[derive(Default)]
pub struct Cursors {
    open: BTreeMap<String, Cursor>,
}

fn no_cursor(name: &str) -> KuraError {
    KuraError::new(
        sqlstate::INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

impl Cursors {
    /// 42P03 if a cursor called `name` is open.
    pub fn check_free(&self, name: &str) -> Result<()> {
        if self.open.contains_key(name) {
            return Err(KuraError::new(
                sqlstate::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        Ok(())
    }

    pub fn declare(&mut self, cursor: Cursor) -> Result<()> {
        self.check_free(&cursor.info.name)?;
        self.open.insert(cursor.info.name.clone(), cursor);
        Ok(())
    }

    pub fn get_mut(&mut self, name: &str) -> Result<&mut Cursor> {
        self.open.get_mut(name).ok_or_else(|| no_cursor(name))
    }

    pub fn get(&self, name: &str) -> Option<&Cursor> {
        self.open.get(name)
    }

    pub fn close(&mut self, name: &str) -> Result<()> {
        self.open
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| no_cursor(name))
    }

    pub fn close_all(&mut self) {
        self.open.clear();
    }

    /// The transaction block ended: plain cursors end with it, and so do holdable ones it
    /// declared if it rolled back. The survivors belong to no block any more.
    pub fn end_block(&mut self, committed: bool) {
        self.open
            .retain(|_, c| c.info.holdable && (committed || !c.declared_in_block));
        for cursor in self.open.values_mut() {
            cursor.declared_in_block = false;
        }
    }

    pub fn infos(&self) -> Vec<CursorInfo> {
        self.open.values().map(|c| c.info.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::sql::sqlparser::ast::Value;
    use std::sync::Arc;

    fn cursor_over(n: i64, scrollable: bool, holdable: bool) -> Cursor {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        // Batches of 3 rows, so fetches cross batch boundaries.
        let batches: Vec<_> = (1..=n)
            .collect::<Vec<_>>()
            .chunks(3)
            .map(|c| {
                Ok(RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from(c.to_vec()))],
                )
                .unwrap())
            })
            .collect();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(batches),
        ));
        let info = CursorInfo {
            name: "c".into(),
            statement: String::new(),
            holdable,
            binary: false,
            scrollable,
            created: chrono::Utc::now(),
        };
        futures::executor::block_on(Cursor::open(info, schema, stream, true)).unwrap()
    }

    fn n(v: i64) -> ValueWithSpan {
        Value::Number(v.to_string(), false).into()
    }

    fn fetch(c: &mut Cursor, d: FetchDirection) -> Vec<i64> {
        let (batches, reached) = futures::executor::block_on(c.fetch(&d, true)).unwrap();
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(values.len() as u64, reached);
        values
    }

    #[test]
    fn forward_fetches_and_moves() {
        let mut c = cursor_over(20, false, false);
        assert_eq!(
            fetch(&mut c, FetchDirection::Count { limit: n(3) }),
            [1, 2, 3]
        );
        assert_eq!(fetch(&mut c, FetchDirection::Next), [4]);
        let (_, moved) = futures::executor::block_on(
            c.fetch(&FetchDirection::Forward { limit: Some(n(10)) }, false),
        )
        .unwrap();
        assert_eq!(moved, 10);
        assert_eq!(fetch(&mut c, FetchDirection::Count { limit: n(1) }), [15]);
        assert_eq!(fetch(&mut c, FetchDirection::All), [16, 17, 18, 19, 20]);
        assert_eq!(fetch(&mut c, FetchDirection::Next), Vec::<i64>::new());
        let back = futures::executor::block_on(c.fetch(&FetchDirection::Prior, true));
        assert_eq!(back.unwrap_err().code, "55000");
    }

    #[test]
    fn scroll_cursors_go_both_ways() {
        let mut c = cursor_over(200, true, false);
        assert_eq!(
            fetch(&mut c, FetchDirection::Count { limit: n(5) }),
            [1, 2, 3, 4, 5]
        );
        // psycopg's scroll(-3) is MOVE -3 then the next fetch.
        futures::executor::block_on(c.fetch(&FetchDirection::Count { limit: n(-3) }, false))
            .unwrap();
        assert_eq!(fetch(&mut c, FetchDirection::Next), [3]);
        futures::executor::block_on(c.fetch(&FetchDirection::Absolute { limit: n(100) }, false))
            .unwrap();
        assert_eq!(fetch(&mut c, FetchDirection::Next), [101]);
        assert_eq!(fetch(&mut c, FetchDirection::Last), [200]);
        assert_eq!(
            fetch(&mut c, FetchDirection::Backward { limit: Some(n(2)) }),
            [199, 198]
        );
        assert_eq!(fetch(&mut c, FetchDirection::First), [1]);
        assert_eq!(fetch(&mut c, FetchDirection::Prior), Vec::<i64>::new());
        assert_eq!(fetch(&mut c, FetchDirection::Next), [1]);
        assert_eq!(fetch(&mut c, FetchDirection::Relative { limit: n(0) }), [1]);
        assert_eq!(
            fetch(&mut c, FetchDirection::Absolute { limit: n(-2) }),
            [199]
        );
        assert_eq!(
            fetch(&mut c, FetchDirection::Absolute { limit: n(500) }),
            Vec::<i64>::new()
        );
        assert_eq!(fetch(&mut c, FetchDirection::Prior), [200]);
    }

    fn names(cursors: &Cursors) -> Vec<String> {
        cursors.infos().into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn block_end_closes_what_postgres_closes() {
        let mut cursors = Cursors::default();
        let mut plain = cursor_over(3, false, false);
        plain.info.name = "plain".into();
        let mut held = cursor_over(3, false, true);
        held.info.name = "held".into();
        cursors.declare(plain).unwrap();
        cursors.declare(held).unwrap();
        cursors.end_block(true);
        assert_eq!(names(&cursors), ["held"]);
        let mut again = cursor_over(3, false, true);
        again.info.name = "again".into();
        cursors.declare(again).unwrap();
        cursors.end_block(false);
        assert_eq!(names(&cursors), ["held"]);
        assert_eq!(cursors.close("nope").unwrap_err().code, "34000");
    }
}
