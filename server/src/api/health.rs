//! Health endpoints for load balancers and orchestrators: `/health` and
//! `/health/live` say the process answers; `/health/ready` also pings storage,
//! so a node that lost its database is taken out of rotation (503). `/metrics`
//! is the Prometheus page of every shard's counters.

use serde_json::json;

use super::{ApiError, App};
use crate::net::http::Response;

pub fn health() -> Result<Response, ApiError> {
    Ok(Response::json(200, &json!({"status": "ok"})))
}

pub fn live() -> Result<Response, ApiError> {
    Ok(Response::json(200, &json!({"status": "ok"})))
}

pub async fn ready(app: &App) -> Result<Response, ApiError> {
    app.store.ping().await.map_err(ApiError::StorageUnavailable)?;
    Ok(Response::json(200, &json!({"status": "ok", "storage": app.store.backend()})))
}

pub fn metrics(app: &App) -> Response {
    Response::text(200, "text/plain; version=0.0.4", crate::metrics::render(&app.registry))
}
