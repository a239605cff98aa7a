//! The two transports of the binary protocol, as the session sees them: a TCP
//! byte stream cut into frames ([`FrameConn`]), and `/socket/binary`, where
//! each WebSocket binary message holds exactly one frame.

use converger_protocol::{decode_frame_with_limit, ErrorFrame, Version, WireError};

use super::sink::BinarySender;
use crate::metrics::Transport;
use crate::net::binary::{FrameConn, Inbound};
use crate::net::ws::{code, Incoming, WsSocket};

pub(crate) trait Link {
    /// The next frame, a decode error, or the end. Cancel-safe.
    async fn recv(&mut self) -> Inbound;
    /// A sender of frames in the link's current version.
    fn sender(&self) -> BinarySender;
    /// The connection speaks `version` from now on, both ways (version 1
    /// until the handshake chose one).
    fn set_version(&mut self, version: Version);
    /// Sends `error` with the close flag after what is queued, then ends the
    /// connection (bounded wait).
    async fn close(self, error: ErrorFrame);
    /// Which transport this is, for the metrics.
    fn transport(&self) -> Transport;
    /// Calls `count` when the send queue overflows (a slow consumer).
    fn on_overflow(&self, count: impl Fn() + 'static);
}

impl Link for FrameConn {
    async fn recv(&mut self) -> Inbound {
        FrameConn::recv(self).await
    }

    fn sender(&self) -> BinarySender {
        BinarySender::tcp(FrameConn::sender(self)).with_version(self.version())
    }

    fn set_version(&mut self, version: Version) {
        FrameConn::set_version(self, version)
    }

    async fn close(self, error: ErrorFrame) {
        FrameConn::close(self, error).await
    }

    fn transport(&self) -> Transport {
        Transport::BinaryTcp
    }

    fn on_overflow(&self, count: impl Fn() + 'static) {
        FrameConn::sender(self).on_overflow(count)
    }
}

/// `/socket/binary`.
pub(crate) struct WsLink {
    pub ws: WsSocket,
    pub max_frame: u32,
    pub version: Version,
}

impl Link for WsLink {
    async fn recv(&mut self) -> Inbound {
        loop {
            return match self.ws.recv().await {
                Incoming::Binary(message) => match decode_frame_with_limit(&message, self.version, self.max_frame) {
                    Ok(Some((frame, used))) if used == message.len() => Inbound::Frame(frame),
                    Ok(Some((frame, used))) => {
                        Inbound::Bad(WireError::TrailingBytes { kind: frame.kind() as u8, extra: message.len() - used })
                    }
                    Ok(None) => Inbound::Bad(WireError::Truncated { field: "frame" }),
                    Err(e) => Inbound::Bad(e),
                },
                Incoming::Text(_) => {
                    self.ws.sender().close(code::UNSUPPORTED, "text messages are not part of the binary protocol");
                    continue;
                }
                Incoming::Closed(_) => Inbound::Closed,
            };
        }
    }

    fn sender(&self) -> BinarySender {
        BinarySender::websocket(self.ws.sender()).with_version(self.version)
    }

    fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    async fn close(self, error: ErrorFrame) {
        let reason = error.message.clone();
        let sender = self.sender();
        let _ = sender.send(error.closing());
        let ws_code = if reason.is_empty() { code::NORMAL } else { code::POLICY };
        self.ws.close(ws_code, &reason).await;
    }

    fn transport(&self) -> Transport {
        Transport::BinaryWs
    }

    fn on_overflow(&self, count: impl Fn() + 'static) {
        self.ws.sender().on_overflow(count)
    }
}
