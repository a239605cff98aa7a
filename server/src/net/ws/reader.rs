//! The reader task of one socket: reads, decodes, answers pings, applies the
//! rate limit to every frame (fragments and pings included), and hands complete messages to the session through a
//! small bounded channel (so a busy session stops the reads, and TCP slows the
//! client, instead of messages piling up here).
//!
//! It also owns the close handshake from this side: whoever starts a close
//! (a codec error, a limit, the slow-consumer check, shutdown, the session),
//! the reader waits up to the close timeout for the close frame to be written
//! and the client's close (or EOF) to arrive, reports the close as the last
//! item on the channel, and ends the connection.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_channel::mpsc;
use futures_util::SinkExt;
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

use super::encode;
use super::error::code;
use super::frame::{CloseFrame, Decoder, Message, Opcode};
use super::socket::{Closed, Incoming};
use crate::net::send_queue::{closing, flushed, Shared};
use crate::net::stream::ReadHalf;
use crate::rt::latch::Latch;
use crate::rt::rate::TokenBucket;

/// Read sizes adapt between these: an idle socket (most of them) asks for
/// little and so holds little; one that keeps filling its reads doubles them.
/// 256 bytes hold a heartbeat or a small push: against 1,024, an idle joined
/// socket went from 8.5–9.2 to 7.5–8.3 KiB of server memory, with no cost
/// measured on pushes at 2,000/s on one socket or 10,000/s over many
/// (docs/benchmarks.md, "Memory per socket").
const MIN_READ: usize = 256;
const MAX_READ: usize = 64 * 1024;
/// The first read's size.
pub(super) const MIN_READ_START: usize = MIN_READ;

pub(super) struct Reader {
    pub stream: ReadHalf,
    pub buf: BytesMut,
    pub decoder: Decoder,
    pub rate: TokenBucket,
    pub queue: Shared,
    pub shutdown: Latch,
    pub close_timeout: Duration,
    pub tx: mpsc::Sender<Incoming>,
    /// The size of the next read (see [`MIN_READ`]).
    pub chunk: usize,
}

/// What one read produced.
enum Read {
    Data,
    Eof,
    /// A close began elsewhere, or shutdown: stop reading.
    Interrupted,
}

impl Reader {
    pub async fn run(mut self) {
        let closed = self.serve().await;
        // The session may be gone already; then nobody needs the report.
        let _ = self.tx.send(Incoming::Closed(closed)).await;
        self.queue.borrow_mut().kill();
    }

    /// Reads until the connection closes; returns how.
    async fn serve(&mut self) -> Closed {
        loop {
            // Not `if let` on the borrow: it would live across the await.
            let closing = self.queue.borrow().closing.clone();
            if let Some(frame) = closing {
                // Boxed, as below: a rare path need not widen every idle socket's task.
                return Box::pin(self.finish_server_close(frame)).await;
            }
            if self.queue.borrow().dead {
                return Closed::Dropped;
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(message)) => {
                    if !self.rate.allow(Instant::now()) {
                        self.queue.borrow_mut().close(code::POLICY, "rate limit");
                        continue;
                    }
                    match message {
                        Message::Text(t) => self.deliver(Incoming::Text(t)).await,
                        Message::Binary(b) => self.deliver(Incoming::Binary(b)).await,
                        Message::Ping(p) => self.queue.borrow_mut().push_pong(encode::pong(&p)),
                        Message::Pong(_) | Message::Fragment => {}
                        Message::Close(frame) => return Box::pin(self.answer_client_close(frame)).await,
                    }
                }
                Ok(None) => match self.read(true).await {
                    Read::Data | Read::Interrupted => {}
                    Read::Eof => return Closed::Dropped,
                },
                Err(e) => self.queue.borrow_mut().close(e.close_code(), e.close_reason()),
            }
        }
    }

    /// Hands a message to the session; gives up if a close begins meanwhile.
    async fn deliver(&mut self, item: Incoming) {
        let queue = self.queue.clone();
        monoio::select! {
            _ = self.tx.send(item) => {}
            _ = closing(&queue) => {}
        }
    }

    /// Reads more into the buffer. With `interruptible`, a close started
    /// elsewhere or shutdown stops the read (the buffer is then dropped with
    /// the cancelled read: we are closing, its partial frame does not matter).
    async fn read(&mut self, interruptible: bool) -> Read {
        if self.buf.is_empty() && self.buf.capacity() > 2 * self.chunk {
            // A burst is over: give its buffer back instead of holding it while idle.
            self.buf = BytesMut::new();
        }
        self.buf.reserve(self.chunk);
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        let read = self.stream.read(std::mem::take(&mut self.buf).slice_mut(len..cap));
        let (res, slice) = if interruptible {
            let queue = self.queue.clone();
            monoio::select! {
                r = read => r,
                _ = self.shutdown.wait() => {
                    self.queue.borrow_mut().close(code::GOING_AWAY, "going away");
                    return Read::Interrupted;
                }
                _ = closing(&queue) => return Read::Interrupted,
            }
        } else {
            read.await
        };
        self.buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => Read::Eof,
            Ok(n) => {
                self.chunk =
                    if n >= self.chunk { (self.chunk * 2).min(MAX_READ) } else { (self.chunk / 2).max(MIN_READ) };
                Read::Data
            }
        }
    }

    /// The client closed: echo its code (§5.5.1), let the echo be written.
    async fn answer_client_close(&mut self, frame: Option<CloseFrame>) -> Closed {
        let echo = match &frame {
            Some(f) => CloseFrame { code: f.code, reason: String::new() },
            None => CloseFrame { code: code::NORMAL, reason: String::new() },
        };
        let wire = match &frame {
            Some(f) => encode::close(f.code, ""),
            None => encode::frame(Opcode::Close, &[]),
        };
        self.queue.borrow_mut().start_close(echo, wire);
        let _ = monoio::time::timeout(self.close_timeout, flushed(&self.queue)).await;
        Closed::ByClient(frame)
    }

    /// The server closed: wait (bounded) for the close to be written and for
    /// the client's close or EOF, discarding anything else it sends.
    async fn finish_server_close(&mut self, frame: CloseFrame) -> Closed {
        let (queue, timeout) = (self.queue.clone(), self.close_timeout);
        let wait = async {
            flushed(&queue).await;
            loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(Message::Close(_))) => break,
                    Err(_) => {
                        // The client's framing is lost (the rest of an oversized
                        // or malformed frame): drop raw bytes until it closes.
                        // Closing with its bytes unread would make the kernel
                        // answer with a reset, which can destroy our close frame
                        // before the client reads it (a 1009 seen as 1006).
                        loop {
                            self.buf.clear();
                            if let Read::Eof | Read::Interrupted = self.read(false).await {
                                break;
                            }
                        }
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        if let Read::Eof | Read::Interrupted = self.read(false).await {
                            break;
                        }
                    }
                }
            }
        };
        let _ = monoio::time::timeout(timeout, wait).await;
        Closed::ByServer(frame)
    }
}
