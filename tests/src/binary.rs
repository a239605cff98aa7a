//! A blocking client of the binary protocol for end-to-end tests, over TCP or
//! over `/socket/binary` (one frame per WebSocket binary message). It speaks
//! through the `converger-protocol` codec and exposes the raw byte stream too,
//! so tests can send what no SDK would (garbage, oversized frames).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use converger_protocol::{
    decode_frame, Auth, Draft, ErrorCode, Frame, Hello, Subscribe, SubscribeItem, Version, Welcome,
};
use tungstenite::{Message, WebSocket};

const READ_TIMEOUT: Duration = Duration::from_secs(10);

enum Transport {
    Tcp(TcpStream),
    Ws(Box<WebSocket<TcpStream>>),
}

pub struct BinClient {
    transport: Transport,
    buf: Vec<u8>,
    /// The protocol version frames are read and written in: 1 until a
    /// Welcome names another.
    version: Version,
}

/// What the server sent last before closing.
// One value per read in a test: the size of a Frame inline costs nothing, and
// matching `Next::Frame(Frame::…)` stays direct.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    Closed,
}

/// A UUID in text form as the 16 bytes the protocol carries.
/// A text message to `conversation` from `sender` (empty: the credential's),
/// every other field left unset.
pub fn message(conversation: [u8; 16], sender: &str, text: &str) -> Draft {
    Draft {
        conversation_id: conversation,
        kind: "message".into(),
        sender: sender.into(),
        text: Some(text.into()),
        ..Draft::default()
    }
}

pub fn uuid_bytes(s: &str) -> [u8; 16] {
    *uuid::Uuid::parse_str(s).expect("uuid").as_bytes()
}

impl BinClient {
    /// A TCP connection, before any frame.
    pub fn tcp(addr: SocketAddr) -> BinClient {
        let stream = TcpStream::connect(addr).expect("connect to the binary listener");
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        BinClient { transport: Transport::Tcp(stream), buf: Vec::new(), version: Version::V1 }
    }

    /// A WebSocket on `/socket/binary` (with `?token=` when given).
    pub fn websocket(http: SocketAddr, token: Option<&str>) -> Result<BinClient, tungstenite::Error> {
        let stream = TcpStream::connect(http).expect("connect to the HTTP listener");
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        let url = format!("ws://{http}/socket/binary{query}");
        let (ws, _) = tungstenite::client(url, stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
        })?;
        Ok(BinClient { transport: Transport::Ws(Box::new(ws)), buf: Vec::new(), version: Version::V1 })
    }

    /// Connects and authenticates with a client token.
    pub fn with_token(addr: SocketAddr, token: &str) -> (BinClient, Welcome) {
        let mut c = BinClient::tcp(addr);
        let welcome = c.hello(Auth::Token(token.into())).expect("welcome");
        (c, welcome)
    }

    /// Connects and authenticates with a tenant API key.
    pub fn with_api_key(addr: SocketAddr, key: &str) -> (BinClient, Welcome) {
        let mut c = BinClient::tcp(addr);
        let welcome = c.hello(Auth::ApiKey(key.into())).expect("welcome");
        (c, welcome)
    }

    /// Sends Hello offering version 1; the Welcome, or the frame that refused it.
    pub fn hello(&mut self, auth: Auth) -> Result<Welcome, Box<Frame>> {
        self.hello_versions(1, 1, auth)
    }

    /// Sends Hello offering `min..=max`; the Welcome (whose version the
    /// connection then speaks), or the frame that refused it.
    pub fn hello_versions(&mut self, min: u8, max: u8, auth: Auth) -> Result<Welcome, Box<Frame>> {
        self.send(Hello { min_version: min, max_version: max, auth, client: "e2e".into() });
        match self.read_next() {
            Next::Frame(Frame::Welcome(w)) => {
                self.version = Version::from_u8(w.version).expect("the server picks a version both speak");
                Ok(w)
            }
            Next::Frame(other) => Err(Box::new(other)),
            Next::Closed => panic!("closed during the handshake"),
        }
    }

    pub fn send(&mut self, frame: impl Into<Frame>) {
        let mut out = BytesMut::new();
        frame.into().encode(self.version, &mut out).expect("encode");
        self.send_raw(&out);
    }

    /// Bytes as they are: on WebSocket, one binary message.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.transport {
            Transport::Tcp(s) => s.write_all(bytes).expect("write"),
            Transport::Ws(ws) => ws.send(Message::binary(bytes.to_vec())).expect("send"),
        }
    }

    /// The next frame, or the end of the connection.
    pub fn read_next(&mut self) -> Next {
        match self.read_by(None) {
            Some(next) => next,
            None => unreachable!("no deadline, no timeout"),
        }
    }

    /// The next frame or the end of the connection before `deadline`; `None`
    /// when nothing complete arrived by then (a partial frame is kept).
    pub fn next_by(&mut self, deadline: Instant) -> Option<Next> {
        self.read_by(Some(deadline))
    }

    fn read_by(&mut self, deadline: Option<Instant>) -> Option<Next> {
        loop {
            if let Some((frame, used)) = decode_frame(&self.buf, self.version).expect("the server sends valid frames") {
                self.buf.drain(..used);
                return Some(Next::Frame(frame));
            }
            let timeout = match deadline {
                None => READ_TIMEOUT,
                Some(d) => match d.checked_duration_since(Instant::now()).filter(|t| !t.is_zero()) {
                    Some(left) => left.min(READ_TIMEOUT),
                    None => return None,
                },
            };
            let timed_out = |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
            match &mut self.transport {
                Transport::Tcp(s) => {
                    let _ = s.set_read_timeout(Some(timeout));
                    let mut chunk = [0u8; 64 * 1024];
                    match s.read(&mut chunk) {
                        Ok(0) => return Some(Next::Closed),
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(Next::Closed),
                        Err(e) if deadline.is_some() && timed_out(&e) => {}
                        Err(e) => panic!("read: {e}"),
                    }
                }
                Transport::Ws(ws) => {
                    let _ = ws.get_mut().set_read_timeout(Some(timeout));
                    match ws.read() {
                        Ok(Message::Binary(b)) => self.buf.extend_from_slice(&b),
                        Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => return Some(Next::Closed),
                        Ok(_) => {}
                        // tungstenite keeps a partial message: reading again is safe.
                        Err(tungstenite::Error::Io(e)) if deadline.is_some() && timed_out(&e) => {}
                        Err(e) => panic!("ws read: {e}"),
                    }
                }
            }
        }
    }

    /// Subscribes to one conversation after `after_seq`; the conversation's
    /// last seq, from `Subscribed`.
    pub fn subscribe_one(&mut self, conversation: [u8; 16], after_seq: u64) -> u64 {
        self.send(Subscribe { request_id: 7, items: vec![SubscribeItem { conversation_id: conversation, after_seq }] });
        match self.frame() {
            Frame::Subscribed(s) => {
                assert_eq!(s.request_id, 7);
                s.items[0].result.clone().expect("subscribed")
            }
            other => panic!("expected Subscribed, got {other:?}"),
        }
    }

    /// The seqs of delivered activities (skipping other frames) until `n`
    /// have come or `deadline` passes: the caller asserts on what came.
    pub fn delivered_by(&mut self, n: usize, deadline: Instant) -> Vec<u64> {
        let mut seqs = Vec::new();
        while seqs.len() < n {
            match self.next_by(deadline) {
                Some(Next::Frame(Frame::Deliver(d))) => seqs.extend(d.activities.iter().map(|a| a.seq)),
                Some(Next::Frame(_)) => {}
                Some(Next::Closed) | None => break,
            }
        }
        seqs
    }

    /// The next frame; panics when the connection closed instead.
    pub fn frame(&mut self) -> Frame {
        match self.read_next() {
            Next::Frame(f) => f,
            Next::Closed => panic!("the server closed the connection"),
        }
    }

    /// Expects an Error frame with the close flag and `code`, then the end.
    pub fn expect_closing_error(&mut self, code: ErrorCode) -> String {
        let message = match self.frame() {
            Frame::Error(e) => {
                assert_eq!(e.error_code(), Some(code), "{e:?}");
                assert!(e.close, "the error closes the connection: {e:?}");
                e.message
            }
            other => panic!("expected Error {}, got {other:?}", code.name()),
        };
        assert!(matches!(self.read_next(), Next::Closed), "closed after the error");
        message
    }
}
