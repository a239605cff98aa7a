//! The exporter: one thread of its own with a current-thread tokio runtime,
//! fed by a bounded queue, posting batches of finished spans to
//! `{endpoint}/v1/traces` as OTLP/HTTP JSON.
//!
//! Bounds and what happens at them:
//! - the queue holds [`QUEUE_BOUND`] spans; [`submit`] never blocks, and a
//!   span finding it full is dropped and counted
//!   (`converger_trace_spans_dropped_total{reason="queue_full"}`);
//! - a batch is posted at [`BATCH`] spans or every [`FLUSH_EVERY`], whichever
//!   comes first, one request at a time with a [`POST_TIMEOUT`]; a batch the
//!   collector refuses or never answers is dropped and counted
//!   (`reason="export_failed"`), never retried, so a dead collector costs one
//!   timeout per batch and no memory;
//! - at shutdown [`flush`] posts what is queued, waiting at most its timeout.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{otlp, SpanData, ENABLED};
use crate::metrics;

/// Spans waiting for the exporter, at most.
pub const QUEUE_BOUND: usize = 8192;
/// Spans per export request, at most.
pub const BATCH: usize = 512;
/// Longest a finished span waits before it is posted.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest one export request may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

enum Msg {
    Span(SpanData),
    /// Post everything queued before this, then answer.
    Flush(mpsc::Sender<()>),
}

static QUEUE: OnceLock<SyncSender<Msg>> = OnceLock::new();

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot start the OTLP exporter thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot build the OTLP exporter's runtime or HTTP client: {0}")]
    Client(String),
}

/// The URL spans are posted to: the OTLP/HTTP traces path under `endpoint`
/// (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read), unless it already names it.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Starts exporting spans to `endpoint` as service instance `instance`, and
/// turns tracing on. Once per process: a second call keeps the first exporter.
pub fn start(endpoint: &str, instance: &str) -> Result<(), TraceError> {
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let url = traces_url(endpoint);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TraceError::Client(e.to_string()))?;
    // Built in the runtime's context, where its connections will live.
    let client = {
        let _context = runtime.enter();
        reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TraceError::Client(e.to_string()))?
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE_BOUND);
    let resource = otlp::Resource { instance: instance.to_string() };
    let exporter = Exporter { url: url.clone(), runtime, client, resource, failing: false };
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || exporter.run(rx))
        .map_err(TraceError::Thread)?;
    if QUEUE.set(tx).is_ok() {
        ENABLED.store(true, Ordering::Relaxed);
        info!(%url, "traces: exporting spans over OTLP/HTTP (JSON)");
    }
    Ok(())
}

/// Hands a finished span to the exporter without waiting; counts it as
/// dropped when the queue is full.
pub(super) fn submit(span: SpanData) {
    let Some(queue) = QUEUE.get() else { return };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(Msg::Span(span)) {
        metrics::trace_spans_dropped(metrics::SpanDrop::QueueFull, 1);
    }
}

/// Posts the spans queued so far, waiting at most `timeout` (at shutdown).
pub fn flush(timeout: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let deadline = Instant::now() + timeout;
    let (ack, done) = mpsc::channel();
    let mut msg = Msg::Flush(ack);
    // The queue may be full for a moment: retry until the deadline.
    loop {
        match queue.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return warn!("traces: queued spans not flushed at shutdown"),
        }
    }
    if done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
        warn!("traces: the collector did not take the last spans in time");
    }
}

struct Exporter {
    url: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    resource: otlp::Resource,
    /// Whether the last export failed: a collector that stays down is
    /// reported once, not at every batch.
    failing: bool,
}

impl Exporter {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut due = Instant::now() + FLUSH_EVERY;
        loop {
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(Msg::Span(span)) => {
                    batch.push(span);
                    if batch.len() >= BATCH {
                        self.post(&mut batch);
                        due = Instant::now() + FLUSH_EVERY;
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    self.post(&mut batch);
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.post(&mut batch);
                    due = Instant::now() + FLUSH_EVERY;
                }
                Err(RecvTimeoutError::Disconnected) => return self.post(&mut batch),
            }
        }
    }

    /// Posts `batch` (emptying it); a failure drops and counts it.
    fn post(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let body = otlp::encode(&self.resource, batch);
        batch.clear();
        let request = self.client.post(&self.url).header("content-type", "application/json").body(body);
        // Sent inside the runtime: the HTTP client needs its reactor.
        let outcome = self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read the answer so the connection can be kept alive.
            let _ = response.bytes().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the collector answered {status}"))
            }
        });
        match outcome {
            Ok(()) => {
                if self.failing {
                    info!(url = %self.url, "traces: the collector takes spans again");
                }
                self.failing = false;
            }
            Err(error) => {
                metrics::trace_spans_dropped(metrics::SpanDrop::ExportFailed, n);
                if self.failing {
                    debug!(url = %self.url, %error, spans = n, "traces: export failed");
                } else {
                    warn!(url = %self.url, %error, spans = n, "traces: export failed; spans dropped until the collector answers");
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/otlp"), "https://c/otlp/v1/traces");
    }
}
