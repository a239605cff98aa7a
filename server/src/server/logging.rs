//! Logging setup (`tracing` to stderr, filtered by `--log`).
//!
//! Until start-up completes, log lines are held in memory: if start-up fails
//! the operator sees exactly one line saying what is wrong and how to fix it,
//! not that line buried under the start-up chatter. On success the held lines
//! are written out, in order, and later lines go straight to stderr.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFilter;

/// Where log lines go: a start-up buffer (while `Some`), then stderr.
#[derive(Clone, Default)]
pub struct LogSink {
    held: Arc<Mutex<Option<Vec<u8>>>>,
}

impl LogSink {
    fn held(&self) -> MutexGuard<'_, Option<Vec<u8>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the held lines to stderr and stops holding.
    pub fn release(&self) {
        if let Some(lines) = self.held().take() {
            let _ = io::stderr().write_all(&lines);
        }
    }

    /// Drops the held lines (start-up failed; the error line says it all).
    pub fn discard(&self) {
        self.held().take();
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter { sink: self.clone() }
    }
}

/// One event's writer.
pub struct SinkWriter {
    sink: LogSink,
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.sink.held().as_mut() {
            Some(lines) => {
                lines.extend_from_slice(buf);
                Ok(buf.len())
            }
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Installs the global subscriber, holding lines until [`LogSink::release`].
/// A second call (tests starting several servers) keeps the first subscriber.
pub fn init(filter: &LogFilter) -> LogSink {
    let sink = LogSink { held: Arc::new(Mutex::new(Some(Vec::new()))) };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(sink.clone())
        .with_ansi(io::stderr().is_terminal())
        .with_thread_names(true);
    let _ = tracing_subscriber::registry().with(layer).with(filter.targets()).try_init();
    sink
}
