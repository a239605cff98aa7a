//! Incremental HTTP/1.1 request parsing on top of `httparse`.
//!
//! [`parse`] looks at the connection's buffer and either takes one whole request
//! off its front (`Ok(Some)`), says more bytes are needed (`Ok(None)`, the
//! buffer is untouched), or fails. It never panics on input and never trusts a
//! length it has not bounded: the head is capped by `max_head_bytes` (431) and
//! the body by `max_body_bytes` (413) *before* the body is buffered.
//!
//! Only `Content-Length` bodies are accepted. `Transfer-Encoding` is refused
//! (411), and a request carrying both is malformed (400): that combination is
//! the classic request-smuggling vector.

use bytes::BytesMut;

use super::request::{Method, Request};

/// Most headers one request may carry (beyond: 431).
pub const MAX_HEADERS: usize = 64;

/// Size limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Request line plus headers.
    pub max_head_bytes: usize,
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
    #[error("request headers are larger than {limit} bytes or more than {MAX_HEADERS} headers")]
    HeadersTooLarge { limit: usize },
    #[error("request body of {length} bytes is larger than the limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    #[error("Transfer-Encoding is not supported; send the body with a Content-Length")]
    LengthRequired,
}

impl ParseError {
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Malformed(_) => 400,
            ParseError::HeadersTooLarge { .. } => 431,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::LengthRequired => 411,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "bad_request",
            ParseError::HeadersTooLarge { .. } => "headers_too_large",
            ParseError::BodyTooLarge { .. } => "payload_too_large",
            ParseError::LengthRequired => "length_required",
        }
    }
}

/// Takes one complete request off the front of `buf`, if it holds one.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Request>, ParseError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut slots);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Err(ParseError::HeadersTooLarge { limit: limits.max_head_bytes })
        }
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(ParseError::HeadersTooLarge { limit: limits.max_head_bytes })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ParseError::Malformed(e.to_string())),
    };
    // httparse guarantees these are set on Complete; refuse rather than trust.
    let (Some(method), Some(target), Some(minor_version)) = (head.method, head.path, head.version) else {
        return Err(ParseError::Malformed("incomplete request line".into()));
    };
    let body_len = body_length(head.headers, limits)?;
    if buf.len() < head_len + body_len {
        // Make room once for the whole body instead of growing per read.
        buf.reserve(head_len + body_len - buf.len());
        return Ok(None);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    if !path.starts_with('/') && path != "*" {
        return Err(ParseError::Malformed(format!("request target `{path}` is not an absolute path")));
    }
    let method = Method::parse(method);
    let headers = head.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
    let mut whole = buf.split_to(head_len + body_len);
    let body = whole.split_off(head_len).freeze();
    Ok(Some(Request { method, path, query, minor_version, headers, body, peer: None }))
}

/// The body length declared by the headers, bounded by the limit.
fn body_length(headers: &[httparse::Header<'_>], limits: &Limits) -> Result<usize, ParseError> {
    let mut length: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let has_cl = headers.iter().any(|h| h.name.eq_ignore_ascii_case("content-length"));
            return Err(if has_cl {
                ParseError::Malformed("both Transfer-Encoding and Content-Length".into())
            } else {
                ParseError::LengthRequired
            });
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
    let length = length.unwrap_or(0);
    if length > limits.max_body_bytes as u64 {
        return Err(ParseError::BodyTooLarge { length, limit: limits.max_body_bytes });
    }
    // Fits in usize: it is at most max_body_bytes.
    Ok(length as usize)
}

#[cfg(test)]
mod tests;
