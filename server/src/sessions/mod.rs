//! Real-time sessions: a client connection's conversation with the engine
//! and the service layer, over the Phoenix Channels V2 socket ([`phoenix`])
//! or the binary protocol over TCP or WebSocket ([`binary`]).

pub mod binary;
pub mod phoenix;
mod phoenix_events;
mod phoenix_sink;
