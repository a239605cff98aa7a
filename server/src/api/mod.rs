//! The REST API: [`router`] maps a method and path to an [`Endpoint`], thin
//! handlers (one file per area, e.g. [`health`]) do the work, and [`ApiError`]
//! turns every failure into a status and the one JSON error shape, here at the
//! edge. [`App`] is the shard-local state handlers see.

pub mod error;
pub mod health;
pub mod router;

use std::sync::Arc;

use converger_storage::Store;
use tracing::debug;

pub use error::ApiError;
pub use router::{Endpoint, Params};

use crate::config::Config;
use crate::metrics::{Registry, ShardMetrics};
use crate::net::http::{Method, Request, Response, Service};
use crate::service::{Hub, Publisher};

/// What every handler can reach. One per shard; the store is shared.
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The service layer; handlers call it and only translate HTTP around it.
    pub hub: Hub,
    /// This shard's counters, and every shard's for `/metrics`.
    pub metrics: Arc<ShardMetrics>,
    pub registry: Registry,
}

impl App {
    /// An app without shards: publishes go straight to the store (tests).
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> App {
        let registry = Registry::new(1);
        App::for_shard(store.clone(), config, Publisher::direct(store), registry.shard(0), registry)
    }

    /// The app of one shard, publishing through the owner shards.
    pub fn for_shard(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        publisher: Publisher,
        metrics: Arc<ShardMetrics>,
        registry: Registry,
    ) -> App {
        let hub = Hub::new(store.clone(), config.clone(), publisher);
        App { store, config, hub, metrics, registry }
    }

    /// Routes and runs one request; never fails: errors become responses.
    pub async fn handle(&self, request: Request) -> Response {
        let started = std::time::Instant::now();
        let method = request.method.clone();
        let path = request.path.clone();
        let (pattern, result) = match router::route(&request.method, &request.path) {
            Ok((endpoint, params)) => (endpoint.pattern(), self.dispatch(endpoint, params, request).await),
            Err(e) => ("unmatched", Err(e)),
        };
        let response = result.unwrap_or_else(ApiError::into_response);
        self.metrics.request(pattern, response.status, started.elapsed());
        debug!(%method, %path, status = response.status, "request");
        response
    }

    async fn dispatch(&self, endpoint: Endpoint, _params: Params, _request: Request) -> Result<Response, ApiError> {
        match endpoint {
            Endpoint::Health => health::health(),
            Endpoint::Live => health::live(),
            Endpoint::Ready => health::ready(self).await,
            Endpoint::Metrics => Ok(health::metrics(self)),
        }
    }
}

impl Service for App {
    async fn call(&self, request: Request) -> Response {
        // HEAD is answered like GET; the connection leaves the body out.
        self.handle(request).await
    }
}

/// True for the methods a GET route also answers.
fn is_get_like(m: &Method) -> bool {
    matches!(m, Method::Get | Method::Head)
}
