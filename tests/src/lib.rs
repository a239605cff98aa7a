//! End-to-end test harness: [`TestServer`] starts the real `converger` binary
//! on port 0 (embedded storage in a temp dir, or PostgreSQL in a fresh schema),
//! waits for its ready line, and kills it on drop. [`http`] is a tiny blocking
//! HTTP/1.1 client that also speaks raw bytes, for protocol-level tests;
//! [`tls`] makes test certificates and TLS clients; [`phoenix`] and
//! [`binary`] are blocking clients of the two socket protocols;
//! [`cluster::TestCluster`] starts several nodes on one PostgreSQL schema and
//! one NATS server. [`chaos`] injects faults under a mixed load and checks
//! the recorded history against the store (the `converger-chaos` binary);
//! [`tmpfs`] mounts a small file system to fill (the disk-full tests).

pub mod api;
pub mod bin;
pub mod binary;
pub mod chaos;
pub mod cluster;
pub mod http;
pub mod jose;
pub mod pg;
pub mod phoenix;
pub mod receiver;
pub mod server;
pub mod skip;
pub mod tls;
pub mod tmpfs;

pub use bin::{converger_bin, converger_command};
pub use http::{Conn, Reply};
pub use server::{StartError, TestServer};
