//! The connection's life: [`handshake`] (TCP, `TCP_NODELAY`, TLS when
//! [`Options::tls`] is set, Hello → Welcome), then [`run`], the client's one background task, which serves
//! a connection until it ends and opens the next one, for as long as the
//! client is open.
//!
//! Per connection there are two tasks: the reader (here, in [`serve`]) that
//! decodes frames and hands them to [`Shared::dispatch`], and the writer that
//! drains the bounded outbox into the socket. They never wait on each other,
//! so a server that stops reading (its in-flight limit) never stops this
//! client from reading its answers.
//!
//! Reconnects back off exponentially between `Options::reconnect_min` and
//! `reconnect_max` (with jitter). A reconnect refused for the credential
//! (2xxx, e.g. an expired token) or the version closes the client for good:
//! repeating it cannot succeed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use converger_protocol::{ErrorCode, Frame, Hello, Ping, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tracing::debug;

use crate::codec::{encode, FrameDecoder};
use crate::error::{Error, ProtocolError, ServerError};
use crate::state::Shared;
use crate::types::{Credential, Welcome};
use crate::Options;

/// Frames queued for the writer; past this, requests wait (and TCP
/// backpressure from the server reaches the callers).
const OUTBOX: usize = 256;
/// The writer gathers queued frames into one write up to this size.
const WRITE_BATCH: usize = 64 * 1024;
/// A connection that lived this long resets the reconnect backoff.
const STABLE: Duration = Duration::from_secs(1);

/// The halves of a plain or TLS connection: one virtual call per read or
/// write call (not per byte), for one code path above both.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A connection that said Welcome.
pub(crate) struct Established {
    pub read: ReadHalf,
    pub write: WriteHalf,
    /// Reads the version the Welcome chose.
    pub decoder: FrameDecoder,
    pub welcome: Welcome,
}

/// Connects, says Hello and waits for Welcome (or the refusal).
pub(crate) async fn handshake(addr: &str, credential: &Credential, options: &Options) -> Result<Established, Error> {
    let timeout = options.connect_timeout;
    let attempt = async {
        let (mut read, mut write) = open(addr, options).await?;
        // Every version this SDK speaks; the server picks the highest it speaks too.
        let hello = Frame::Hello(Hello {
            min_version: Version::MIN.get(),
            max_version: Version::MAX.get(),
            auth: credential.to_auth(),
            client: options.client_name.clone(),
        });
        write.write_all(&encode(&hello, Version::V1)?).await?;
        let mut decoder = FrameDecoder::new();
        loop {
            match decoder.next_frame()? {
                Some(Frame::Welcome(w)) => {
                    let version = Version::from_u8(w.version).ok_or(ProtocolError::Version(w.version))?;
                    decoder.set_version(version);
                    return Ok(Established { read, write, decoder, welcome: w.into() });
                }
                Some(Frame::Error(e)) => return Err(Error::Server(ServerError::from(&e))),
                Some(other) => return Err(Error::Protocol(ProtocolError::Unexpected(other.kind().name()))),
                None => {}
            }
            if read.read_buf(decoder.buffer()).await? == 0 {
                return Err(Error::ConnectionLost);
            }
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or(Err(Error::Timeout(timeout)))
}

/// A TCP connection to `addr` (`TCP_NODELAY`), with TLS on it when configured.
async fn open(addr: &str, options: &Options) -> Result<(ReadHalf, WriteHalf), Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.tls {
        let (read, write) = tokio::io::split(tls.connect(addr, tcp).await?);
        return Ok((Box::new(read), Box::new(write)));
    }
    #[cfg(not(feature = "tls"))]
    let _ = options;
    let (read, write) = tcp.into_split();
    Ok((Box::new(read), Box::new(write)))
}

/// The client's background task: serves `first`, then reconnects whenever a
/// connection ends, until the client is closed.
pub(crate) async fn run(shared: Arc<Shared>, first: Established) {
    let mut closed = shared.closed.subscribe();
    let mut next = Some(first);
    let mut backoff = shared.options.reconnect_min;
    let mut jitter = Jitter::new();
    loop {
        let established = match next.take() {
            Some(e) => e,
            None => {
                let (addr, credential) = {
                    let state = shared.lock();
                    (state.addr.clone(), state.credential.clone())
                };
                let attempt = tokio::select! {
                    r = handshake(&addr, &credential, &shared.options) => r,
                    _ = closed.wait_for(|c| *c) => return,
                };
                match attempt {
                    Ok(e) => e,
                    Err(Error::Server(e)) if e.is_auth() || e.code == ErrorCode::UnsupportedVersion => {
                        debug!(error = %e, "reconnect refused: closing the client");
                        shared.close(Some(Error::Server(e)));
                        return;
                    }
                    Err(e) => {
                        debug!(error = %e, ?backoff, "reconnect failed");
                        tokio::select! {
                            _ = tokio::time::sleep(jitter.spread(backoff)) => {}
                            _ = closed.wait_for(|c| *c) => return,
                        }
                        backoff = (backoff * 2).min(shared.options.reconnect_max);
                        continue;
                    }
                }
            }
        };
        let started = Instant::now();
        let reason = serve(&shared, established).await;
        if *closed.borrow() {
            return;
        }
        if let Error::Server(e) = &reason {
            if e.is_auth() {
                // `token_expired`: the same token cannot come back.
                debug!(error = %e, "connection closed for its credential: closing the client");
                shared.close(Some(reason));
                return;
            }
        }
        debug!(error = %reason, "connection ended: reconnecting");
        if started.elapsed() >= STABLE {
            backoff = shared.options.reconnect_min;
        } else {
            // Ended as soon as it began: do not hammer the server.
            tokio::select! {
                _ = tokio::time::sleep(jitter.spread(backoff)) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
            backoff = (backoff * 2).min(shared.options.reconnect_max);
        }
    }
}

/// Serves one connection until it ends; answers why.
async fn serve(shared: &Arc<Shared>, established: Established) -> Error {
    let Established { mut read, write, mut decoder, welcome } = established;
    let (outbox, queue) = mpsc::channel(OUTBOX);
    let kill = Arc::new(Notify::new());
    let idle = welcome.idle_timeout.max(Duration::from_secs(3));
    let version = decoder.version();
    let Some(generation) = shared.connected(outbox.clone(), kill.clone(), welcome, version) else {
        return Error::Closed;
    };
    let mut writer = tokio::spawn(write_loop(write, queue));
    let mut closed = shared.closed.subscribe();
    // Keepalive: a Ping at a third of the server's idle timeout (docs/protocol.md,
    // Liveness); a server silent for the whole timeout is taken for dead.
    let mut keepalive = tokio::time::interval(idle / 3);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let reason = 'conn: loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    heard = Instant::now();
                    if let Some(end) = shared.dispatch(frame, &outbox, version) {
                        break 'conn end;
                    }
                }
                Ok(None) => break,
                Err(e) => break 'conn Error::from(e),
            }
        }
        tokio::select! {
            r = read.read_buf(decoder.buffer()) => match r {
                Ok(0) => break Error::ConnectionLost,
                Ok(_) => {}
                Err(e) => break Error::from(e),
            },
            _ = keepalive.tick() => {
                if heard.elapsed() > idle {
                    break Error::Timeout(idle);
                }
                if let Ok(bytes) = encode(&Frame::Ping(Ping { payload: 0 }), version) {
                    let _ = outbox.try_send(bytes); // full: the server hears from us anyway
                }
            }
            _ = kill.notified() => break Error::ConnectionLost,
            _ = closed.wait_for(|c| *c) => break Error::Closed,
            _ = &mut writer => break Error::ConnectionLost,
        }
    };
    shared.disconnected(generation);
    drop(outbox);
    if matches!(reason, Error::Closed) {
        // Let the writer send what was queued, briefly, then close the socket.
        let _ = tokio::time::timeout(Duration::from_millis(200), &mut writer).await;
    }
    writer.abort();
    reason
}

/// Writes queued frames, several per write when they are waiting, until
/// every sender is gone or the socket fails.
async fn write_loop(mut write: WriteHalf, mut queue: mpsc::Receiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = queue.recv().await {
        let result = match queue.try_recv() {
            Ok(second) => {
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                while batch.len() < WRITE_BATCH {
                    let Ok(more) = queue.try_recv() else { break };
                    batch.extend_from_slice(&more);
                }
                let r = write.write_all(&batch).await;
                batch.clear();
                r
            }
            Err(_) => write.write_all(&first).await,
        };
        if let Err(e) = result {
            debug!(error = %e, "write failed");
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// Spreads reconnect delays over 50–100 % of the backoff, so many clients
/// cut at once do not come back at once (no RNG dependency: xorshift seeded
/// from the clock).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter(seed | 1)
    }

    fn spread(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        d.mul_f64(0.5 + (self.0 % 1000) as f64 / 2000.0)
    }
}
