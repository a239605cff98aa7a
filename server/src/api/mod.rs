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
use crate::service::{Hub, Publisher};
use crate::net::http::{Method, Request, Response, Service};

/// What every handler can reach. One per shard; the store is shared.
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The service layer; handlers call it and only translate HTTP around it.
    pub hub: Hub,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> App {
        let hub = Hub::new(store.clone(), config.clone(), Publisher::direct(store.clone()));
        App { store, config, hub }
    }

    /// Routes and runs one request; never fails: errors become responses.
    pub async fn handle(&self, request: Request) -> Response {
        let method = request.method.clone();
        let path = request.path.clone();
        let response = match router::route(&request.method, &request.path) {
            Ok((endpoint, params)) => self.dispatch(endpoint, params, request).await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(ApiError::into_response);
        debug!(%method, %path, status = response.status, "request");
        response
    }

    async fn dispatch(&self, endpoint: Endpoint, _params: Params, _request: Request) -> Result<Response, ApiError> {
        match endpoint {
            Endpoint::Health => health::health(),
            Endpoint::Live => health::live(),
            Endpoint::Ready => health::ready(self).await,
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
