//! OpenTelemetry traces, exported over OTLP/HTTP with the JSON encoding when
//! `--otlp-endpoint` is set ([`start`]).
//!
//! Off by default, and then costing one relaxed atomic load per call site:
//! [`span`] answers `None` without allocating, reading a clock or touching a
//! queue, and no thread, runtime or client exists.
//!
//! On, a [`Span`] is recorded when it is dropped: it is handed to the
//! exporter's bounded queue ([`export`]) without blocking, and a span that
//! finds the queue full is dropped and counted. Spans link up through
//! [`SpanContext`]: a child names its parent; the context of the REST request
//! or binary publish being handled travels with its task ([`in_context`],
//! [`current`]) down to the owner shard's publish request, and with the write
//! into its delivery rows as a `traceparent`.

mod context;
pub mod export;
mod otlp;

use std::borrow::Cow;
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use context::{SpanContext, SpanId, TraceId};
pub use export::{flush, start, TraceError};

/// Set once the exporter runs; read at every call site.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are recorded (an exporter was started).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// OTLP `SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Cow<'static, str>),
    Int(i64),
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Value {
        Value::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Cow::Owned(s))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<u16> for Value {
    fn from(n: u16) -> Value {
        Value::Int(n.into())
    }
}

/// What a finished span holds; what the exporter encodes.
#[derive(Debug)]
pub struct SpanData {
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub context: SpanContext,
    pub parent: Option<SpanId>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub links: Vec<SpanContext>,
    /// Set when the operation failed: OTLP status ERROR with this message.
    pub error: Option<String>,
}

/// A span being recorded; it ends and goes to the exporter when dropped.
pub struct Span(Option<SpanData>);

/// Starts a span when tracing is on: a child of `parent`, else the first
/// span of a new trace. `None` (and nothing done) when tracing is off.
#[inline]
pub fn span(name: impl Into<Cow<'static, str>>, kind: Kind, parent: Option<SpanContext>) -> Option<Span> {
    if !enabled() {
        return None;
    }
    Some(Span::start(name.into(), kind, parent))
}

impl Span {
    fn start(name: Cow<'static, str>, kind: Kind, parent: Option<SpanContext>) -> Span {
        let context = parent.map_or_else(SpanContext::root, SpanContext::child);
        Span(Some(SpanData {
            name,
            kind,
            context,
            parent: parent.map(|p| p.span_id),
            start_unix_nanos: unix_nanos(),
            end_unix_nanos: 0,
            attributes: Vec::new(),
            links: Vec::new(),
            error: None,
        }))
    }

    /// What a child of this span, here or in another process, names as parent.
    pub fn context(&self) -> SpanContext {
        match &self.0 {
            Some(d) => d.context,
            // Only after drop, which cannot be observed; a fresh root keeps the type total.
            None => SpanContext::root(),
        }
    }

    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(d) = &mut self.0 {
            d.name = name.into();
        }
    }

    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(d) = &mut self.0 {
            d.attributes.push((key, value.into()));
        }
    }

    /// A span this one relates to without being its child (a batch's members).
    pub fn link(&mut self, other: SpanContext) {
        if let Some(d) = &mut self.0 {
            d.links.push(other);
        }
    }

    /// Marks the span failed (OTLP status ERROR) with `message`.
    pub fn error(&mut self, message: impl Into<String>) {
        if let Some(d) = &mut self.0 {
            d.error = Some(message.into());
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut d) = self.0.take() {
            d.end_unix_nanos = unix_nanos().max(d.start_unix_nanos);
            export::submit(d);
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

thread_local! {
    /// The context of the request or publish the current task handles, set
    /// around each poll of its future by [`in_context`] (shards run many tasks
    /// on one thread; a task-wide value must be put back between polls).
    static CURRENT: Cell<Option<SpanContext>> = const { Cell::new(None) };
}

/// The span context of the task being polled, if it runs [`in_context`].
#[inline]
pub fn current() -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    CURRENT.with(Cell::get)
}

/// Runs `future` with `context` as its [`current`] span context.
pub async fn in_context<F: Future>(context: SpanContext, future: F) -> F::Output {
    /// Puts the outer value back even when the poll panics.
    struct Restore(Option<SpanContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let mut future = pin!(future);
    poll_fn(|cx| {
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(context))));
        future.as_mut().poll(cx)
    })
    .await
}

#[cfg(test)]
pub(crate) fn enable_for_tests() {
    ENABLED.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_context_is_the_tasks_own_between_polls() {
        enable_for_tests();
        let a = SpanContext::root();
        let b = SpanContext::root();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        rt.block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let one = tokio::task::spawn_local(in_context(a, async {
                        tokio::task::yield_now().await;
                        current()
                    }));
                    let two = tokio::task::spawn_local(in_context(b, async {
                        tokio::task::yield_now().await;
                        current()
                    }));
                    assert_eq!(one.await.expect("one"), Some(a));
                    assert_eq!(two.await.expect("two"), Some(b));
                })
                .await;
            assert_eq!(CURRENT.with(Cell::get), None, "put back after the task");
        });
    }
}
