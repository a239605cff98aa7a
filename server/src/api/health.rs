//! Health endpoints for load balancers and orchestrators: `/health` and
//! `/health/live` say the process answers; `/health/ready` also pings storage,
//! so a node that lost its database is taken out of rotation (503), and in a
//! cluster checks the NATS connection (503 `cluster_unavailable`). `/metrics`
//! is the Prometheus page of every shard's counters, with the same storage
//! ping as a gauge.

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
    let mut body = json!({"status": "ok", "storage": app.store.backend()});
    if let Some(cluster) = app.engine.as_ref().and_then(|e| e.cluster()) {
        if !cluster.status.connected() {
            return Err(ApiError::ClusterUnavailable);
        }
        body["node_id"] = json!(cluster.status.node_id);
    }
    Ok(Response::json(200, &body))
}

/// How long a scrape waits for storage to answer its ping.
const STORAGE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn metrics(app: &App) -> Response {
    let mut page = crate::metrics::render(&app.registry);
    let ping = monoio::time::timeout(STORAGE_PING_TIMEOUT, app.store.ping()).await;
    crate::metrics::render_storage(&mut page, matches!(ping, Ok(Ok(_))));
    if let Some(cluster) = app.engine.as_ref().and_then(|e| e.cluster()) {
        let s = &cluster.status;
        let figures = crate::metrics::ClusterFigures {
            node_id: &s.node_id,
            connected: s.connected(),
            other_nodes: s.other_nodes(),
            dropped: s.dropped(),
        };
        crate::metrics::render_cluster(&mut page, &figures);
    }
    Response::text(200, "text/plain; version=0.0.4", page)
}
