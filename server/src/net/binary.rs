//! One binary-protocol TCP connection below the session: a reader task cuts
//! the byte stream into frames and hands them to the session through a small
//! bounded channel (a busy session stops the reads, and TCP slows the client);
//! the shared send queue and its writer task carry frames the other way.
//!
//! A decode error is reported once and ends the reading: the byte stream
//! cannot be resynchronised (docs/protocol.md, Framing).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use converger_protocol::{decode_frame_with_limit, ErrorCode, ErrorFrame, Frame, Version, WireError};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

use crate::net::send_queue::{closing, flushed, write_loop, Closer, FrameSender, Queue, Shared};
use crate::net::stream::{ReadHalf, Stream};
use crate::net::ws::code;

/// Frames decoded ahead of the session; beyond this the reader stops reading.
const INBOX: usize = 16;
/// Read sizes adapt between these, as on WebSocket: idle connections hold little.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 256 * 1024;
/// How long a closing connection waits for its last frame to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the reader hands the session.
#[derive(Debug)]
pub enum Inbound {
    Frame(Frame),
    /// The bytes are not a frame; nothing more is read.
    Bad(WireError),
    /// The client closed (or the connection broke).
    Closed,
}

/// One connection, as the session sees it. Not `Send`: it lives on its shard.
pub struct FrameConn {
    inbox: mpsc::Receiver<Inbound>,
    sender: FrameSender,
    queue: Shared,
    ended: bool,
    /// The protocol version the reader decodes (1 until the handshake chose one).
    version: Rc<Cell<Version>>,
}

impl FrameConn {
    /// Starts the reader and writer tasks on `stream`.
    pub fn start(stream: Stream, max_frame: u32, send_queue_bytes: usize) -> FrameConn {
        let queue = Queue::new(send_queue_bytes, closer(Version::V1));
        let (read, write) = stream.into_split();
        let (tx, inbox) = mpsc::channel(INBOX);
        let version = Rc::new(Cell::new(Version::V1));
        monoio::spawn(read_loop(read, tx, queue.clone(), max_frame, version.clone()));
        monoio::spawn(write_loop(write, queue.clone()));
        FrameConn { inbox, sender: FrameSender::new(queue.clone()), queue, ended: false, version }
    }

    /// The protocol version frames are read in.
    pub fn version(&self) -> Version {
        self.version.get()
    }

    /// Frames are read in `version` from now on. The handshake sets it
    /// before its Welcome; a client sends nothing between Hello and Welcome,
    /// so no frame can have been read ahead in the old version.
    pub fn set_version(&self, version: Version) {
        self.version.set(version);
        self.queue.borrow_mut().set_closer(closer(version));
    }

    /// The next frame, a decode error, or the end. Cancel-safe.
    pub async fn recv(&mut self) -> Inbound {
        if self.ended {
            return Inbound::Closed;
        }
        let item = self.inbox.next().await.unwrap_or(Inbound::Closed);
        if matches!(item, Inbound::Closed | Inbound::Bad(_)) {
            self.ended = true;
        }
        item
    }

    pub fn sender(&self) -> FrameSender {
        self.sender.clone()
    }

    /// Sends `error` (with the close flag) after what is queued, waits a
    /// bounded time for it to be written, and ends the connection.
    pub async fn close(self, error: ErrorFrame) {
        let frame = encode_closing(error, self.version());
        self.sender.close_with(code::NORMAL, "closed", frame);
        let _ = monoio::time::timeout(CLOSE_TIMEOUT, flushed(&self.queue)).await;
    }
}

impl Drop for FrameConn {
    fn drop(&mut self) {
        self.queue.borrow_mut().kill();
    }
}

/// The send queue's own closes (a slow consumer, shutdown) as Error frames
/// of the connection's `version` (a plain function per version: the queue
/// holds a function pointer).
fn closer(version: Version) -> Closer {
    match version.get() {
        1 => |ws_code, reason| close_frame(ws_code, reason, Version::V1),
        2 => |ws_code, reason| close_frame(ws_code, reason, Version::V2),
        _ => |ws_code, reason| close_frame(ws_code, reason, Version::V3),
    }
}

fn close_frame(ws_code: u16, reason: &str, version: Version) -> Bytes {
    let code = match ws_code {
        code::POLICY => ErrorCode::SlowConsumer,
        code::GOING_AWAY => ErrorCode::ShuttingDown,
        _ => ErrorCode::Internal,
    };
    encode_closing(ErrorFrame::new(0, code, reason), version)
}

/// `error` with the close flag, encoded for a connection speaking `version`
/// (version 1 before and during the handshake).
pub fn encode_closing(error: ErrorFrame, version: Version) -> Bytes {
    let mut out = BytesMut::new();
    // An error frame of our own making always encodes; empty would be skipped.
    let _ = Frame::Error(error.closing()).encode(version, &mut out);
    out.freeze()
}

async fn read_loop(
    mut stream: ReadHalf,
    mut tx: mpsc::Sender<Inbound>,
    queue: Shared,
    max_frame: u32,
    version: Rc<Cell<Version>>,
) {
    let mut buf = BytesMut::new();
    let mut chunk = MIN_READ;
    loop {
        loop {
            let item = match decode_frame_with_limit(&buf, version.get(), max_frame) {
                Ok(Some((frame, used))) => {
                    buf.advance(used);
                    Inbound::Frame(frame)
                }
                Ok(None) => break,
                Err(e) => Inbound::Bad(e),
            };
            let last = matches!(item, Inbound::Bad(_));
            monoio::select! {
                sent = tx.send(item) => if sent.is_err() { return },
                _ = closing(&queue) => return,
            }
            if last {
                return;
            }
        }
        if buf.is_empty() && buf.capacity() > 2 * chunk {
            // A burst is over: give its buffer back instead of holding it while idle.
            buf = BytesMut::new();
        }
        buf.reserve(chunk);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = stream.read(std::mem::take(&mut buf).slice_mut(len..cap));
        let (res, slice) = monoio::select! {
            r = read => r,
            _ = closing(&queue) => return,
        };
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => {
                let _ = tx.send(Inbound::Closed).await;
                return;
            }
            Ok(n) => chunk = if n >= chunk { (chunk * 2).min(MAX_READ) } else { (chunk / 2).max(MIN_READ) },
        }
    }
}
