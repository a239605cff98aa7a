//! WebSocket (RFC 6455) on monoio: [`frame`] decodes client frames and
//! [`encode`] writes server frames (a pure codec), [`handshake`] answers the
//! upgrade request, and [`socket`] runs one upgraded connection behind the
//! [`WsSocket`] API the real-time session layer uses. [`phoenix`] is the
//! Phoenix Channels V2 message codec carried in text frames.

pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod phoenix;
mod reader;
pub mod socket;
mod upgrade;

#[cfg(test)]
mod testing;

pub use crate::net::send_queue::{FrameSender as WsSender, SendError};
pub use error::{code, WsError};
pub use frame::{CloseFrame, Decoder, Message, Opcode};
pub use socket::{Closed, Incoming, WsLimits, WsSocket};
pub use upgrade::Upgrade;
