//! Admin statistics: row counts from storage and this node's live figures.

use serde::Serialize;

use super::{Hub, ServiceResult};

/// What `GET /admin/api/stats` shows.
#[derive(Clone, Debug, Serialize)]
pub struct StatsView {
    pub tenants: i64,
    pub channels: i64,
    pub conversations: i64,
    pub activities: i64,
    pub deliveries: DeliveryCounts,
    /// Live WebSocket and binary connections on this node (none until the
    /// real-time transports exist).
    pub connections: u64,
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
        })
    }
}
