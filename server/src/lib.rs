//! Converger server: configuration, shards (one monoio runtime per core),
//! network edges (HTTP, binary protocol) and the REST API.
//!
//! Embedders and tests start a server on listeners they bound themselves with
//! [`Server::start`]; the `converger` binary does the same through [`run`].

// Layers, top to bottom (docs/architecture.md): every `use crate::` points
// down this list, never up; `layers::tests` holds the rule.
//   bootstrap: run, server
//   edges:     api, admin, sessions, delivery
//   service:   service
//   engine:    engine
//   blocks:    config, net, adapters, auth, trace, metrics, rt
pub mod run;
pub mod server;

pub mod admin;
pub mod api;
pub mod delivery;
pub mod sessions;

pub mod service;

pub mod engine;

pub mod adapters;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod net;
pub mod rt;
#[cfg(test)]
pub mod testing;
pub mod trace;

pub use config::Config;
pub use net::Listeners;
pub use run::run;
pub use server::startup::StartupError;
pub use server::Server;
