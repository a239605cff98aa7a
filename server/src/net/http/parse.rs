//! Incremental HTTP/1.1 request parsing on top of `httparse`.
//!
//! [`parse`] looks at the connection's buffer and either takes one whole request
//! off its front (`Ok(Some)`), says more bytes are needed (`Ok(None)`, the
//! buffer is untouched), or fails. It never panics on input and never trusts a
//! length it has not bounded: the request target is capped by
//! `max_target_bytes` (414), the head by `max_head_bytes` and `max_headers`
//! (431), and the body by `max_body_bytes` (413) *before* the body is buffered.
//!
//! Bodies come with a `Content-Length` or `Transfer-Encoding: chunked`
//! (RFC 9112 §7.1: chunk extensions ignored, trailers read and dropped; the
//! limit applies to the decoded body). Any other transfer coding is 501, and a
//! request carrying both headers is malformed (400): that combination is the
//! classic request-smuggling vector, as is a Transfer-Encoding on HTTP/1.0.

use bytes::{Bytes, BytesMut};

use super::request::{Method, Request};

/// Header slots offered to httparse: the most `max_headers` can be set to.
pub const MAX_HEADERS_CAP: usize = 256;
/// The longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Size limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line plus headers.
    pub max_head_bytes: usize,
    /// Headers one request may carry (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// The request target (path and query).
    pub max_target_bytes: usize,
    pub max_body_bytes: usize,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// A request must arrive whole this long after its first byte (slow-client guard).
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 64,
            max_target_bytes: 8 * 1024,
            max_body_bytes: 1024 * 1024,
            idle_timeout: std::time::Duration::from_secs(120),
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Why a request cannot be read. After any of these the connection is answered
/// and closed: the framing of what follows is unknown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("the request target is longer than {limit} bytes")]
    TargetTooLong { limit: usize },
    #[error("request headers are larger than {limit} bytes or more than {max_headers} headers")]
    HeadersTooLarge { limit: usize, max_headers: usize },
    #[error("request body of {length} bytes is larger than the limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    #[error("Transfer-Encoding `{0}` is not supported; send the body with a Content-Length or chunked")]
    UnsupportedTransferEncoding(String),
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::TargetTooLong { .. } => 414,
            ParseError::HeadersTooLarge { .. } => 431,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::UnsupportedTransferEncoding(_) => 501,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "bad_request",
            ParseError::TargetTooLong { .. } => "uri_too_long",
            ParseError::HeadersTooLarge { .. } => "headers_too_large",
            ParseError::BodyTooLarge { .. } => "payload_too_large",
            ParseError::UnsupportedTransferEncoding(_) => "not_implemented",
        }
    }
}

/// How the body is framed.
enum Framing {
    Length(usize),
    Chunked,
}

/// Takes one complete request off the front of `buf`, if it holds one.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request>, ParseError> {
    let too_large = || ParseError::HeadersTooLarge { limit: limits.max_head_bytes, max_headers: limits.max_headers };
    // The size limits are judged on the bytes up to the limit only, so the
    // answer does not depend on how the bytes arrive: a request line still open
    // one byte past its limit, or a head still open one byte past its limit, is
    // too large whatever follows (a bad byte further on would otherwise make
    // the same bytes 400 when they arrive at once and 414/431 in pieces).
    let line_limit = limits.max_target_bytes + 32;
    let mut cut = buf.len().min(limits.max_head_bytes + 1);
    if cut > line_limit && !buf[..=line_limit].contains(&b'\n') {
        cut = line_limit + 1;
    }
    let view = &buf[..cut];
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut head = httparse::Request::new(&mut slots);
    let parsed = head.parse(view);
    if let Some(target) = head.path {
        if target.len() > limits.max_target_bytes {
            return Err(ParseError::TargetTooLong { limit: limits.max_target_bytes });
        }
    }
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes && head.headers.len() <= limits.max_headers => {
            n
        }
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => return Err(too_large()),
        Ok(httparse::Status::Partial) if !view.contains(&b'\n') && view.len() > line_limit => {
            // Still inside the request line: it is the target that is too long.
            return Err(ParseError::TargetTooLong { limit: limits.max_target_bytes });
        }
        Ok(httparse::Status::Partial) if view.len() > limits.max_head_bytes => return Err(too_large()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ParseError::Malformed(e.to_string())),
    };
    // httparse guarantees these are set on Complete; refuse rather than trust.
    let (Some(method), Some(target), Some(minor_version)) = (head.method, head.path, head.version) else {
        return Err(ParseError::Malformed("incomplete request line".into()));
    };
    // RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host.
    let hosts = head.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count();
    if minor_version >= 1 && hosts != 1 {
        let why = if hosts == 0 { "an HTTP/1.1 request must carry a Host header" } else { "more than one Host header" };
        return Err(ParseError::Malformed(why.into()));
    }
    let (body, used) = match framing(head.headers, minor_version, limits)? {
        Framing::Length(body_len) => {
            if buf.len() < head_len + body_len {
                // Make room once for the whole body instead of growing per read.
                buf.reserve(head_len + body_len - buf.len());
                return Ok(None);
            }
            (None, head_len + body_len)
        }
        Framing::Chunked => match chunked(&buf[head_len..], limits.max_body_bytes)? {
            Some((body, used)) => (Some(body), head_len + used),
            None => return Ok(None),
        },
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    if !path.starts_with('/') && path != "*" {
        return Err(ParseError::Malformed(format!("request target `{path}` is not an absolute path")));
    }
    let method = Method::parse(method);
    let headers = head.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
    let mut whole = buf.split_to(used);
    let body = match body {
        Some(decoded) => decoded,
        None => whole.split_off(head_len).freeze(),
    };
    Ok(Some(Request { method, path, query, minor_version, headers, body, peer: None, id: String::new() }))
}

/// True when `buf` starts with a complete request head that asks
/// `Expect: 100-continue` (its body not yet all here): the client waits for
/// `100 Continue` before sending the body (RFC 9110 §10.1.1).
pub fn expects_continue(buf: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let mut head = httparse::Request::new(&mut slots);
    matches!(head.parse(buf), Ok(httparse::Status::Complete(_)))
        && head.version == Some(1)
        && head
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue"))
}

/// How the headers frame the body, with a declared length bounded by the limit.
fn framing(headers: &[httparse::Header<'_>], minor_version: u8, limits: &Limits) -> Result<Framing, ParseError> {
    let mut length: Option<u64> = None;
    let mut codings: Vec<String> = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let value =
                std::str::from_utf8(h.value).map_err(|_| ParseError::Malformed("invalid Transfer-Encoding".into()))?;
            codings.extend(value.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).ok().map(str::trim).unwrap_or("");
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Malformed("invalid Content-Length".into()));
            }
            let n: u64 = value.parse().map_err(|_| ParseError::Malformed("Content-Length too large".into()))?;
            if length.is_some_and(|prev| prev != n) {
                return Err(ParseError::Malformed("conflicting Content-Length headers".into()));
            }
            length = Some(n);
        }
    }
    if !codings.is_empty() || headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")) {
        if length.is_some() {
            return Err(ParseError::Malformed("both Transfer-Encoding and Content-Length".into()));
        }
        if minor_version == 0 {
            return Err(ParseError::Malformed("Transfer-Encoding on an HTTP/1.0 request".into()));
        }
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            [.., last] if last == "chunked" => Err(ParseError::UnsupportedTransferEncoding(codings.join(", "))),
            [] => Err(ParseError::Malformed("an empty Transfer-Encoding".into())),
            // Chunked must be the last coding, or the body has no end (RFC 9112 §6.3).
            _ => Err(ParseError::Malformed("Transfer-Encoding must end with chunked".into())),
        };
    }
    let length = length.unwrap_or(0);
    if length > limits.max_body_bytes as u64 {
        return Err(ParseError::BodyTooLarge { length, limit: limits.max_body_bytes });
    }
    // Fits in usize: it is at most max_body_bytes.
    Ok(Framing::Length(length as usize))
}

/// A chunked body at the front of `wire`: the decoded body and the bytes it
/// took, `None` while incomplete. The decoded size is held to `limit` as the
/// chunk sizes are read, before any chunk is buffered whole.
fn chunked(wire: &[u8], limit: usize) -> Result<Option<(Bytes, usize)>, ParseError> {
    let malformed = |why: &str| ParseError::Malformed(format!("chunked body: {why}"));
    // First pass: find the end and the chunks, copying nothing.
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let (mut at, mut total) = (0usize, 0usize);
    let end = 'chunks: loop {
        let Some(line) = line_at(wire, at).map_err(|_| malformed("a chunk-size line is too long"))? else {
            return Ok(None);
        };
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text).unwrap_or("").trim_end_matches([' ', '\t']);
        if size_text.is_empty() || size_text.len() > 15 || !size_text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("invalid chunk size"));
        }
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("invalid chunk size"))?;
        at += line.len() + 2;
        if size == 0 {
            // Trailer lines (dropped), then the empty line.
            let mut trailers = 0usize;
            loop {
                let Some(line) = line_at(wire, at).map_err(|_| malformed("a trailer line is too long"))? else {
                    return Ok(None);
                };
                at += line.len() + 2;
                if line.is_empty() {
                    break 'chunks at;
                }
                trailers += line.len();
                if trailers > MAX_CHUNK_LINE * 4 {
                    return Err(malformed("trailers too large"));
                }
            }
        }
        total = total.saturating_add(size);
        if total > limit {
            return Err(ParseError::BodyTooLarge { length: total as u64, limit });
        }
        if wire.len() < at + size + 2 {
            return Ok(None);
        }
        if &wire[at + size..at + size + 2] != b"\r\n" {
            return Err(malformed("a chunk does not end with CRLF"));
        }
        chunks.push((at, size));
        at += size + 2;
    };
    let mut body = BytesMut::with_capacity(total);
    for (from, len) in chunks {
        body.extend_from_slice(&wire[from..from + len]);
    }
    Ok(Some((body.freeze(), end)))
}

/// The line starting at `at` (without its CRLF), `None` if it has not ended
/// yet, `Err` if it is longer than [`MAX_CHUNK_LINE`].
fn line_at(wire: &[u8], at: usize) -> Result<Option<&[u8]>, ()> {
    let rest = wire.get(at..).unwrap_or_default();
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(n) if n > MAX_CHUNK_LINE => Err(()),
        Some(n) => Ok(Some(&rest[..n])),
        None if rest.len() > MAX_CHUNK_LINE + 1 => Err(()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
