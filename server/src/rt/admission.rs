//! Connection caps: how many connections the node holds, and each client
//! address. Counted once per connection (at accept and at close), not per
//! request: the node total is one atomic, the per-address counts sit in 64
//! striped maps so shards accepting at once rarely meet on a lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const STRIPES: usize = 64;

/// Which cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    Node,
    Address,
}

/// The caps of one node, shared by its shards.
pub struct ConnCaps {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Vec<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnCaps {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnCaps> {
        Arc::new(ConnCaps {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            per_ip: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Counts a new connection from `ip`, or refuses it; the count drops
    /// when the returned [`Admitted`] does.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Full> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Node);
        }
        let mut map = self.stripe(ip);
        let count = map.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            drop(map);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Address);
        }
        *count += 1;
        Ok(Admitted { caps: self.clone(), ip })
    }

    /// Open connections on the node.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    fn stripe(&self, ip: IpAddr) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A fixed spread is enough: the stripe only needs to be the same for one address.
        let index = match ip {
            IpAddr::V4(v4) => u32::from(v4) as usize,
            IpAddr::V6(v6) => (u128::from(v6) ^ (u128::from(v6) >> 64)) as usize,
        } % STRIPES;
        // A poisoned stripe only means a panic elsewhere while counting: the counts stay usable.
        self.per_ip[index].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, ip: IpAddr) {
        let mut map = self.stripe(ip);
        if let Some(count) = map.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&ip);
            }
        }
        drop(map);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One counted connection; dropping it frees its place.
pub struct Admitted {
    caps: Arc<ConnCaps>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.caps.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_node_and_per_address_and_free_on_drop() {
        let caps = ConnCaps::new(3, 2);
        let (a, b) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let a1 = caps.admit(a).expect("a1");
        let _a2 = caps.admit(a).expect("a2");
        assert_eq!(caps.admit(a).err(), Some(Full::Address));
        let _b1 = caps.admit(b).expect("b1");
        assert_eq!(caps.admit(b).err(), Some(Full::Node), "three open on the node");
        assert_eq!(caps.open(), 3);
        drop(a1);
        assert!(caps.admit(b).is_ok(), "a place freed");
    }
}
