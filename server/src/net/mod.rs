//! Network edges of a shard: binding the listening sockets ([`listen`]), the
//! HTTP/1.1 server ([`http`]) and the binary-protocol listener ([`binary`]),
//! over plain TCP or TLS ([`stream`], [`tls`]).

pub mod binary;
pub mod http;
pub mod listen;
pub mod send_queue;
pub mod stream;
pub mod tls;
pub mod ws;

pub use listen::{bind_reuseport, Listeners};
