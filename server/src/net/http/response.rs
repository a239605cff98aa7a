//! HTTP responses and their encoding. Every error the server sends has one
//! shape, `{"error":{"code":"snake_case","message":"…"}}`, built by
//! [`Response::error`]: both the parser's refusals and `ApiError` go through it.

use bytes::Bytes;
use serde::Serialize;

use crate::net::ws::Upgrade;

/// A response ready to encode. `Content-Length` and `Connection` are added by
/// [`Response::encode`], never by handlers. A `101` may carry an [`Upgrade`]:
/// the connection then hands its stream to the WebSocket layer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub upgrade: Option<Upgrade>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Bytes::new(), upgrade: None }
    }

    /// `value` serialized as JSON.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status).with_json_body(body),
            // Only a type that cannot be JSON (a map with non-string keys) gets here: a bug.
            Err(e) => Response::error(500, "internal", &format!("response could not be encoded: {e}")),
        }
    }

    /// The error shape every failure uses.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        let body = ErrorBody { error: ErrorDetail { code, message } };
        // Two strings cannot fail to serialize; the fallback keeps this panic-free.
        let bytes =
            serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"code":"internal","message":""}}"#.to_vec());
        Response::new(status).with_json_body(bytes)
    }

    /// A plain-text body (`/metrics`) with its content type.
    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        let mut r = Response::new(status).with_header("content-type", content_type);
        r.body = Bytes::from(body);
        r
    }

    /// Switches protocols after this (`101`) response: see `net::ws::Upgrade`.
    pub fn with_upgrade(mut self, upgrade: Upgrade) -> Response {
        self.upgrade = Some(upgrade);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    fn with_json_body(mut self, body: Vec<u8>) -> Response {
        self.headers.push(("content-type", "application/json".into()));
        self.body = Bytes::from(body);
        self
    }

    /// Appends the wire form to `out`. `head_only` (a HEAD request) keeps the
    /// headers, including the length of the body it leaves out.
    pub fn encode(&self, head_only: bool, close: bool, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            // Header values come from our own code; strip CR/LF anyway so no
            // value can ever split the response.
            out.extend(value.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
            out.extend_from_slice(b"\r\n");
        }
        if self.status >= 200 {
            let _ = write!(out, "date: {}\r\n", super::date::now());
        }
        // 1xx and 204 have no body and must not say they have one (RFC 9110 §8.6).
        if self.status >= 200 && self.status != 204 {
            let _ = write!(out, "content-length: {}\r\n", self.body.len());
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// The reason phrase for the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        408 => "Request Timeout",
        411 => "Length Required",
        414 => "URI Too Long",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Response, head_only: bool, close: bool) -> String {
        let mut out = Vec::new();
        r.encode(head_only, close, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn error_has_the_one_json_shape() {
        let r = Response::error(404, "not_found", "no \"route\"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v, serde_json::json!({"error": {"code": "not_found", "message": "no \"route\""}}));
    }

    #[test]
    fn encode_adds_length_and_close_and_head_drops_only_the_body() {
        let r = Response::json(200, &serde_json::json!({"status": "ok"}));
        let full = wire(&r, false, true);
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(full.contains("content-length: 15\r\n") && full.contains("connection: close\r\n"));
        assert!(full.ends_with("\r\n\r\n{\"status\":\"ok\"}"));
        let head = wire(&r, true, false);
        assert!(head.contains("content-length: 15\r\n") && head.ends_with("\r\n\r\n"));
        assert!(!head.contains("connection"));
    }
}
