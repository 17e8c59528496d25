//! A record-batch stream that stops with the connection's interrupt (cancel, statement
//! timeout, termination). It checks on every poll, so it also stops operators that compute
//! for a long time without producing a batch: DataFusion's cooperative scheduling makes them
//! return to the poller regularly.
//!
//! Invariant: after yielding the interrupt's error the stream ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;

use crate::interrupt::{Interrupt, Reason};

pub struct Interruptible {
    inner: SendableRecordBatchStream,
    /// Resolves when the interrupt is raised; polled with the inner stream so that a stream
    /// waiting on other tasks is woken by the interrupt too.
    raised: Pin<Box<dyn Future<Output = Reason> + Send>>,
    stopped: bool,
}

impl Interruptible {
    pub fn wrap(
        inner: SendableRecordBatchStream,
        interrupt: Arc<Interrupt>,
    ) -> SendableRecordBatchStream {
        let raised = Box::pin(async move { interrupt.interrupted().await });
        Box::pin(Interruptible {
            inner,
            raised,
            stopped: false,
        })
    }
}

impl Stream for Interruptible {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        if let Poll::Ready(reason) = self.raised.as_mut().poll(cx) {
            self.stopped = true;
            return Poll::Ready(Some(Err(DataFusionError::from(reason.error()))));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for Interruptible {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
