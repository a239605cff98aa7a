//! A memory of tenants' own rate limits, so the hot path (every REST request,
//! every write, every delivery attempt) reads them without a storage round
//! trip. Each shard's [`super::limits::Limiter`] holds one; the delivery
//! worker holds its own.
//!
//! Kept honest like the [`super::auth_cache`]: an entry is used only under
//! the [`super::TenantEpoch`] it was read under — every tenant change made
//! through this node bumps that epoch before it answers, so it takes effect
//! everywhere in the process at once — and for at most [`TTL`], which bounds
//! how long a change made through another node takes to be seen. Callers
//! read the epoch *before* the storage lookup, so a lookup racing a change is
//! remembered as already old.
//!
//! Bounded: at [`CAPACITY`] entries the stale ones are dropped, and if none
//! is, the whole map (it refills on demand, one read per tenant).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use converger_storage::{Id, TenantLimits};

pub use super::auth_cache::TTL;

/// Entries remembered at most.
pub const CAPACITY: usize = 10_000;

/// Tenants' limits, by tenant.
pub type LimitsCache = EpochMap<Id, TenantLimits>;

struct Entry<V> {
    value: V,
    epoch: u64,
    at: Instant,
}

impl<V> Entry<V> {
    fn trusted(&self, epoch: u64, now: Instant) -> bool {
        self.epoch == epoch && now.saturating_duration_since(self.at) < TTL
    }
}

/// Values trusted under the [`super::TenantEpoch`] they were read under and
/// for at most [`TTL`] (the rule above); the one such memory, used for
/// tenants' limits here and for API keys and active tenants by
/// [`super::auth_cache`].
pub struct EpochMap<K, V> {
    entries: HashMap<K, Entry<V>>,
}

impl<K, V> Default for EpochMap<K, V> {
    fn default() -> Self {
        EpochMap { entries: HashMap::new() }
    }
}

impl<K: Hash + Eq, V: Clone> EpochMap<K, V> {
    /// The value of `key` if remembered and still trusted under `epoch` at `now`.
    pub fn get(&self, key: K, epoch: u64, now: Instant) -> Option<V> {
        self.entries.get(&key).filter(|e| e.trusted(epoch, now)).map(|e| e.value.clone())
    }

    /// Remembers `value`, read by a lookup that started at `epoch`.
    pub fn remember(&mut self, key: K, value: V, epoch: u64, now: Instant) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| e.trusted(epoch, now));
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(key, Entry { value, epoch, at: now });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use converger_storage::new_id;

    use super::*;
    use crate::service::TenantEpoch;

    fn limits(n: u32) -> TenantLimits {
        TenantLimits { deliveries_per_second: Some(n), ..TenantLimits::default() }
    }

    #[test]
    fn an_entry_serves_until_the_epoch_moves_or_the_ttl_passes() {
        let epoch = TenantEpoch::default();
        let (mut a, t, t0) = (LimitsCache::default(), new_id(), Instant::now());
        a.remember(t, limits(5), epoch.current(), t0);
        assert_eq!(a.get(t, epoch.current(), t0 + TTL - Duration::from_millis(1)), Some(limits(5)));
        assert_eq!(a.get(t, epoch.current(), t0 + TTL), None, "another node's change is seen within the TTL");
        assert_eq!(a.get(new_id(), epoch.current(), t0), None);
        // A change through this node (any shard) retires every shard's entries at once.
        let mut b = LimitsCache::default();
        b.remember(t, limits(5), epoch.current(), t0);
        epoch.bump();
        assert_eq!(a.get(t, epoch.current(), t0), None);
        assert_eq!(b.get(t, epoch.current(), t0), None);
        // A lookup that began before a change is remembered as old.
        let before = epoch.current();
        epoch.bump();
        a.remember(t, limits(5), before, t0);
        assert_eq!(a.get(t, epoch.current(), t0), None);
        a.remember(t, limits(9), epoch.current(), t0);
        assert_eq!(a.get(t, epoch.current(), t0), Some(limits(9)));
    }

    #[test]
    fn the_memory_is_bounded_and_drops_stale_entries_first() {
        let (mut c, t0) = (LimitsCache::default(), Instant::now());
        for _ in 0..CAPACITY {
            c.remember(new_id(), limits(1), 1, t0);
        }
        assert_eq!(c.len(), CAPACITY);
        // All of them stale under epoch 2: dropped to make room.
        let fresh = new_id();
        c.remember(fresh, limits(2), 2, t0);
        assert_eq!(c.len(), 1);
        for _ in 1..CAPACITY {
            c.remember(new_id(), limits(1), 2, t0);
        }
        // None stale: the map starts over.
        c.remember(new_id(), limits(3), 2, t0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(fresh, 2, t0), None);
    }
}
