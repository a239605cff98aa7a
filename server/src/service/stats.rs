//! Admin statistics: row counts from storage and this node's live figures.

use serde::Serialize;

use super::{Hub, ServiceResult};
use crate::engine::cluster::nodes::NodeView;

/// What `GET /admin/api/stats` shows.
#[derive(Clone, Debug, Serialize)]
pub struct StatsView {
    pub tenants: i64,
    pub channels: i64,
    pub conversations: i64,
    pub activities: i64,
    pub deliveries: DeliveryCounts,
    /// Open connections on this node (HTTP, WebSocket and binary).
    pub connections: u64,
    /// In a cluster: every node as the answering node sees it (itself first),
    /// with its live connections and when it was last heard from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeView>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

impl Hub {
    pub async fn stats(&self) -> ServiceResult<StatsView> {
        let s = self.store.stats().await?;
        Ok(StatsView {
            tenants: s.tenants,
            channels: s.channels,
            conversations: s.conversations,
            activities: s.activities,
            deliveries: DeliveryCounts {
                pending: s.deliveries_pending,
                delivered: s.deliveries_delivered,
                failed: s.deliveries_failed,
            },
            connections: 0,
            nodes: None,
        })
    }
}
