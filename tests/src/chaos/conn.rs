//! Connections for clients of a server that may die at any moment: unlike the
//! test clients ([`crate::phoenix`], [`crate::binary`]) nothing here panics on
//! a broken or refused connection; every failure is an `Err` the load client
//! turns into an unknown outcome and a reconnect.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use converger_protocol::{decode_frame, Auth, Frame, Hello, Version};
use serde_json::Value;
use tungstenite::{Message, WebSocket};

/// How long a client waits for any one answer before it calls the outcome
/// unknown (and retries on a new connection while the first may still be
/// answered: the `pause` fault holds the server for longer than this).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

fn broken(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(ErrorKind::ConnectionAborted, what.to_string())
}

fn tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    Ok(stream)
}

/// A Phoenix Channels V2 socket.
pub struct PhxConn {
    ws: WebSocket<TcpStream>,
    next_ref: u64,
}

impl PhxConn {
    pub fn connect(http: SocketAddr, token: &str) -> io::Result<PhxConn> {
        let url = format!("ws://{http}/socket/websocket?token={token}&vsn=2.0.0");
        let (ws, _) = tungstenite::client(url, tcp(http)?).map_err(|e| broken(format!("handshake: {e}")))?;
        Ok(PhxConn { ws, next_ref: 1 })
    }

    /// Sends `event` on `topic`; its ref, which the reply carries.
    pub fn push(&mut self, topic: &str, event: &str, payload: Value) -> io::Result<String> {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let msg = serde_json::json!(["1", r, topic, event, payload]);
        self.ws.send(Message::text(msg.to_string())).map_err(broken)?;
        Ok(r)
    }

    /// The next message before `deadline`: `Ok(None)` when nothing came.
    pub fn next_by(&mut self, deadline: Instant) -> io::Result<Option<Value>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = self.ws.get_mut().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).map(Some).map_err(broken),
                Ok(Message::Close(c)) => return Err(broken(format!("closed: {c:?}"))),
                Ok(_) => {}
                // tungstenite keeps a partial frame across a read timeout.
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(broken(e)),
            }
        }
    }

    /// Reads until the reply to `r` (returned: `{status, response}`),
    /// handing every other message to `other`; an error when none came in time.
    pub fn reply(&mut self, r: &str, mut other: impl FnMut(&Value)) -> io::Result<Value> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            match self.next_by(deadline)? {
                Some(m) if m[3] == "phx_reply" && m[1] == r => return Ok(m[4].clone()),
                Some(m) => other(&m),
                None => return Err(io::Error::new(ErrorKind::TimedOut, "no reply in time")),
            }
        }
    }

    /// Sends a heartbeat (so an idle socket is not closed after 60 s).
    pub fn heartbeat(&mut self) -> io::Result<()> {
        self.push("phoenix", "heartbeat", serde_json::json!({})).map(drop)
    }
}

/// A binary-protocol connection over TCP, past its handshake.
pub struct BinConn {
    stream: TcpStream,
    buf: Vec<u8>,
    version: Version,
}

impl BinConn {
    /// Connects and authenticates with a tenant API key.
    pub fn connect(addr: SocketAddr, api_key: &str) -> io::Result<BinConn> {
        let mut c = BinConn { stream: tcp(addr)?, buf: Vec::new(), version: Version::V1 };
        c.send(Hello { min_version: 1, max_version: 1, auth: Auth::ApiKey(api_key.into()), client: "chaos".into() })?;
        match c.next_by(Instant::now() + ANSWER_TIMEOUT)? {
            Some(Frame::Welcome(_)) => Ok(c),
            Some(other) => Err(broken(format!("handshake refused: {other:?}"))),
            None => Err(io::Error::new(ErrorKind::TimedOut, "no Welcome in time")),
        }
    }

    pub fn send(&mut self, frame: impl Into<Frame>) -> io::Result<()> {
        let mut out = BytesMut::new();
        frame.into().encode(self.version, &mut out).map_err(broken)?;
        self.stream.write_all(&out)
    }

    /// The next frame before `deadline` (`Ok(None)` when none came); an error
    /// when the connection ended.
    pub fn next_by(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = decode_frame(&self.buf, self.version).map_err(broken)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(broken("closed by the server")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
