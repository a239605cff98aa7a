//! A real HTTP connection loop on port 0 whose test-only service upgrades
//! `/echo` (echoes messages) and `/flood` (sends until the queue overflows);
//! the client speaks raw WebSocket bytes over a blocking std socket.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use super::super::testing::{masked, masked_close, masked_raw, server_frame};
use super::super::{encode, handshake, Upgrade};
use super::*;
use crate::net::http::{conn, Limits, Request, Response, Service};

struct TestService {
    limits: WsLimits,
    report: mpsc::Sender<Closed>,
}

async fn echo(mut ws: WsSocket, report: mpsc::Sender<Closed>) {
    let out = ws.sender();
    loop {
        let sent = match ws.recv().await {
            Incoming::Text(t) => out.send_frame(encode::text(std::str::from_utf8(&t).unwrap_or_default())),
            Incoming::Binary(b) => out.send_frame(encode::binary(&b)),
            Incoming::Closed(c) => return drop(report.send(c)),
        };
        assert!(sent.is_ok() || !out.is_open());
    }
}

async fn flood(mut ws: WsSocket, report: mpsc::Sender<Closed>) {
    let out = ws.sender();
    let chunk = encode::binary(&[7u8; 16 * 1024]);
    // One shared frame queued again and again, as a broadcast would be.
    while out.send_frame(chunk.clone()).is_ok() {
        yield_now().await;
    }
    loop {
        if let Incoming::Closed(c) = ws.recv().await {
            return drop(report.send(c));
        }
    }
}

/// Answers a text message `n` with `n` numbered frames of 1 KiB queued at
/// once: a burst larger than one coalesced write.
async fn burst(mut ws: WsSocket, report: mpsc::Sender<Closed>) {
    let out = ws.sender();
    loop {
        match ws.recv().await {
            Incoming::Text(t) => {
                let n: u32 = std::str::from_utf8(&t).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
                for i in 0..n {
                    let mut payload = vec![b'.'; 1024];
                    payload[..4].copy_from_slice(&i.to_be_bytes());
                    assert!(out.send_frame(encode::binary(&payload)).is_ok());
                }
            }
            Incoming::Binary(_) => {}
            Incoming::Closed(c) => return drop(report.send(c)),
        }
    }
}

async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

impl Service for TestService {
    async fn call(&self, request: Request) -> Response {
        let report = self.report.clone();
        match handshake::accept(&request) {
            Ok(ok) if request.path == "/echo" => ok.with_upgrade(Upgrade::new(self.limits, |ws| echo(ws, report))),
            Ok(ok) if request.path == "/burst" => ok.with_upgrade(Upgrade::new(self.limits, |ws| burst(ws, report))),
            Ok(ok) => ok.with_upgrade(Upgrade::new(self.limits, |ws| flood(ws, report))),
            Err(refused) => refused,
        }
    }
}

struct Harness {
    addr: SocketAddr,
    shutdown: crate::rt::shutdown::Shutdown,
    closed: mpsc::Receiver<Closed>,
}

fn start(limits: WsLimits) -> Harness {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let shutdown = crate::rt::shutdown::Shutdown::new();
    let (report, closed) = mpsc::channel();
    let global = shutdown.clone();
    std::thread::spawn(move || {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("runtime");
        rt.block_on(async move {
            let listener = monoio::net::TcpListener::from_std(std_listener).expect("listener");
            let service = std::rc::Rc::new(TestService { limits, report });
            let server_shutdown = Latch::following(&global);
            while let Ok((stream, peer)) = listener.accept().await {
                let (service, shutdown) = (service.clone(), server_shutdown.clone());
                monoio::spawn(async move {
                    if let conn::Closed::Upgraded(ws) =
                        conn::serve(stream.into(), peer, &*service, Limits::default(), &shutdown).await
                    {
                        ws.run(shutdown).await;
                    }
                });
            }
        });
    });
    Harness { addr, shutdown, closed }
}

fn limits() -> WsLimits {
    WsLimits { close_timeout: Duration::from_millis(500), ..WsLimits::default() }
}

struct Client {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

const REQUEST: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

impl Client {
    /// Connects and upgrades, sending `first` right behind the request.
    fn open(h: &Harness, path: &str, first: &[u8]) -> Client {
        let mut stream = std::net::TcpStream::connect(h.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{REQUEST}").into_bytes();
        req.extend_from_slice(first);
        stream.write_all(&req).expect("write");
        let mut c = Client { stream, buf: Vec::new() };
        while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            c.fill();
        }
        let end = c.buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        let head = String::from_utf8(c.buf.drain(..end).collect()).expect("utf8");
        assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        c
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some(f) = server_frame(&mut self.buf) {
                return f;
            }
            assert!(self.fill() > 0, "connection closed while waiting for a frame");
        }
    }

    /// Reads frames until a close; returns its code and reason, answers it.
    fn expect_close(&mut self) -> (u16, String) {
        loop {
            let (b0, payload) = self.frame();
            if b0 == 0x88 {
                self.send(&masked_close(1000, ""));
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return (code, String::from_utf8(payload[2..].to_vec()).expect("utf8"));
            }
        }
    }
}

fn closed_by_server(h: &Harness) -> (u16, String) {
    match h.closed.recv_timeout(Duration::from_secs(5)).expect("session ended") {
        Closed::ByServer(f) => (f.code, f.reason),
        other => panic!("expected a server close, got {other:?}"),
    }
}

#[test]
fn refused_handshake_gets_426_json() {
    let h = start(limits());
    let mut s = std::net::TcpStream::connect(h.addr).expect("connect");
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut got = vec![0u8; 1024];
    let n = s.read(&mut got).expect("read");
    let text = String::from_utf8_lossy(&got[..n]);
    assert!(text.starts_with("HTTP/1.1 426 "), "{text}");
    assert!(text.contains(r#""code":"upgrade_required""#), "{text}");
}

#[test]
fn echoes_text_and_binary_answers_pings_and_echoes_the_close() {
    let h = start(limits());
    // The first frame rides in the same packet as the request.
    let mut c = Client::open(&h, "/echo", &masked(0x1, b"early"));
    assert_eq!(c.frame(), (0x81, b"early".to_vec()));
    c.send(&masked(0x2, &[1, 2, 3]));
    assert_eq!(c.frame(), (0x82, vec![1, 2, 3]));
    c.send(&[masked_raw(0x01, b"frag"), masked(0x9, b"ping"), masked_raw(0x80, b"mented")].concat());
    assert_eq!(c.frame(), (0x8A, b"ping".to_vec()));
    assert_eq!(c.frame(), (0x81, b"fragmented".to_vec()));
    let big = vec![b'z'; 70_000];
    c.send(&masked(0x1, &big));
    assert_eq!(c.frame(), (0x81, big));
    c.send(&masked_close(1000, "bye"));
    let (b0, payload) = c.frame();
    assert_eq!((b0, payload), (0x88, 1000u16.to_be_bytes().to_vec()));
    assert_eq!(c.fill(), 0, "the server closes TCP after the handshake");
    let closed = h.closed.recv_timeout(Duration::from_secs(5)).expect("ended");
    assert_eq!(closed, Closed::ByClient(Some(CloseFrame { code: 1000, reason: "bye".into() })));
}

#[test]
fn oversized_message_closes_1009() {
    let h = start(WsLimits { max_message_bytes: 1000, ..limits() });
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&masked(0x2, &[0; 1001]));
    assert_eq!(c.expect_close(), (1009, "message too big".into()));
    assert_eq!(closed_by_server(&h), (1009, "message too big".into()));
}

/// The rest of a message far larger than any read is still arriving when the
/// server closes: it is read and dropped, so the close is not lost to a reset.
#[test]
fn a_message_far_over_the_limit_still_gets_its_1009() {
    let h = start(WsLimits { max_message_bytes: 1000, ..limits() });
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&masked(0x2, &vec![7; 200_000]));
    assert_eq!(c.expect_close(), (1009, "message too big".into()));
    assert_eq!(closed_by_server(&h), (1009, "message too big".into()));
}

#[test]
fn protocol_error_closes_1002() {
    let h = start(limits());
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&encode::text("unmasked"));
    assert_eq!(c.expect_close(), (1002, "protocol error".into()));
}

#[test]
fn message_rate_over_the_limit_closes_1008() {
    let h = start(WsLimits { messages_per_second: 5, ..limits() });
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&masked(0x1, b"x").repeat(20));
    assert_eq!(c.expect_close(), (1008, "rate limit".into()));
    assert_eq!(closed_by_server(&h), (1008, "rate limit".into()));
}

/// An endless fragmented message of empty continuations: every frame counts
/// against the rate limit, so it ends like any other flood.
#[test]
fn endless_empty_continuation_frames_hit_the_rate_limit() {
    let h = start(WsLimits { messages_per_second: 5, ..limits() });
    let mut c = Client::open(&h, "/echo", b"");
    let flood = [masked_raw(0x01, b"x"), masked_raw(0x00, b"").repeat(50)].concat();
    c.send(&flood);
    assert_eq!(c.expect_close(), (1008, "rate limit".into()));
    assert_eq!(closed_by_server(&h), (1008, "rate limit".into()));
}

#[test]
fn a_client_that_stops_reading_is_closed_1008_and_others_are_served() {
    let h = start(WsLimits { send_queue_bytes: 64 * 1024, ..limits() });
    let _stalled = Client::open(&h, "/flood", b"");
    assert_eq!(closed_by_server(&h), (1008, "slow consumer".into()));
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&masked(0x1, b"still here"));
    assert_eq!(c.frame(), (0x81, b"still here".to_vec()));
}

/// A client that pings without reading gets at most one pending pong: a
/// newer ping's pong replaces the unwritten one (RFC 6455 §5.5.3), so pending
/// control frames stay bounded and the connection lives on.
#[test]
fn pongs_to_a_client_that_does_not_read_are_coalesced() {
    let h = start(WsLimits { send_queue_bytes: 16 * 1024, messages_per_second: u32::MAX, ..limits() });
    let mut c = Client::open(&h, "/echo", b"");
    let mut stream = c.stream.try_clone().expect("clone");
    let pings = masked(0x9, &[b'p'; 125]).repeat(1000);
    let rounds = 200;
    let writer = std::thread::spawn(move || {
        for _ in 0..rounds {
            stream.write_all(&pings).expect("the server keeps reading");
        }
        stream.write_all(&masked(0x1, b"still here")).expect("write");
    });
    let mut pongs = 0;
    loop {
        match c.frame() {
            (0x8A, _) => pongs += 1,
            (0x81, text) => {
                assert_eq!(text, b"still here".to_vec());
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    writer.join().expect("writer");
    assert!(pongs > 0 && pongs < rounds * 1000 / 2, "{pongs} pongs for {} pings", rounds * 1000);
}

#[test]
fn shutdown_closes_1001_going_away() {
    let h = start(limits());
    let mut c = Client::open(&h, "/echo", b"");
    c.send(&masked(0x1, b"hi"));
    assert_eq!(c.frame(), (0x81, b"hi".to_vec()));
    h.shutdown.trigger();
    assert_eq!(c.expect_close(), (1001, "going away".into()));
    assert_eq!(closed_by_server(&h), (1001, "going away".into()));
}

#[test]
fn a_burst_larger_than_one_write_arrives_whole_and_in_order() {
    let h = start(limits());
    let mut c = Client::open(&h, "/burst", b"");
    let n = 3 * crate::net::send_queue::MAX_BATCH_BYTES / 1024 + 7;
    for _ in 0..2 {
        c.send(&masked(0x1, n.to_string().as_bytes()));
        for i in 0..n {
            let (opcode, payload) = c.frame();
            assert_eq!((opcode, payload.len()), (0x82, 1024));
            assert_eq!(u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]), i as u32);
        }
    }
}
