//! A shard-local memory of which API key (by hash) belongs to which active
//! tenant, so the hot path — every REST write — skips a storage read.
//!
//! Kept honest two ways:
//! - every tenant change made through this node (disable, rename, key
//!   rotation) bumps one epoch shared by all shards *before* it answers, and an
//!   entry remembered under an older epoch is not used: such a change takes
//!   effect on every shard at once. The epoch is read before the storage
//!   lookup, so a lookup racing a change is remembered as already old.
//! - entries expire after [`TTL`], which bounds how long a change made through
//!   another node (sharing the database) takes to be seen here.
//!
//! Only positive answers are remembered: an unknown or disabled key always
//! reaches storage, and random keys cannot fill the map.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use converger_storage::Id;

use super::limits_cache::EpochMap;
use crate::engine::cluster::{Changed, ClusterLink};

/// How long a remembered key is trusted without asking storage again.
pub const TTL: Duration = Duration::from_secs(2);

/// Shared by every shard of the process; bumped by every tenant change. In a
/// cluster a change made here is announced to the other nodes, which bump
/// theirs when they hear it (within milliseconds; the TTL remains the bound
/// should the notice be lost).
#[derive(Clone, Default)]
pub struct TenantEpoch {
    counter: Arc<AtomicU64>,
    cluster: Option<ClusterLink>,
}

impl TenantEpoch {
    /// An epoch whose changes are announced to the cluster's other nodes.
    pub fn in_cluster(link: ClusterLink) -> TenantEpoch {
        TenantEpoch { counter: Arc::default(), cluster: Some(link) }
    }

    pub fn current(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// A tenant changed through this node.
    pub fn bump(&self) {
        self.bump_here();
        if let Some(c) = &self.cluster {
            c.announce_change(Changed::Tenants);
        }
    }

    /// A tenant changed (through another node, when called by the cluster bus).
    pub fn bump_here(&self) {
        self.counter.fetch_add(1, Ordering::AcqRel);
    }

    /// An event endpoint changed through this node: the write paths' memory
    /// of which events each tenant takes is read again, here and (told over
    /// the bus) on the other nodes.
    pub fn event_endpoints_changed(&self) {
        crate::engine::event_types::changed_here();
        if let Some(c) = &self.cluster {
            c.announce_change(Changed::EventEndpoints);
        }
    }

    /// A channel changed through this node (see [`super::channels::channels_changed_here`]).
    pub fn channels_changed(&self) {
        super::channels::channels_changed_here();
        if let Some(c) = &self.cluster {
            c.announce_change(Changed::Channels);
        }
    }
}

/// This shard's memory of key hashes and active tenants.
pub struct AuthCache {
    epoch: TenantEpoch,
    keys: RefCell<EpochMap<[u8; 32], Id>>,
    /// Tenants recently seen active (for checks by id, e.g. a socket's join).
    active: RefCell<EpochMap<Id, ()>>,
}

impl AuthCache {
    pub fn new(epoch: TenantEpoch) -> AuthCache {
        AuthCache { epoch, keys: RefCell::default(), active: RefCell::default() }
    }

    pub fn epoch(&self) -> &TenantEpoch {
        &self.epoch
    }

    /// The active tenant of this key hash, if remembered and still trusted.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Id> {
        self.keys.borrow().get(*hash, self.epoch.current(), Instant::now())
    }

    /// Remembers an active tenant found by a lookup that started at `epoch`.
    pub fn remember(&self, hash: [u8; 32], tenant: Id, epoch: u64) {
        self.keys.borrow_mut().remember(hash, tenant, epoch, Instant::now());
    }

    /// Whether `tenant` is remembered as active and still trusted.
    pub fn is_active(&self, tenant: Id) -> bool {
        self.active.borrow().get(tenant, self.epoch.current(), Instant::now()).is_some()
    }

    /// Remembers `tenant` as active, seen by a lookup that started at `epoch`.
    pub fn remember_active(&self, tenant: Id, epoch: u64) {
        self.active.borrow_mut().remember(tenant, (), epoch, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use converger_storage::new_id;

    #[test]
    fn a_tenant_change_anywhere_retires_every_entry_at_once() {
        let epoch = TenantEpoch::default();
        let (a, b) = (AuthCache::new(epoch.clone()), AuthCache::new(epoch.clone()));
        let t = new_id();
        a.remember([1; 32], t, epoch.current());
        assert_eq!(a.get(&[1; 32]), Some(t));
        epoch.bump(); // e.g. shard B disabled a tenant
        assert_eq!(a.get(&[1; 32]), None);
        // A lookup that began before the change is remembered as old.
        let before = epoch.current();
        epoch.bump();
        b.remember([2; 32], t, before);
        assert_eq!(b.get(&[2; 32]), None);
    }
}
