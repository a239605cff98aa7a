//! A minimal HTTP/1.1 client over a tokio `TcpStream`, enough for the REST
//! helpers: one request per connection (`Connection: close`), JSON bodies
//! with `Content-Length`, responses with `Content-Length`, chunked or
//! read-to-close bodies, bounded in size. Plain HTTP only (see the crate
//! docs for why there is no TLS here).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// The largest response accepted (a page of 1000 activities with big texts
/// stays far below).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// Where the API lives: `http://host:port[/prefix]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// `host:port`, for connecting and for the `Host` header.
    pub authority: String,
    /// Path prefix without a trailing slash (usually empty).
    pub prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl> {
        if url.starts_with("https://") {
            return Err(Error::InvalidArgument(
                "https is not supported by the SDK's built-in HTTP client: put the REST API behind plain HTTP on a trusted network, or use any HTTP client with TLS (the API is plain JSON)".into(),
            ));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() {
            return Err(Error::InvalidArgument(format!("no host in {url:?}")));
        }
        let authority = if authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        Ok(BaseUrl { authority, prefix })
    }
}

/// One response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request and reads its response within `timeout`.
pub(crate) async fn request(
    base: &BaseUrl,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(&base.authority).await?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: converger-rust/{}\r\n",
            base.prefix,
            base.authority,
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(token) = bearer {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        stream.write_all(&out).await?;
        read_response(&mut stream).await
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(Error::Timeout(timeout)))
}

async fn read_response(stream: &mut TcpStream) -> Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut eof = false;
    loop {
        if let Some(response) = parse(&buf, eof)? {
            return Ok(response);
        }
        if eof {
            return Err(Error::ConnectionLost);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(Error::Http { status: 0, body: "response too large".into() });
        }
        eof = stream.read_buf(&mut buf).await? == 0;
    }
}

/// The response if `buf` holds all of it (`eof`: nothing more will come).
fn parse(buf: &[u8], eof: bool) -> Result<Option<Response>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::Http { status: 0, body: format!("malformed response: {e}") }),
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &buf[head_len..];
    let body = if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize =
            length.parse().map_err(|_| Error::Http { status, body: format!("bad content-length {length:?}") })?;
        rest.get(..length).map(<[u8]>::to_vec)
    } else if eof || status == 204 || status == 304 {
        Some(rest.to_vec())
    } else {
        None
    };
    Ok(body.map(|body| Response { status, body }))
}

/// A chunked body, if complete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| Error::Http { status: 0, body: format!("bad chunk size {size_text:?}") })?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers (if any) end with an empty line; the body is whole.
            return Ok(Some(body));
        }
        let Some(chunk) = rest.get(..size) else { return Ok(None) };
        body.extend_from_slice(chunk);
        let Some(after) = rest.get(size + 2..) else { return Ok(None) };
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse() {
        let b = BaseUrl::parse("http://127.0.0.1:4000").unwrap();
        assert_eq!((b.authority.as_str(), b.prefix.as_str()), ("127.0.0.1:4000", ""));
        let b = BaseUrl::parse("example.com/converger/").unwrap();
        assert_eq!((b.authority.as_str(), b.prefix.as_str()), ("example.com:80", "/converger"));
        assert!(matches!(BaseUrl::parse("https://x"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn responses_parse_by_length_by_chunks_and_to_close() {
        let by_length = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
        assert!(parse(&by_length[..by_length.len() - 1], false).unwrap().is_none());
        let r = parse(by_length, false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));

        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=1\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        for cut in 0..chunked.len() - 5 {
            assert!(parse(&chunked[..cut], false).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(parse(chunked, false).unwrap().unwrap().body, b"{\"a\":1}");

        let to_close = b"HTTP/1.1 200 OK\r\n\r\nabc";
        assert!(parse(to_close, false).unwrap().is_none());
        assert_eq!(parse(to_close, true).unwrap().unwrap().body, b"abc");
    }
}
