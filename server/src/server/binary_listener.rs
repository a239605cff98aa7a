//! The binary-protocol TCP listener (`--binary-addr`, in every shard): each
//! accepted connection runs the binary session (`sessions::binary`)
//! over a [`conn::FrameConn`]. The protocol is written down in
//! docs/protocol.md; its codec is the `converger-protocol` crate.

use std::rc::Rc;

use bytes::Bytes;
use converger_protocol::{ErrorCode, ErrorFrame};
use monoio::net::TcpListener;
use tracing::{debug, warn};

use super::admission::{refuse_binary, Gate};
use crate::api::App;
use crate::net::binary as conn;
use crate::net::tls::TlsAcceptor;
use crate::rt::latch::Latch;
use crate::rt::tracker::ConnTracker;
use crate::sessions::binary::{self as binary_session, Limits};

/// The binary port of a shard: its socket and, with TLS on, its acceptor.
pub struct Listener {
    pub socket: TcpListener,
    pub tls: Option<Rc<TlsAcceptor>>,
}

/// Accepts connections until shutdown; each one's session ends by itself on
/// shutdown (an Error `shutting_down`, then close) or is cut after the grace
/// period through `abort`.
pub async fn accept_loop(
    listener: Listener,
    shard: usize,
    app: Rc<App>,
    tracker: Rc<ConnTracker>,
    gate: Rc<Gate>,
    shutdown: Latch,
    abort: Latch,
) {
    let Listener { socket: listener, tls } = listener;
    let limits = Limits::from_config(&app.config);
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = match gate.admit(peer.ip()) {
                        Ok(admitted) => admitted,
                        Err(refusal) => {
                            monoio::spawn(refuse_binary(stream, peer, tls.clone(), refusal));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Some(engine) = app.engine.clone() else { continue };
                    let (hub, shutdown, abort, guard) = (app.hub.clone(), shutdown.clone(), abort.clone(), tracker.open());
                    let tls = tls.clone();
                    // The connection's log lines carry an id, like a request's.
                    let span = tracing::info_span!(
                        parent: None,
                        "connection",
                        connection_id = %converger_storage::new_id().simple()
                    );
                    monoio::spawn(tracing::Instrument::instrument(async move {
                        let _held = (guard, admitted);
                        // Written inside `select!`: a `let` of it first would keep two
                        // copies of the session's state in every connection's task.
                        monoio::select! {
                            _ = async {
                                let Some(stream) = TlsAcceptor::wrap(tls.as_deref(), stream, peer).await else { return };
                                let conn = conn::FrameConn::start(stream, limits.max_frame, limits.send_queue_bytes);
                                binary_session::run(conn, hub, engine, shutdown, limits, None).await;
                            } => debug!(shard, %peer, "binary connection closed"),
                            _ = abort.wait() => debug!(shard, %peer, "binary connection cut after the grace period"),
                        }
                    }, span));
                }
                Err(e) => {
                    warn!(shard, error = %e, "binary accept failed");
                    crate::server::shards::accept_backoff().await;
                }
            },
            _ = shutdown.wait() => break,
        }
    }
    debug!(shard, "binary listener closed");
}

/// What a client that speaks plain TCP to the TLS binary port reads before
/// the connection closes: an Error frame it can decode and show.
pub fn tls_required_frame() -> Bytes {
    let message = "this port speaks TLS: connect with TLS (the SDKs' tls option)";
    conn::encode_closing(ErrorFrame::new(0, ErrorCode::TlsRequired, message), converger_protocol::Version::V1)
}
