//! The rate limits the service layer applies, whatever the transport: REST
//! requests per client address and per tenant, and activities written per
//! tenant (REST, Phoenix, binary, inbound webhooks, echo replies alike).
//!
//! Buckets are this shard's own (no lock on the hot path); a per-node budget
//! — the tenant's override when it has one, else the server's default — is
//! split evenly across the shards, so a node as a whole grants at most the
//! budget (docs/operations.md, "Limits"). A refusal is
//! [`ServiceError::RateLimited`] with how long to wait.
//!
//! A tenant's own limits are read from storage and remembered by the shard
//! ([`LimitsCache`]: retired at once by a tenant change through this node,
//! after its TTL otherwise).

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Instant;

use converger_storage::{Id, TenantLimits};

use super::limits_cache::LimitsCache;
use super::{Hub, ServiceError, ServiceResult};
use crate::config::Rates;
use crate::rt::rate::{split, Buckets};

/// Keys a shard remembers per kind of bucket at most (see [`Buckets`]).
const MAX_KEYS: usize = 100_000;

/// One shard's buckets.
pub struct Limiter {
    shards: usize,
    defaults: Rates,
    ip_requests: RefCell<Buckets<IpAddr>>,
    tenant_requests: RefCell<Buckets<Id>>,
    tenant_activities: RefCell<Buckets<Id>>,
    /// Tenants' own limits as last read (never borrowed across an await).
    cache: RefCell<LimitsCache>,
}

impl Limiter {
    pub fn new(defaults: Rates, shards: usize) -> Limiter {
        Limiter {
            shards,
            defaults,
            ip_requests: RefCell::new(Buckets::new(MAX_KEYS)),
            tenant_requests: RefCell::new(Buckets::new(MAX_KEYS)),
            tenant_activities: RefCell::new(Buckets::new(MAX_KEYS)),
            cache: RefCell::new(LimitsCache::default()),
        }
    }

    fn take<K: std::hash::Hash + Eq + Clone>(
        &self,
        buckets: &RefCell<Buckets<K>>,
        key: &K,
        per_node: u32,
        limit: &'static str,
        n: usize,
    ) -> ServiceResult<()> {
        let rate = split(per_node, self.shards);
        let taken = buckets.borrow_mut().take_n(key, rate, n, Instant::now());
        taken.map_err(|retry_after| ServiceError::RateLimited { limit, retry_after })
    }
}

impl Hub {
    /// A REST request from `ip`, before anything else is looked at.
    pub fn admit_address(&self, ip: IpAddr) -> ServiceResult<()> {
        let l = &self.limiter;
        self.counted(l.take(&l.ip_requests, &ip, l.defaults.ip_requests, "ip_requests", 1))
    }

    /// A REST request of `tenant`, once it is authenticated.
    pub async fn admit_request(&self, tenant: Id) -> ServiceResult<()> {
        let per_node = self.tenant_limits(tenant).await?.requests_per_second;
        let l = &self.limiter;
        let per_node = per_node.unwrap_or(l.defaults.tenant_requests);
        self.counted(l.take(&l.tenant_requests, &tenant, per_node, "tenant_requests", 1))
    }

    /// `n` activities of `tenant` about to be written (a batch takes `n` at once or none).
    pub(super) async fn admit_activities(&self, tenant: Id, n: usize) -> ServiceResult<()> {
        let per_node = self.tenant_limits(tenant).await?.activities_per_second;
        let l = &self.limiter;
        let per_node = per_node.unwrap_or(l.defaults.tenant_activities);
        self.counted(l.take(&l.tenant_activities, &tenant, per_node, "tenant_activities", n))
    }

    /// The tenant's own limits (unset ones fall back to the server's): as
    /// this shard remembers them, else read from storage.
    pub async fn tenant_limits(&self, tenant: Id) -> ServiceResult<TenantLimits> {
        // Read before the lookup: a change racing it leaves the entry already old.
        let epoch = self.auth_cache.epoch().current();
        if let Some(limits) = self.limiter.cache.borrow().get(tenant, epoch, Instant::now()) {
            return Ok(limits);
        }
        let limits = self.store.get_tenant(tenant).await?.limits;
        self.limiter.cache.borrow_mut().remember(tenant, limits, epoch, Instant::now());
        Ok(limits)
    }

    fn counted(&self, verdict: ServiceResult<()>) -> ServiceResult<()> {
        if let Err(ServiceError::RateLimited { limit, .. }) = &verdict {
            self.metrics.rate_limited(limit);
        }
        verdict
    }
}
