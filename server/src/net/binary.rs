//! The binary-protocol TCP listener. The protocol itself (`protocol/` crate,
//! `docs/protocol.md`) comes later: for now each connection is accepted and
//! closed at once, so the port is bound, owned and reported from day one and
//! clients fail fast instead of hanging.

use monoio::net::TcpListener;
use tracing::{debug, warn};

use crate::shard::shutdown::Shutdown;

/// Accepts and closes connections until shutdown.
pub async fn accept_loop(listener: TcpListener, shard: usize, shutdown: Shutdown) {
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(shard, %peer, "binary connection closed: protocol not implemented yet");
                    drop(stream);
                }
                Err(e) => {
                    warn!(shard, error = %e, "binary accept failed");
                    crate::shard::accept_backoff().await;
                }
            },
            _ = shutdown.wait() => break,
        }
    }
    debug!(shard, "binary listener closed");
}
