//! Logging setup (`tracing` to stderr, filtered by `--log`, as text or as
//! JSON lines by `--log-format`).
//!
//! A request's and a connection's log lines carry its id: the HTTP layer runs
//! each request in a `request` span with a `request_id` field, and each
//! socket session in a `connection` span with a `connection_id` field. Text
//! lines show the spans as their prefix; a JSON line has the ids as
//! top-level keys (see [`JsonLines`]).
//!
//! Until start-up completes, log lines are held in memory: if start-up fails
//! the operator sees exactly one line saying what is wrong and how to fix it,
//! not that line buried under the start-up chatter. On success the held lines
//! are written out, in order, and later lines go straight to stderr.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFilter, LogFormat};

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
pub fn init(filter: &LogFilter, format: LogFormat) -> LogSink {
    let sink = LogSink { held: Arc::new(Mutex::new(Some(Vec::new()))) };
    // Err when a subscriber is installed already: the first one stays.
    let _ = match format {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(sink.clone())
                .with_ansi(io::stderr().is_terminal())
                .with_thread_names(true);
            tracing_subscriber::registry().with(layer).with(filter.targets()).try_init()
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer().with_writer(sink.clone()).event_format(JsonLines);
            tracing_subscriber::registry().with(SpanFields).with(layer).with(filter.targets()).try_init()
        }
    };
    sink
}

/// The fields of a span, kept with it for [`JsonLines`].
struct Recorded(Map<String, Value>);

/// Records every new span's fields (a request's or connection's id).
struct SpanFields;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(Map::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Recorded(fields.0));
        }
    }
}

/// Fields as JSON values: numbers and booleans as themselves, the rest as text.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// One JSON object a line: `time` (RFC 3339, UTC), `level`, `target`,
/// `message`, `fields` (the event's other fields), then the fields of the
/// spans it happened in (outermost first), e.g. `request_id`.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        let message = fields.remove("message").unwrap_or(Value::String(String::new()));
        let mut line = Map::new();
        line.insert("time".into(), serde_json::to_value(converger_storage::Timestamp::now()).unwrap_or_default());
        line.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
        line.insert("target".into(), meta.target().into());
        line.insert("message".into(), message);
        line.insert("fields".into(), Value::Object(fields));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(Recorded(spanned)) = span.extensions().get::<Recorded>() {
                    for (k, v) in spanned {
                        line.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `JsonLines` writes for events in spans, through a real subscriber.
    #[test]
    fn json_lines_carry_the_spans_ids_and_the_events_fields() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let out = out.clone();
            move || Captured(out.clone())
        };
        let layer = tracing_subscriber::fmt::layer().with_writer(writer).event_format(JsonLines);
        let subscriber = tracing_subscriber::registry().with(SpanFields).with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _entered = span.enter();
            tracing::warn!(status = 503u64, retry = true, "storage unavailable");
        });
        let text = String::from_utf8(out.lock().expect("lock").clone()).expect("utf-8");
        let line: Value = serde_json::from_str(text.trim()).expect("one JSON object");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["message"], "storage unavailable");
        assert_eq!(line["fields"], serde_json::json!({"status": 503, "retry": true}));
        assert_eq!(line["request_id"], "r-1");
        assert!(line["target"].as_str().is_some_and(|t| t.contains("logging")), "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
