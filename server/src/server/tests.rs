//! The whole server in-process on port 0 with a stub store: health, pipelining,
//! HEAD, error shapes, 413, and a prompt shutdown with idle connections open.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{FileConfig, Options};
use crate::testing::StubStore;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// Reads `n` responses (to non-HEAD requests except where `head` says so).
fn read_replies(stream: &mut TcpStream, heads: &[bool]) -> Vec<Reply> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < heads.len() {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let headers: Vec<(String, String)> =
                r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into())).collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().expect("length"))
                .unwrap_or(0);
            let body_len = if heads[out.len()] { 0 } else { len };
            if buf.len() >= n + body_len {
                let status = r.code.expect("status");
                out.push(Reply { status, headers, body: buf[n..n + body_len].to_vec() });
                buf.drain(..n + body_len);
                continue;
            }
        }
        let got = stream.read(&mut chunk).expect("read");
        assert!(got > 0, "server closed after {} replies", out.len());
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

fn start(store: Arc<StubStore>) -> Server {
    let o = Options { shards: Some(2), max_body_bytes: Some(100), shutdown_grace_ms: Some(2000), ..Options::default() };
    let config = Config::resolve(o, FileConfig::default()).expect("config");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listeners = Listeners::bind(any, any, 2).expect("bind");
    Server::start(config, store, listeners).expect("start")
}

fn connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.http_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

#[test]
fn health_endpoints_and_readiness_follow_the_store() {
    let store = Arc::new(StubStore::default());
    let server = start(store.clone());
    let mut c = connect(&server);
    c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let r = read_replies(&mut c, &[false; 3]);
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 200]);
    assert_eq!(r[0].json(), serde_json::json!({"status": "ok"}));
    assert_eq!(r[2].json()["storage"], "stub");
    store.set_down(true);
    c.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let r = read_replies(&mut c, &[false]);
    assert_eq!(r[0].status, 503);
    assert_eq!(r[0].json()["error"]["code"], "storage_unavailable");
    server.stop();
}

#[test]
fn pipelined_requests_answer_in_order_with_head_and_errors() {
    let server = start(Arc::new(StubStore::default()));
    let mut c = connect(&server);
    let wire = b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // Byte by byte: the server must cope with requests split anywhere.
    for b in wire {
        c.write_all(&[*b]).expect("write");
    }
    let r = read_replies(&mut c, &[true, false, false, false]);
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 404, 405, 200]);
    assert!(r[0].body.is_empty() && r[0].header("content-length") == Some("15"));
    assert_eq!(r[1].json()["error"]["code"], "not_found");
    assert_eq!(r[2].header("allow"), Some("GET, HEAD"));
    assert_eq!(r[3].header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).expect("eof"), 0, "closed after Connection: close");
    server.stop();
}

#[test]
fn oversized_body_gets_413_and_close() {
    let server = start(Arc::new(StubStore::default()));
    let mut c = connect(&server);
    c.write_all(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n").expect("write");
    let r = read_replies(&mut c, &[false]);
    assert_eq!(r[0].status, 413);
    assert_eq!(r[0].json()["error"]["code"], "payload_too_large");
    assert_eq!(r[0].header("connection"), Some("close"));
    server.stop();
}

#[test]
fn stop_closes_idle_keep_alive_connections_promptly() {
    let server = start(Arc::new(StubStore::default()));
    let mut idle = connect(&server);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    read_replies(&mut idle, &[false]);
    let t = Instant::now();
    server.stop();
    assert!(t.elapsed() < Duration::from_secs(1), "took {:?}", t.elapsed());
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).expect("eof"), 0);
}
