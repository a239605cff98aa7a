//! Delivery operations: list (by activity, channel, status), read, and put a
//! failed delivery back in the queue.

use converger_storage::{Delivery, DeliveryFilter, DeliveryStatus, Id, Page, PageRequest, Scope, StoreError};

use super::{Hub, ServiceError, ServiceResult};

/// Parses a delivery status filter value.
pub fn parse_status(s: &str) -> ServiceResult<DeliveryStatus> {
    DeliveryStatus::parse(s).ok_or_else(|| {
        ServiceError::invalid("status", format!("unknown status `{s}` (expected pending, delivered or failed)"))
    })
}

impl Hub {
    pub async fn list_deliveries(
        &self,
        scope: Scope,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Delivery>> {
        Ok(self.store.list_deliveries(scope, filter, page).await?)
    }

    pub async fn get_delivery(&self, scope: Scope, id: Id) -> ServiceResult<Delivery> {
        Ok(self.store.get_delivery(scope, id).await?)
    }

    /// Requeues a failed delivery, due now with its attempts reset; any other
    /// status answers `conflict`.
    pub async fn retry_delivery(&self, scope: Scope, id: Id) -> ServiceResult<Delivery> {
        self.store.retry_delivery(scope, id).await.map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict("only a failed delivery can be retried".into()),
            e => e.into(),
        })
    }
}
