//! [`WsSocket`]: one upgraded connection, as the session layer sees it.
//!
//! Two shard-local tasks run the connection: a reader (decode, pings, rate
//! limit, close handshake; see `reader`) and a writer (the byte-bounded send
//! queue with coalesced writes; see `sender`). The session awaits
//! [`WsSocket::recv`], which is cancel-safe (a channel receive), so it can sit
//! in a `select!` beside subscription events, and sends through a
//! [`WsSender`], which never waits: a full queue closes the connection instead.
//!
//! Dropping the `WsSocket` ends the connection at once (both tasks stop, the
//! TCP stream closes); [`WsSocket::close`] closes it politely first.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_channel::mpsc;
use futures_util::StreamExt;

use super::encode;
use super::frame::{CloseFrame, Decoder};
use super::reader::Reader;
use crate::net::send_queue::{write_loop, FrameSender as WsSender, Queue, Shared};
use crate::net::stream::Stream;
use crate::rt::latch::Latch;
use crate::rt::rate::TokenBucket;

/// Messages decoded ahead of the session; beyond this the reader stops reading.
const INBOX: usize = 8;

/// Per-connection limits (from the config; see docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsLimits {
    /// Largest incoming message (all fragments together); larger closes 1009.
    pub max_message_bytes: usize,
    /// Bytes queued for the client before it counts as a slow consumer (1008).
    pub send_queue_bytes: usize,
    /// Incoming messages per second (burst: one second's worth); more closes 1008.
    pub messages_per_second: u32,
    /// How long a close handshake may take before the socket is dropped.
    pub close_timeout: Duration,
}

impl Default for WsLimits {
    fn default() -> WsLimits {
        WsLimits {
            max_message_bytes: 1 << 20,
            send_queue_bytes: 4 << 20,
            messages_per_second: 100,
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// What [`WsSocket::recv`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message, checked to be UTF-8.
    Text(Bytes),
    Binary(Bytes),
    /// The connection is closed; every later `recv` says so again.
    Closed(Closed),
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The client sent a close frame (with this code, if any); it was echoed.
    ByClient(Option<CloseFrame>),
    /// The server closed with this code and reason: a protocol error (1002,
    /// 1007), a limit (1008 `rate limit`, 1008 `slow consumer`, 1009),
    /// shutdown (1001 `going away`), or the session's own [`WsSender::close`].
    ByServer(CloseFrame),
    /// The TCP connection ended without a close handshake.
    Dropped,
}

/// One WebSocket connection. Not `Send`: it lives on its shard.
pub struct WsSocket {
    inbox: mpsc::Receiver<Incoming>,
    sender: WsSender,
    queue: Shared,
    ended: Option<Closed>,
}

impl WsSocket {
    /// Runs the WebSocket protocol on `stream`, whose HTTP upgrade is done;
    /// `buffered` holds bytes the client sent right after its request.
    pub fn start(stream: Stream, buffered: BytesMut, limits: WsLimits, shutdown: Latch) -> WsSocket {
        let queue = Queue::new(limits.send_queue_bytes, encode::close);
        let (read, write) = stream.into_split();
        let (tx, inbox) = mpsc::channel(INBOX);
        let reader = Reader {
            stream: read,
            buf: buffered,
            decoder: Decoder::new(limits.max_message_bytes),
            rate: TokenBucket::new(f64::from(limits.messages_per_second.max(1)), std::time::Instant::now()),
            queue: queue.clone(),
            shutdown,
            close_timeout: limits.close_timeout,
            tx,
            chunk: super::reader::MIN_READ_START,
        };
        monoio::spawn(reader.run());
        monoio::spawn(write_loop(write, queue.clone()));
        WsSocket { inbox, sender: WsSender::new(queue.clone()), queue, ended: None }
    }

    /// The next complete message, or how the connection closed. Cancel-safe.
    pub async fn recv(&mut self) -> Incoming {
        if let Some(closed) = &self.ended {
            return Incoming::Closed(closed.clone());
        }
        let item = self.inbox.next().await.unwrap_or(Incoming::Closed(Closed::Dropped));
        if let Incoming::Closed(closed) = &item {
            self.ended = Some(closed.clone());
        }
        item
    }

    /// A handle for queueing frames, for the session and its fan-out.
    pub fn sender(&self) -> WsSender {
        self.sender.clone()
    }

    /// Closes with `code` and `reason`, waits (bounded) for the handshake to
    /// finish, and returns how the connection ended.
    pub async fn close(mut self, code: u16, reason: &str) -> Closed {
        self.sender.close(code, reason);
        loop {
            if let Incoming::Closed(closed) = self.recv().await {
                return closed;
            }
        }
    }
}

impl Drop for WsSocket {
    fn drop(&mut self) {
        self.queue.borrow_mut().kill();
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
