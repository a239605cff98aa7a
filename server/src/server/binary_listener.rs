//! The binary-protocol TCP listener (`--binary-addr`, in every shard): each
//! accepted connection runs the binary session (`sessions::binary`)
//! over a [`conn::FrameConn`]. The protocol is written down in
//! docs/protocol.md; its codec is the `converger-protocol` crate.

use std::rc::Rc;

use monoio::net::TcpListener;
use tracing::{debug, warn};

use super::admission::{refuse_binary, Gate};
use crate::api::App;
use crate::net::binary as conn;
use crate::rt::latch::Latch;
use crate::rt::tracker::ConnTracker;
use crate::sessions::binary::{self as binary_session, Limits};

/// Accepts connections until shutdown; each one's session ends by itself on
/// shutdown (an Error `shutting_down`, then close) or is cut after the grace
/// period through `abort`.
pub async fn accept_loop(
    listener: TcpListener,
    shard: usize,
    app: Rc<App>,
    tracker: Rc<ConnTracker>,
    gate: Rc<Gate>,
    shutdown: Latch,
    abort: Latch,
) {
    let limits = Limits::from_config(&app.config);
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = match gate.admit(peer.ip()) {
                        Ok(admitted) => admitted,
                        Err(refusal) => {
                            monoio::spawn(refuse_binary(stream, refusal));
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Some(engine) = app.engine.clone() else { continue };
                    let (hub, shutdown, abort, guard) = (app.hub.clone(), shutdown.clone(), abort.clone(), tracker.open());
                    monoio::spawn(async move {
                        let _held = (guard, admitted);
                        let conn = conn::FrameConn::start(stream, limits.max_frame, limits.send_queue_bytes);
                        monoio::select! {
                            _ = binary_session::run(conn, hub, engine, shutdown, limits, None) => {
                                debug!(shard, %peer, "binary connection closed");
                            }
                            _ = abort.wait() => debug!(shard, %peer, "binary connection cut after the grace period"),
                        }
                    });
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
