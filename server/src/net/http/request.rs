//! A parsed HTTP request: method, path, query, headers and a body that shares
//! the connection's read buffer (no copy).

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// HTTP methods the API uses, plus anything else verbatim (answered 405/404).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request. Header names keep their spelling; look them up with
/// [`Request::header`], which ignores case.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    /// The client's address; `None` only in tests.
    pub peer: Option<SocketAddr>,
    /// The id its log lines carry and `x-request-id` echoes: set by the
    /// service that answers it (empty until then).
    pub id: String,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Header `name` as text, if present and valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok()).map(str::trim)
    }

    /// Whether the client asked to close the connection after this request:
    /// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
    pub fn wants_close(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.minor_version == 0 {
            !has("keep-alive")
        } else {
            has("close")
        }
    }
}
