//! The hand-off from HTTP to WebSocket: a handler answers the handshake with
//! a `101` response carrying an [`Upgrade`] (what to run on the socket and
//! its limits); the HTTP connection writes the `101`, then calls
//! [`Upgrade::run`] with the stream and the bytes it had already read past
//! the request. The HTTP layer knows nothing else about WebSocket.

use std::fmt;
use std::future::Future;

use bytes::BytesMut;
use futures_util::future::LocalBoxFuture;

use super::socket::{WsLimits, WsSocket};
use crate::net::stream::Stream;
use crate::rt::latch::Latch;

type Session = Box<dyn FnOnce(WsSocket) -> LocalBoxFuture<'static, ()>>;

/// What runs on an accepted WebSocket connection.
pub struct Upgrade {
    limits: WsLimits,
    session: Session,
}

impl Upgrade {
    /// `session` owns what it needs (`Rc`/`Arc` handles): it outlives the request.
    pub fn new<F, Fut>(limits: WsLimits, session: F) -> Upgrade
    where
        F: FnOnce(WsSocket) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Upgrade { limits, session: Box::new(move |socket| Box::pin(session(socket))) }
    }

    /// Starts the WebSocket on the upgraded `stream`; the session, to await
    /// until it returns. Not an `async fn`: the stream and the bytes, handed
    /// on at once, would stay in its state for the socket's whole life.
    pub fn run(self, stream: Stream, buffered: BytesMut, shutdown: Latch) -> LocalBoxFuture<'static, ()> {
        let socket = WsSocket::start(stream, buffered, self.limits, shutdown);
        (self.session)(socket)
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade").field("limits", &self.limits).finish_non_exhaustive()
    }
}
