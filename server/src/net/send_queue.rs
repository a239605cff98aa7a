//! The outgoing half of a connection (WebSocket or binary TCP): a send queue
//! bounded in bytes, and the writer task that drains it. The queue holds
//! complete encoded frames of the connection's transport; the one thing it
//! encodes itself is the frame that closes the connection, through the
//! transport's [`Closer`].
//!
//! Rules:
//! - A frame is queued as `Bytes` of a complete encoded frame, so a broadcast
//!   encoded once is shared by every socket (reference count, no copy).
//! - The byte count covers frames queued *and* the batch being written, and
//!   drops only when the kernel took the batch: a client that stops reading
//!   fills its TCP window, the write stalls, the count stays up.
//! - A frame that would take the count past the limit is refused and the
//!   connection is closed as a slow consumer (WebSocket: 1008 `slow consumer`;
//!   binary: Error `slow_consumer`); the frames still queued are dropped (they
//!   would never be read) and the close frame takes their place.
//!   One frame always fits an empty queue, so a frame larger than the limit is
//!   still sent to a client that keeps up.
//! - Coalescing: the writer takes the frames queued so far, up to
//!   [`MAX_BATCH_BYTES`], and writes them with one call (one frame goes as
//!   is; several are copied into one buffer).
//! - Idle costs little: once a burst is written, the queue's and the writer's
//!   buffers are given back instead of being kept at their high-water mark
//!   (a burst of presence to a thousand sockets would otherwise stay
//!   allocated on every one of them).
//! - After the close frame nothing more is written; `dead` stops the writer
//!   at once, even in the middle of a write to a stalled client.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;

use super::stream::WriteHalf;
use super::ws::code;
use super::ws::CloseFrame;

/// Encodes the frame that closes a connection with a WebSocket close `code`
/// and `reason` (the binary transport maps them onto its error codes).
pub type Closer = fn(u16, &str) -> Bytes;

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the connection is closing")]
    Closed,
    #[error("the send queue is full: the connection is closed 1008 slow consumer")]
    SlowConsumer,
}

/// State shared by the reader task, the writer task and every [`FrameSender`].
pub(crate) struct Queue {
    frames: VecDeque<Bytes>,
    /// The one pong waiting to be written: a newer ping's pong replaces it
    /// (RFC 6455 §5.5.3 allows answering only the latest), so pending
    /// control frames never take more than one pong's bytes.
    pong: Option<Bytes>,
    /// Bytes queued plus the batch being written.
    bytes: usize,
    limit: usize,
    /// The close frame the server sent (or is sending), once closing began.
    pub closing: Option<CloseFrame>,
    /// The close frame has been written (or the write failed).
    pub close_flushed: bool,
    /// The connection is over: both tasks stop now.
    pub dead: bool,
    writer: Option<Waker>,
    reader: Option<Waker>,
    /// Tasks waiting for the queue to drain to half its limit (catch-ups);
    /// one per subscription catching up on this connection at most.
    room: Vec<Waker>,
    closer: Closer,
    /// Told when a frame overflows the queue (for the metrics).
    on_overflow: Option<Box<dyn Fn()>>,
}

pub(crate) type Shared = Rc<RefCell<Queue>>;

impl Queue {
    /// How the queue's own closes are encoded from now on (a binary
    /// connection's Error frame follows its negotiated protocol version).
    pub fn set_closer(&mut self, closer: Closer) {
        self.closer = closer;
    }

    pub fn new(limit: usize, closer: Closer) -> Shared {
        Rc::new(RefCell::new(Queue {
            frames: VecDeque::new(),
            pong: None,
            bytes: 0,
            limit,
            closing: None,
            close_flushed: false,
            dead: false,
            writer: None,
            reader: None,
            room: Vec::new(),
            closer,
            on_overflow: None,
        }))
    }

    fn wake_all(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        self.room.drain(..).for_each(Waker::wake);
    }

    fn has_room(&self) -> bool {
        self.closing.is_some() || self.dead || self.bytes <= self.limit / 2
    }

    /// Starts the close handshake with `frame` unless it already began.
    /// `echo` is the payload to send when answering a client's close.
    pub fn start_close(&mut self, frame: CloseFrame, wire: Bytes) {
        if self.closing.is_some() || self.dead {
            return;
        }
        self.closing = Some(frame);
        self.bytes += wire.len();
        self.frames.push_back(wire);
        self.wake_all();
    }

    /// Closes with `code` and `reason`.
    pub fn close(&mut self, code: u16, reason: &str) {
        let wire = (self.closer)(code, reason);
        self.start_close(CloseFrame { code, reason: reason.into() }, wire);
    }

    /// Queues a complete frame under the byte limit: past it the queued
    /// frames are dropped and the connection closes as a slow consumer.
    /// Control frames (pongs) count like any other, so a client that pings
    /// without reading fills its queue and is closed, instead of piling up
    /// pongs without bound.
    pub fn push(&mut self, frame: Bytes) -> Result<(), SendError> {
        if self.closing.is_some() || self.dead {
            return Err(SendError::Closed);
        }
        if self.bytes > 0 && self.bytes + frame.len() > self.limit {
            let dropped: usize = self.frames.drain(..).map(|f| f.len()).sum();
            self.bytes -= dropped;
            self.close(code::POLICY, "slow consumer");
            if let Some(count) = &self.on_overflow {
                count();
            }
            return Err(SendError::SlowConsumer);
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
        Ok(())
    }

    /// Queues the answer to a ping, replacing one not yet written.
    pub fn push_pong(&mut self, frame: Bytes) {
        if self.closing.is_some() || self.dead {
            return;
        }
        let old = self.pong.replace(frame).map_or(0, |p| p.len());
        self.bytes = self.bytes - old + self.pong.as_ref().map_or(0, Bytes::len);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// Ends the connection now.
    pub fn kill(&mut self) {
        self.dead = true;
        self.wake_all();
    }

    /// Registers the reader task to be woken on close, flush or death.
    pub fn wake_reader(&mut self, waker: &Waker) {
        self.reader = Some(waker.clone());
    }
}

/// A handle to queue frames on one connection; cheap to clone, shard-local.
#[derive(Clone)]
pub struct FrameSender {
    queue: Shared,
}

impl FrameSender {
    pub(crate) fn new(queue: Shared) -> FrameSender {
        FrameSender { queue }
    }

    /// Queues a complete encoded frame (e.g. a broadcast from
    /// `phoenix::broadcast_frame`, shared by many sockets).
    pub fn send_frame(&self, frame: Bytes) -> Result<(), SendError> {
        self.queue.borrow_mut().push(frame)
    }

    /// Queues several chunks that together make one frame: either all or none
    /// (on a refusal the connection closes, so a partial frame is never written).
    pub fn send_chunks(&self, chunks: impl IntoIterator<Item = Bytes>) -> Result<(), SendError> {
        chunks.into_iter().try_for_each(|c| self.send_frame(c))
    }

    /// Starts closing with `frame` (already encoded for the transport) standing
    /// for `code` and `reason`; queued frames are still written before it.
    pub fn close_with(&self, code: u16, reason: &str, frame: Bytes) {
        self.queue.borrow_mut().start_close(CloseFrame { code, reason: reason.into() }, frame);
    }

    /// Starts the close handshake; the socket's `recv` then reports the close.
    pub fn close(&self, code: u16, reason: &str) {
        self.queue.borrow_mut().close(code, reason);
    }

    /// Ready once the queue holds at most half its limit (or is closing):
    /// room for a producer that can wait, such as a backlog being read.
    pub fn poll_room(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut q = self.queue.borrow_mut();
        if q.has_room() {
            return Poll::Ready(());
        }
        if !q.room.iter().any(|w| w.will_wake(cx.waker())) {
            q.room.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// False once closing began: further sends are refused.
    pub fn is_open(&self) -> bool {
        let q = self.queue.borrow();
        q.closing.is_none() && !q.dead
    }

    /// Calls `count` each time a frame overflows the queue (the connection
    /// then closes as a slow consumer).
    pub fn on_overflow(&self, count: impl Fn() + 'static) {
        self.queue.borrow_mut().on_overflow = Some(Box::new(count));
    }

    /// Bytes queued and in flight, for metrics and tests.
    pub fn queued_bytes(&self) -> usize {
        self.queue.borrow().bytes
    }
}

/// Resolves once a close has begun or the connection is dead (for a reader task).
pub(crate) async fn closing(queue: &Shared) {
    poll_fn(|cx| {
        let mut q = queue.borrow_mut();
        if q.closing.is_some() || q.dead {
            return Poll::Ready(());
        }
        q.wake_reader(cx.waker());
        Poll::Pending
    })
    .await
}

/// Resolves once the close frame is written (or the connection is dead).
pub(crate) async fn flushed(queue: &Shared) {
    poll_fn(|cx| {
        let mut q = queue.borrow_mut();
        if q.close_flushed || q.dead {
            return Poll::Ready(());
        }
        q.wake_reader(cx.waker());
        Poll::Pending
    })
    .await
}

/// The frames queued so far, or `None` once the connection is dead.
async fn next_batch(queue: &Shared) -> Option<Vec<Bytes>> {
    poll_fn(|cx| {
        let mut q = queue.borrow_mut();
        if q.dead {
            Poll::Ready(None)
        } else if !q.frames.is_empty() || q.pong.is_some() {
            let mut batch: Vec<Bytes> = q.pong.take().into_iter().collect();
            let mut size: usize = batch.iter().map(Bytes::len).sum();
            while let Some(len) = q.frames.front().map(Bytes::len) {
                if !batch.is_empty() && size + len > MAX_BATCH_BYTES {
                    break;
                }
                size += len;
                batch.extend(q.frames.pop_front());
            }
            if q.frames.is_empty() && q.frames.capacity() > IDLE_FRAMES {
                q.frames = VecDeque::new();
            }
            Poll::Ready(Some(batch))
        } else {
            q.writer = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// Resolves when the connection is dead.
async fn dead(queue: &Shared) {
    poll_fn(|cx| {
        let mut q = queue.borrow_mut();
        if q.dead {
            return Poll::Ready(());
        }
        q.writer = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// Most bytes copied into one write: a larger burst goes in several.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Frames' room the queue keeps once empty; more is given back.
const IDLE_FRAMES: usize = 8;

/// The writer task: one write per batch until the close frame or death.
pub(crate) async fn write_loop(mut stream: WriteHalf, queue: Shared) {
    let mut scratch: Vec<u8> = Vec::new();
    while let Some(batch) = next_batch(&queue).await {
        let len: usize = batch.iter().map(Bytes::len).sum();
        // The close frame is always the last one queued.
        let ends = queue.borrow().closing.is_some() && queue.borrow().frames.is_empty();
        let result = if let [one] = batch.as_slice() {
            let write = stream.write_all(one.clone());
            monoio::select! { (r, _) = write => r, _ = dead(&queue) => break }
        } else {
            scratch.clear();
            batch.iter().for_each(|f| scratch.extend_from_slice(f));
            let write = stream.write_all(std::mem::take(&mut scratch));
            monoio::select! {
                (r, buf) = write => { scratch = buf; r }
                _ = dead(&queue) => break,
            }
        };
        let mut q = queue.borrow_mut();
        q.bytes = q.bytes.saturating_sub(len);
        if q.has_room() {
            q.room.drain(..).for_each(Waker::wake);
        }
        if result.is_err() {
            // The peer is gone: nothing more can be sent or received.
            q.close_flushed = true;
            q.kill();
            break;
        }
        if ends {
            q.close_flushed = true;
            q.wake_all();
            break;
        }
        if q.frames.is_empty() {
            // The burst is over: its buffer goes back rather than idling at its size.
            scratch = Vec::new();
        }
    }
}
