//! Converger server: configuration, shards (one monoio runtime per core),
//! network edges (HTTP, binary protocol) and the REST API.
//!
//! Embedders and tests start a server on listeners they bound themselves with
//! [`Server::start`]; the `converger` binary does the same through [`run`].

pub mod adapters;
pub mod api;
pub mod auth;
pub mod config;
pub mod delivery;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod realtime;
pub mod run;
pub mod server;
pub mod service;
pub mod shard;
pub mod startup;
#[cfg(test)]
pub mod testing;

pub use config::Config;
pub use net::Listeners;
pub use run::run;
pub use server::Server;
pub use startup::StartupError;
