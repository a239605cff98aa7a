//! The service layer: every operation Converger offers (create an activity,
//! list a conversation, issue a token, manage tenants …), written once and
//! called by every transport — REST, the Phoenix socket and the binary
//! protocol over TCP or WebSocket. Transports decode their input, call a [`Hub`] method with an
//! authenticated caller, and encode the result; they hold no business logic.
//!
//! A `Hub` is shard-local (one per shard thread): the store is shared by all
//! shards, while the [`Publisher`] is this shard's end of the mesh to the
//! conversations' owner shards.

pub mod activities;
pub mod auth_cache;
pub mod broadcast;
pub mod caller;
pub mod channels;
pub mod contacts;
pub mod conversations;
pub mod deliveries;
mod error;
pub mod event_endpoints;
pub mod inbound;
pub mod input;
pub mod json;
pub mod jwks;
pub mod limits;
pub mod limits_cache;
pub mod members;
pub mod presence;
pub mod routes;
pub mod signing_keys;
pub mod stats;
pub mod tenants;
#[cfg(test)]
mod tests;
pub mod token_keys;
pub mod tokens;

use std::sync::Arc;

use converger_storage::Store;

use crate::config::Config;
pub use crate::engine::publish::{PublishError, Publisher};
use crate::metrics::ShardMetrics;
pub use auth_cache::{AuthCache, TenantEpoch};
pub use caller::Caller;
pub use error::{Public, ServiceError, ServiceResult};

/// What every operation can reach on this shard.
pub struct Hub {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub publisher: Publisher,
    /// API keys this shard resolved recently (see [`auth_cache`]).
    pub auth_cache: AuthCache,
    /// Conversations' delivery targets this shard looked up (see [`routes`]).
    pub routes: routes::Routes,
    /// This shard's rate-limit buckets (see [`limits`]).
    pub limiter: limits::Limiter,
    /// This shard's counters.
    pub metrics: Arc<ShardMetrics>,
    /// Tenants' token-signing keys this shard looked up (see [`token_keys`]).
    pub token_keys: token_keys::KeyCache,
    /// The way to tenants' JWKS documents (absent: JWKS keys are refused).
    pub jwks: Option<jwks::JwksClient>,
}

impl Hub {
    /// A hub with its own tenant epoch (one shard, or tests).
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, publisher: Publisher) -> Hub {
        Hub::sharing(store, config, publisher, TenantEpoch::default(), 1, Arc::default())
    }

    /// A shard's hub; `epoch` is shared by every shard of the process.
    pub fn sharing(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        publisher: Publisher,
        epoch: TenantEpoch,
        shards: usize,
        metrics: Arc<ShardMetrics>,
    ) -> Hub {
        let limiter = limits::Limiter::new(config.edge.rates, shards);
        Hub {
            store,
            config,
            publisher,
            routes: routes::Routes::new(epoch.clone()),
            auth_cache: AuthCache::new(epoch),
            limiter,
            metrics,
            token_keys: token_keys::KeyCache::default(),
            jwks: None,
        }
    }

    /// This hub, fetching tenants' JWKS documents through `client`.
    pub fn with_jwks(mut self, client: jwks::JwksClient) -> Hub {
        self.jwks = Some(client);
        self
    }
}
