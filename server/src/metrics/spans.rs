//! The trace exporter's loss counter. Process-wide, not per shard: spans are
//! dropped by whichever thread ends them, and by the exporter's own thread.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why spans never reached the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanDrop {
    /// The exporter's bounded queue was full when the span ended.
    QueueFull = 0,
    /// The collector refused the batch or did not answer in time.
    ExportFailed = 1,
}

static DROPPED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

pub fn trace_spans_dropped(why: SpanDrop, n: u64) {
    DROPPED[why as usize].fetch_add(n, Ordering::Relaxed);
}

/// The counter's lines (zero without `--otlp-endpoint`).
pub(super) fn render(out: &mut String) {
    let _ = writeln!(out, "# HELP converger_trace_spans_dropped_total Spans that never reached the OTLP collector.");
    let _ = writeln!(out, "# TYPE converger_trace_spans_dropped_total counter");
    for (why, label) in [(SpanDrop::QueueFull, "queue_full"), (SpanDrop::ExportFailed, "export_failed")] {
        let n = DROPPED[why as usize].load(Ordering::Relaxed);
        let _ = writeln!(out, "converger_trace_spans_dropped_total{{reason=\"{label}\"}} {n}");
    }
}
