//! The binary-protocol TCP listener (`--binary-addr`, in every shard): each
//! accepted connection runs the binary session (`realtime::binary_session`)
//! over a [`conn::FrameConn`]. The protocol is written down in
//! docs/protocol.md; its codec is the `converger-protocol` crate.

use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpListener;
use tracing::{debug, warn};

use crate::api::App;
use crate::net::binary as conn;
use crate::rt::shutdown::Shutdown;
use crate::rt::tracker::ConnTracker;
use crate::sessions::binary::{self as binary_session, Limits};

/// How long a new connection may take to send its Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which a connection is closed (announced in Welcome).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits of binary connections: the WebSocket ones apply (one frame is
/// one message), with no per-message rate (TCP backpressure paces clients).
pub fn limits(app: &App) -> Limits {
    Limits {
        max_frame: app.config.ws_max_message_bytes.min(converger_protocol::MAX_FRAME_SIZE as usize) as u32,
        send_queue_bytes: app.config.ws_send_queue_bytes,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        idle_timeout: IDLE_TIMEOUT,
    }
}

/// Accepts connections until shutdown; each one's session ends by itself on
/// shutdown (an Error `shutting_down`, then close) or is cut after the grace
/// period through `abort`.
pub async fn accept_loop(
    listener: TcpListener,
    shard: usize,
    app: Rc<App>,
    tracker: Rc<ConnTracker>,
    shutdown: Shutdown,
    abort: Shutdown,
) {
    let limits = limits(&app);
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Some(realtime) = app.realtime.clone() else { continue };
                    let (hub, shutdown, abort, guard) = (app.hub.clone(), shutdown.clone(), abort.clone(), tracker.open());
                    monoio::spawn(async move {
                        let _guard = guard;
                        let conn = conn::FrameConn::start(stream, limits.max_frame, limits.send_queue_bytes);
                        monoio::select! {
                            _ = binary_session::run(conn, hub, realtime, shutdown, limits, None) => {
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
