//! Plain HTTP on the TLS port: the client gets one clear answer in plain
//! HTTP, then the connection closes. 400 `tls_required` by default (saying
//! which URL to use); with `--tls-redirect`, 308 to `https://Host/target`
//! (308, not 301: the method and body are kept on the retry).
//!
//! Only the request head is read (bounded in size and time); the body, if
//! any, is read and dropped after the answer so the client sees the answer
//! rather than a reset.

use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::net::http::Response;

/// A head larger than this is not waited for: the answer goes without it.
const MAX_HEAD: usize = 16 * 1024;
/// How long the head may take to arrive, and the drain after the answer.
const WAIT: Duration = Duration::from_secs(5);
/// What is read and dropped after the answer at most.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Answers the plain request whose first bytes are `buf`, then closes.
pub(super) async fn answer(mut tcp: TcpStream, mut buf: Vec<u8>, redirect: bool) {
    let deadline = Instant::now() + WAIT;
    let target = loop {
        match head(&buf) {
            Some(found) => break found,
            None if buf.len() >= MAX_HEAD => break None,
            None => {}
        }
        buf.reserve(4096);
        let (len, cap) = (buf.len(), buf.capacity());
        let left = deadline.saturating_duration_since(Instant::now());
        // A Vec is read into from its start: read into its spare capacity.
        let read = monoio::time::timeout(left, tcp.read(buf.slice_mut(len..cap))).await;
        let Ok((res, back)) = read else { break None };
        buf = back.into_inner();
        if !matches!(res, Ok(n) if n > 0) {
            break None;
        }
    };
    let mut out = Vec::new();
    response(target, redirect).encode(false, true, &mut out);
    if tcp.write_all(out).await.0.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    drain(&mut tcp, deadline + WAIT).await;
}

/// `Some(Some(https URL))` once the head is complete and names a usable
/// host; `Some(None)` for a complete head without one; `None` while the head
/// is incomplete.
fn head(buf: &[u8]) -> Option<Option<String>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return None,
        // Not HTTP (or too many headers): answer without a URL.
        Err(_) => return Some(None),
    }
    let host = request.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host")).map(|h| h.value);
    let host = host.and_then(|h| std::str::from_utf8(h).ok()).map(str::trim).filter(|h| valid_host(h));
    let path = request.path.filter(|p| p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()));
    Some(host.map(|h| format!("https://{h}{}", path.unwrap_or("/"))))
}

/// A Host value safe to put in a Location header: a name or address and
/// an optional port, nothing that could end the header or change the URL.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_'))
}

fn response(url: Option<String>, redirect: bool) -> Response {
    match (url, redirect) {
        (Some(url), true) => {
            let message = format!("this port speaks HTTPS: use {url}");
            Response::error(308, "tls_required", &message).with_header("location", url)
        }
        (Some(url), false) => Response::error(400, "tls_required", &format!("this port speaks HTTPS: use {url}")),
        (None, _) => Response::error(400, "tls_required", "this port speaks HTTPS: use https://"),
    }
}

/// Reads and drops what the client still sends, until it stops or the bound.
async fn drain(tcp: &mut TcpStream, deadline: Instant) {
    let (mut dropped, mut buf) = (0, vec![0u8; 16 * 1024]);
    while dropped < DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((res, back)) = monoio::time::timeout(left, tcp.read(buf)).await else { return };
        match res {
            Ok(n) if n > 0 => dropped += n,
            _ => return,
        }
        buf = back;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_head_gives_the_https_url() {
        let head_bytes = b"GET /api/v1/x?a=1 HTTP/1.1\r\nHost: example.test:4000\r\n\r\n";
        assert_eq!(head(head_bytes), Some(Some("https://example.test:4000/api/v1/x?a=1".into())));
        assert_eq!(head(b"GET / HTTP/1.1\r\nHo"), None, "partial");
        assert_eq!(head(b"GET / HTTP/1.1\r\n\r\n"), Some(None), "no host");
        assert_eq!(head(b"\x00\x01garbage\r\n\r\n"), Some(None), "not http");
    }

    #[test]
    fn a_host_that_could_bend_the_location_is_not_used() {
        for bad in ["a b", "evil.test/path", "x@y", "a\"b", ""] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert!(valid_host("[::1]:4000") && valid_host("localhost"));
    }

    #[test]
    fn redirect_is_308_with_location_and_refusal_is_400() {
        let r = response(Some("https://h/p".into()), true);
        assert_eq!(r.status, 308);
        assert!(r.headers.iter().any(|(n, v)| *n == "location" && v == "https://h/p"));
        let r = response(Some("https://h/p".into()), false);
        assert_eq!(r.status, 400);
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(body.contains("\"tls_required\"") && body.contains("https://h/p"), "{body}");
        assert_eq!(response(None, true).status, 400, "no host: nothing to redirect to");
    }
}
