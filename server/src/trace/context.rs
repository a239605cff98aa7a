//! Trace and span ids, the context a span hands to its children, and the
//! W3C `traceparent` header that carries it across processes
//! (<https://www.w3.org/TR/trace-context/>).
//!
//! Parsing is strict — version `00`, exactly 55 characters, lowercase hex,
//! non-zero ids — and a header that fails is ignored by the callers (the span
//! starts a new trace): a bad header from a client is never an error.

use std::cell::Cell;
use std::fmt;

/// A trace's id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// What a child span needs of its parent, and what `traceparent` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller's sampled flag, passed on as received. Converger records
    /// every span while tracing is on (no sampling of its own).
    pub sampled: bool,
}

impl TraceId {
    pub fn random() -> TraceId {
        loop {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&next_random().to_be_bytes());
            id[8..].copy_from_slice(&next_random().to_be_bytes());
            if id != [0; 16] {
                return TraceId(id);
            }
        }
    }
}

impl SpanId {
    pub fn random() -> SpanId {
        loop {
            let id = next_random().to_be_bytes();
            if id != [0; 8] {
                return SpanId(id);
            }
        }
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl SpanContext {
    /// A new trace's first span.
    pub fn root() -> SpanContext {
        SpanContext { trace_id: TraceId::random(), span_id: SpanId::random(), sampled: true }
    }

    /// A new span in this one's trace.
    pub fn child(self) -> SpanContext {
        SpanContext { trace_id: self.trace_id, span_id: SpanId::random(), sampled: self.sampled }
    }

    /// `traceparent` as the W3C header writes it: `00-{trace}-{span}-{flags}`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }

    /// Reads a `traceparent` header value; `None` for anything but a valid
    /// version-00 header (the caller then ignores it).
    pub fn parse(value: &[u8]) -> Option<SpanContext> {
        // 2 version + 1 + 32 trace + 1 + 16 span + 1 + 2 flags.
        if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace = [0u8; 16];
        let mut span = [0u8; 8];
        let mut flags = [0u8; 1];
        hex_into(&value[3..35], &mut trace)?;
        hex_into(&value[36..52], &mut span)?;
        hex_into(&value[53..55], &mut flags)?;
        if trace == [0; 16] || span == [0; 8] {
            return None;
        }
        Some(SpanContext { trace_id: TraceId(trace), span_id: SpanId(span), sampled: flags[0] & 1 == 1 })
    }

    /// [`SpanContext::parse`] of text.
    pub fn parse_str(value: &str) -> Option<SpanContext> {
        SpanContext::parse(value.as_bytes())
    }
}

/// Lowercase hex only, as the W3C spec requires.
fn hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

thread_local! {
    /// Each thread's id generator: a splitmix64 sequence seeded from the OS.
    /// Ids need to be unique, not secret; a syscall per span would not be free.
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: the clock and the thread still make threads differ.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let thread = format!("{:?}", std::thread::current().id());
        bytes = (nanos as u64 ^ thread.len() as u64 ^ (thread.as_ptr() as u64)).to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

fn next_random() -> u64 {
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let c = SpanContext::parse_str(GOOD).expect("valid");
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id.to_string(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.traceparent(), GOOD);
        let unsampled = SpanContext::parse_str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").expect("ok");
        assert!(!unsampled.sampled);
        assert!(unsampled.traceparent().ends_with("-00"));
    }

    #[test]
    fn anything_but_a_strict_version_00_header_is_refused() {
        let bad = [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for b in bad {
            assert_eq!(SpanContext::parse_str(b), None, "{b:?}");
        }
    }

    #[test]
    fn new_ids_are_non_zero_and_differ() {
        let a = SpanContext::root();
        let b = a.child();
        assert_eq!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(SpanContext::root().trace_id, a.trace_id);
        assert_eq!(SpanContext::parse_str(&b.traceparent()), Some(b));
    }
}
