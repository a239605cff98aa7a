//! One HTTP/1.1 connection: read, parse every complete request in the buffer,
//! answer them in order into one output buffer, write it with one call, repeat.
//! That is keep-alive and pipelining with one write per batch of requests.
//!
//! Shutdown: a connection waiting for its next request (nothing buffered) is
//! closed at once; one in the middle of a request finishes it, answers with
//! `connection: close`, then closes. The shard bounds the whole with the grace
//! period.
//!
//! Upgrade: a `101` response carrying an `Upgrade` is written (after any
//! answers before it), then `serve` returns the stream and the bytes read past
//! the request as [`Closed::Upgraded`]; the caller runs the WebSocket on a task
//! of its own, so none of this connection's HTTP state stays behind with each
//! of many long-lived sockets.
//!
//! Slow or silent clients: a connection idle between requests for
//! `idle_timeout` is closed; one whose request has not arrived whole within
//! `request_timeout` of its first byte is answered 408 and closed, so a client
//! trickling bytes cannot hold a connection (and its buffer) forever.

use std::net::SocketAddr;

use bytes::BytesMut;
use futures_util::future::LocalBoxFuture;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::parse::{expects_continue, parse, Limits};
use super::request::Method;
use super::response::Response;
use super::Service;
use crate::net::stream::Stream;
use crate::net::ws::Upgrade;
use crate::rt::latch::Latch;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 16 * 1024;
/// Pipelined answers gathered before they are written: past this many, or
/// [`MAX_PIPELINED_BYTES`], the batch is written and parsing goes on with
/// what is already buffered; nothing more is read until it is answered.
/// So one connection's pending answers are bounded, however many requests a
/// client sends ahead of reading.
const MAX_PIPELINED: usize = 64;
const MAX_PIPELINED_BYTES: usize = 1 << 20;

/// Why a connection ended, for the debug log.
#[derive(Debug)]
pub enum Closed {
    /// The client closed, or asked to.
    Client,
    /// A request could not be parsed; it was answered with an error first.
    BadRequest,
    /// Idle too long between requests, or too slow sending one.
    TimedOut,
    /// The server is stopping.
    Shutdown,
    /// Switched to WebSocket: the `101` is written; [`Upgraded::run`] serves the rest.
    Upgraded(Upgraded),
    Io(std::io::Error),
}

/// A connection switched to WebSocket, ready to run.
pub struct Upgraded {
    upgrade: Upgrade,
    stream: Stream,
    buffered: BytesMut,
}

impl Upgraded {
    /// Starts the WebSocket; the session, to await until it ends.
    pub fn run(self, shutdown: Latch) -> LocalBoxFuture<'static, ()> {
        self.upgrade.run(self.stream, self.buffered, shutdown)
    }
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded").field("upgrade", &self.upgrade).finish_non_exhaustive()
    }
}

/// What a refused client may still send after its answer, read and dropped.
const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// How long that may take.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes after an answer that ends the connection early (413, 414, 431,
/// 400, 408) so that the answer arrives: closing a socket with unread bytes
/// makes the kernel send a reset, and a client still writing its body (as
/// most HTTP libraries do before they read) would see the reset, not the
/// answer. So: half-close (the client reads the answer, then end of
/// stream), read and drop what it keeps sending until it stops, up to
/// [`LINGER_BYTES`] and [`LINGER_TIME`], then close.
async fn linger(stream: &mut Stream) {
    let _ = stream.shutdown().await;
    let deadline = std::time::Instant::now() + LINGER_TIME;
    let (mut dropped, mut buf) = (0usize, vec![0u8; 64 * 1024]);
    while dropped < LINGER_BYTES {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (res, back) = monoio::select! {
            r = stream.read(buf) => r,
            _ = monoio::time::sleep(left) => return,
        };
        match res {
            Ok(n) if n > 0 => dropped += n,
            _ => return,
        }
        buf = back;
    }
}

/// Serves `stream` until the client leaves, an error, or shutdown.
pub async fn serve<S: Service>(
    mut stream: Stream,
    peer: SocketAddr,
    service: &S,
    limits: Limits,
    shutdown: &Latch,
) -> Closed {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // When the request now partly in `buf` began to arrive.
    let mut request_started: Option<std::time::Instant> = None;
    // `100 Continue` was sent for the request now partly in `buf`.
    let mut continued = false;
    loop {
        let mut close = None;
        let mut answered = 0;
        let mut more = false;
        loop {
            if answered >= MAX_PIPELINED || out.len() >= MAX_PIPELINED_BYTES {
                more = true;
                break;
            }
            match parse(&mut buf, &limits) {
                Ok(Some(mut request)) => {
                    continued = false;
                    request.peer = Some(peer);
                    let head_only = request.method == Method::Head;
                    let client_close = request.wants_close();
                    let mut response = service.call(request).await;
                    if let Some(upgrade) = response.upgrade.take().filter(|_| response.status == 101) {
                        // Answers queued before this request go out first, then the 101;
                        // what the client sent after its request is WebSocket already.
                        response.encode(false, false, &mut out);
                        let (res, _) = stream.write_all(out).await;
                        if let Err(e) = res {
                            return Closed::Io(e);
                        }
                        return Closed::Upgraded(Upgraded { upgrade, stream, buffered: buf });
                    }
                    if client_close {
                        close = Some(Closed::Client);
                    } else if shutdown.is_triggered() {
                        close = Some(Closed::Shutdown);
                    }
                    response.encode(head_only, close.is_some(), &mut out);
                    answered += 1;
                    if close.is_some() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    Response::error(e.status(), e.code(), &e.to_string()).encode(false, true, &mut out);
                    close = Some(Closed::BadRequest);
                    break;
                }
            }
        }
        if close.is_none() && !more && !continued && !buf.is_empty() && expects_continue(&buf) {
            // The head passed every check (a body over the limit was refused
            // from its Content-Length above): ask for the body.
            out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            continued = true;
        }
        if !out.is_empty() {
            let (res, written) = stream.write_all(out).await;
            out = written;
            out.clear();
            if let Err(e) = res {
                return Closed::Io(e);
            }
        }
        if let Some(reason) = close {
            if matches!(reason, Closed::BadRequest) {
                linger(&mut stream).await;
            }
            return reason;
        }
        if more {
            continue;
        }
        buf.reserve(READ_CHUNK);
        let (len, capacity) = (buf.len(), buf.capacity());
        let read = stream.read(buf.slice_mut(len..capacity));
        let (res, slice) = if len == 0 {
            request_started = None;
            // Idle between requests: this is where shutdown closes us.
            monoio::select! {
                r = read => r,
                _ = shutdown.wait() => return Closed::Shutdown,
                _ = monoio::time::sleep(limits.idle_timeout) => return Closed::TimedOut,
            }
        } else {
            let started = *request_started.get_or_insert_with(std::time::Instant::now);
            let left = limits.request_timeout.saturating_sub(started.elapsed());
            monoio::select! {
                r = read => r,
                _ = monoio::time::sleep(left) => {
                    let why = format!("the request did not arrive within {} s", limits.request_timeout.as_secs());
                    let mut out = Vec::new();
                    Response::error(408, "request_timeout", &why).encode(false, true, &mut out);
                    let _ = stream.write_all(out).await;
                    linger(&mut stream).await;
                    return Closed::TimedOut;
                }
            }
        };
        buf = slice.into_inner();
        match res {
            Ok(0) => return Closed::Client,
            Ok(_) => {}
            Err(e) => return Closed::Io(e),
        }
    }
}
